"""Competing knowledge-distillation methods, one module per method.

Importing this package registers every loss (``suite.methods.LOSSES``) and every method factory
(``suite.methods.METHODS``). Each module's docstring states the formula, the paper, the
reduction, the default weights, the attach points, whether ground truth is needed and whether
it is a re-implementation.

A method serves the tasks its factory declares (:func:`suite.methods.spec.serves`):
:data:`METHOD_NAMES` are the segmentation methods; :data:`DETECTION_METHOD_NAMES` the detection
ones (``fgd``, ``gid``, ``ld``, ``pkd`` for detection only; ``skd``, ``sstkd``, ``crosskd`` and
BCD (``suite.methods.bcd``) serve both, one implementation each, with a detection spec).
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

DETECTION_METHOD_NAMES = ("fgd", "skd", "gid", "ld", "pkd", "crosskd", "sstkd")

__all__ = ["DETECTION_METHOD_NAMES", "METHOD_NAMES"]
