"""Competing knowledge-distillation methods, one module per method.

Importing this package registers every loss (``suite.methods.LOSSES``) and every method factory
(``suite.methods.METHODS``). The detection losses (``det_*`` modules) are registered as losses
only: the detection task that would give them method specs does not exist yet. Each module's docstring states the formula, the paper, the
reduction, the default weights, the attach points, whether ground truth is needed and whether
it is a re-implementation.
"""

from baselines import (  # noqa: F401  (imported for their registrations)
    bglsseg,
    bpkd,
    c2vkd,
    cirkd,
    crosskd,
    cwd,
    cwt,
    det_crosskd,
    det_fgd,
    det_gid,
    det_ld,
    fam,
    fgkd,
    ifd,
    ifvd,
    kd,
    pkd,
    sckd,
    skd,
    slimseg,
    sstkd,
    tat,
)

METHOD_NAMES = (
    "kd", "skd", "sckd", "cirkd", "ifd", "fgkd", "cwt", "slimseg", "bglsseg", "fam", "crosskd",
    "bpkd", "ifvd", "tat", "sstkd", "c2vkd", "cwd",
)

__all__ = ["METHOD_NAMES"]
