"""The suite's models by name: configs, width and taps, answered by their families.

Each model name (``pspnet_r18``, ``segformer_b0``, ...) is a variant of one family in
:mod:`suite.families` (one module each). The architectures come from mmseg's own configs
(``mmseg::`` names, :func:`suite.tasks.library_config`) or, where no library on this stack has
them, from documented re-implementations registered as mmseg modules (:mod:`suite.nets`).
Module names are therefore mmseg's, which is what the distillation taps refer to.
"""

from __future__ import annotations

from typing import Any

from suite.families import (
    FAMILIES,
    MODEL_FAMILIES,
    Tap,
    UnknownModelError,
    family_of,
    scaled_channels,
    valid_models,
)
from suite.families.resnet_seg import stage_channels

# every model name -> its family's name (``name in ARCHS`` checks a spec's model)
ARCHS: dict[str, str] = MODEL_FAMILIES


def segmentor_config(
    name: str,
    num_classes: int,
    width: float = 1.0,
    norm: str = "BN",
    pretrained: str | None = None,
    pretrained_prefix: str | None = None,
) -> dict[str, Any]:
    """The mmseg ``EncoderDecoder`` config dict of model ``name``.

    ``width`` multiplies every channel count (1.0 = the paper's model); ``norm`` is ``BN`` for one
    process or ``SyncBN`` under DDP; ``pretrained`` is a local checkpoint for the backbone
    (nothing is ever downloaded); ``pretrained_prefix`` selects the backbone's keys in a
    whole-model checkpoint (``backbone.``).
    """
    return family_of(name).config(name, num_classes, width, norm=norm, pretrained=pretrained,
                                  pretrained_prefix=pretrained_prefix)


def taps(name: str) -> dict[str, str | list[str]]:
    """Tap name -> module name(s) of model ``name`` (mmseg's module names)."""
    return family_of(name).tap_modules(name)


def tap_specs(name: str, width: float = 1.0, num_classes: int = 21) -> dict[str, Tap | list[Tap]]:
    """Tap name -> :class:`~suite.families.Tap` (module, channels, stride) at ``width``."""
    return family_of(name).taps(name, width, num_classes)


def is_reimplementation(name: str) -> bool:
    """Whether model ``name`` is re-implemented here rather than taken from a library."""
    return family_of(name).reimplementation


__all__ = ["ARCHS", "FAMILIES", "UnknownModelError", "is_reimplementation", "scaled_channels",
           "segmentor_config", "stage_channels", "tap_specs", "taps", "valid_models"]
