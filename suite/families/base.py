"""What a model family declares: its library config, how the width multiplier applies, its taps.

A *family* (timm's habit: one file each) groups architectures that share a config and module
layout (PSPNet/DeepLabV3+ on ResNet, SegFormer, ...). Each named model of the suite is one
variant of one family. A family answers three questions for a variant at a width multiplier:

* :meth:`Family.config` -- the library's model config dict (from mmseg's or mmdet's own configs,
  ``mmseg::``/``mmdet::`` names, with the width applied and the dataset's class count);
* :meth:`Family.taps` -- every tap (:class:`Tap`: module name, channels, stride), including
  the classifier that methods such as CrossKD and C2VKD reuse;
* :attr:`Family.notes` -- what is assumed or re-implemented (shown in docs, recorded per model).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from mmengine.config import ConfigDict


@dataclass(frozen=True)
class Tap:
    """A named place of a model: ``module`` (optionally ``name[i]``: the i-th map of a tuple
    output), its channel count and its stride relative to the input (1 = full resolution)."""

    module: str
    channels: int
    stride: int


TapSet = dict[str, "Tap | list[Tap]"]


def scaled_channels(channels: int, width: float) -> int:
    """``channels`` times the width multiplier, at least 4 (every network of a cell shrinks alike)."""
    return max(4, int(round(channels * width)))


def norm_config(norm: str) -> dict[str, Any]:
    """mmcv's norm config: ``BN`` in one process, ``SyncBN`` under DDP."""
    return dict(type=norm, requires_grad=True)


def backbone_init(pretrained: str | None, prefix: str | None) -> dict[str, Any] | None:
    """The backbone's ``init_cfg``: a local checkpoint (nothing is downloaded), or None."""
    if not pretrained:
        return None
    init = dict(type="Pretrained", checkpoint=pretrained)
    if prefix:
        init["prefix"] = prefix
    return init


# mmcv's ConvModule defaults to an in-place ReLU, which would overwrite a tap recorded on the
# BatchNorm before it (``head_feature_preact``); out of place the numbers are identical.
RELU = dict(type="ReLU", inplace=False)


class Family(ABC):
    """One model family: its variants (the suite's model names) and how to build and tap them."""

    name: str = ""
    variants: tuple[str, ...] = ()
    task: str = "segmentation"  # the task (suite.tasks) whose library builds the family's models
    # a re-implementation (no library or official code on this stack): flagged in reports
    reimplementation: bool = False
    notes: str = ""

    @abstractmethod
    def config(self, variant: str, num_classes: int, width: float = 1.0, norm: str = "BN",
               pretrained: str | None = None, pretrained_prefix: str | None = None) -> ConfigDict:
        """The model config of ``variant`` (``width`` 1.0 = the paper's): an mmseg
        ``EncoderDecoder``, or an mmdet detector for the detection families, whose ``config``
        also takes keyword options (:mod:`suite.families.det_base`)."""

    @abstractmethod
    def taps(self, variant: str, width: float = 1.0, num_classes: int = 21) -> TapSet:
        """Tap name -> :class:`Tap` (or a list of them: ``stages``) of ``variant`` at ``width``
        (``num_classes``: the channels of ``logits`` and ``classifier``)."""

    def tap_modules(self, variant: str) -> dict[str, str | list[str]]:
        """Tap name -> module name(s), what the recorders hook."""
        return {k: [t.module for t in v] if isinstance(v, list) else v.module
                for k, v in self.taps(variant).items()}
