"""What the detection families (mmdet) share: ResNet + FPN from mmdet's configs, the width rule on
both, the backbone's training state, keyword options, and taps of heads shared by FPN levels.

* **Width**: the ResNet stem and base channels (every stage follows: BasicBlock x1, Bottleneck
  x4), the FPN's input and output channels; each family scales its heads the same way.
* **Backbone**: norm ``BN``/``SyncBN`` (:func:`~suite.families.base.norm_config`) and
  ``init_cfg`` from a local checkpoint only (mmdet's ``torchvision://resnet*`` is removed).
  With a checkpoint, mmdet's settings for a pre-trained backbone stay (stem and first stage
  frozen, ``frozen_stages=1``; BatchNorm statistics frozen, ``norm_eval=True``); without one
  (trained from scratch) every stage trains and BatchNorm updates (``frozen_stages=-1``,
  ``norm_eval=False``): a frozen random stem would never learn. Parameters are the same.
* **Options**: :attr:`DetectionFamily.options` lists each keyword option of
  :meth:`DetectionFamily.config` with mmdet's value (the paper profile); a profile's
  ``detection:`` section sets them (:class:`suite.tasks.detection.DetectionTask`).
* **Shared heads**: a head module runs once per FPN level, so its tap is a list of
  :class:`Tap` (one per level, each with its stride) that all name that module;
  :meth:`DetectionFamily.tap_modules` gives the recorders the module name once, and they record
  the list of its outputs in call order (level order).
"""

from __future__ import annotations

import copy
import math
from typing import Any

from mmengine.config import ConfigDict

from suite.errors import SpecError
from suite.families.base import Family, Tap, backbone_init, norm_config, scaled_channels
from suite.families.resnet_seg import stage_channels
from suite.tasks.library import library_config

STAGE_STRIDES = (4, 8, 16, 32)  # ResNet C2..C5, mmdet's out_indices (0, 1, 2, 3)
DENSE_FPN_STRIDES = (8, 16, 32, 64, 128)  # one-stage detectors: FPN from C3 with P6/P7
# the head-feature taps of the one-stage heads: the third stacked conv's output before its
# activation, CrossKD's crossing point (its configs' reused_teacher_head_idx = 3: the teacher's
# 4th conv and classifier/regressor run on the student's feature)
CROSS = 2


def resnet_fpn(model: dict[str, Any], depth: int, width: float, norm: str,
               pretrained: str | None, prefix: str | None) -> tuple[list[int], int]:
    """Set the ResNet backbone and FPN neck of an mmdet ``model`` config in place (depth, width,
    norm, init, training state; module docstring); returns (stage channels, FPN channels)."""
    base = scaled_channels(64, width)
    stages = stage_channels(depth, base)
    backbone = model["backbone"]
    backbone.update(depth=depth, stem_channels=base, base_channels=base, norm_cfg=norm_config(norm),
                    init_cfg=backbone_init(pretrained, prefix))
    if not pretrained:
        backbone.update(frozen_stages=-1, norm_eval=False)
    fpn = scaled_channels(256, width)
    model["neck"].update(in_channels=stages, out_channels=fpn)
    return stages, fpn


def group_norm(channels: int) -> dict[str, Any]:
    """mmdet's GroupNorm of 32 groups at full width; fewer (at least 2 channels a group) when the
    width multiplier leaves too few channels."""
    return dict(type="GN", num_groups=math.gcd(32, max(1, channels // 2)), requires_grad=True)


def level_taps(module: str, channels: int, strides: tuple[int, ...]) -> list[Tap]:
    """One :class:`Tap` per FPN level of a head ``module`` shared by the levels."""
    return [Tap(module, channels, s) for s in strides]


def stage_taps(stages: list[int]) -> list[Tap]:
    """The backbone's four outputs (``backbone[0]`` .. ``backbone[3]``)."""
    return [Tap(f"backbone[{i}]", c, s) for i, (c, s) in enumerate(zip(stages, STAGE_STRIDES))]


def fpn_taps(channels: int, strides: tuple[int, ...]) -> list[Tap]:
    """The neck's outputs (``neck[0]`` .. ``neck[4]``)."""
    return [Tap(f"neck[{i}]", channels, s) for i, s in enumerate(strides)]


class DetectionFamily(Family):
    """A family of mmdet detectors (module docstring)."""

    task = "detection"
    # keyword option of ``config`` -> mmdet's value (what the paper profile keeps): counts are
    # positive integers, ``score_thr`` a score in [0, 1)
    options: dict[str, int | float] = {}
    masks: bool = False  # whether the detector has a mask head (instance segmentation)

    def resolve_options(self, options: dict[str, Any]) -> dict[str, int | float]:
        """mmdet's values updated with ``options``; an unknown option or a bad value is a
        :class:`SpecError` naming the valid ones."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            valid = ", ".join(self.options) or "none"
            raise SpecError(f"{self.name}: unknown detection option(s) {unknown}; valid: {valid}")
        out = dict(self.options)
        for key, value in options.items():
            if isinstance(self.options[key], float):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                        not 0 <= value < 1:
                    raise SpecError(f"{self.name}: detection option {key!r} must be a score in "
                                    f"[0, 1), got {value!r}")
                value = float(value)
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"{self.name}: detection option {key!r} must be a positive "
                                f"integer, got {value!r}")
            out[key] = value
        return out

    def tap_modules(self, variant: str) -> dict[str, str | list[str]]:
        """Tap name -> module name(s); a list tap whose elements all name one module (a head
        shared by the FPN levels) is that module once (its outputs form the list)."""
        out: dict[str, str | list[str]] = {}
        for name, spec in self.taps(variant).items():
            if isinstance(spec, list):
                modules = [t.module for t in spec]
                out[name] = modules[0] if len(set(modules)) == 1 else modules
            else:
                out[name] = spec.module
        return out


class DenseDetectorFamily(DetectionFamily):
    """A one-stage detector (GFL, RetinaNet): mmdet's config ``config_name`` with the ResNet
    depth of each variant (``depths``), ResNet + FPN at the width, the dense head from
    :meth:`head`, and the test config's options."""

    config_name: str = ""
    depths: dict[str, int] = {}
    # test_cfg: candidates per level, detections per image, their lowest score
    options = {"nms_pre": 1000, "max_per_img": 100, "score_thr": 0.05}

    def head(self, width: float) -> dict[str, Any]:
        """What the family changes in mmdet's ``bbox_head`` besides classes and input channels."""
        raise NotImplementedError

    def config(self, variant: str, num_classes: int, width: float = 1.0, norm: str = "BN",
               pretrained: str | None = None, pretrained_prefix: str | None = None,
               **options: Any) -> ConfigDict:
        """mmdet's config of ``variant``; ``options``: ``nms_pre``, ``max_per_img`` and
        ``score_thr`` of the test config (mmdet's 1000, 100 and 0.05 by default)."""
        import suite.nets.det_heads  # noqa: F401  (registers the tap-friendly heads)

        opts = self.resolve_options(options)
        model = copy.deepcopy(library_config(self.config_name).model.to_dict())
        _, fpn = resnet_fpn(model, self.depths[variant], width, norm, pretrained, pretrained_prefix)
        model["bbox_head"].update(num_classes=num_classes, in_channels=fpn, **self.head(width))
        model["test_cfg"].update(opts)
        return ConfigDict(model)
