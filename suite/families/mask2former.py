"""Mask2Former-R50 (Cheng et al., CVPR 2022), mmseg's
``mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py`` (mmdet's pixel decoder and
transformer decoder), the paper's ADE20K teacher (44.0 M parameters, matched).

Two changes to the library config, both for this suite: the head is
:class:`~suite.nets.mask2former.Mask2FormerLogitsHead` (mmseg's head plus per-pixel logits for
logit-based losses, the ``logits`` tap, stride 4), and the backbone's BatchNorm is trainable
(mmseg freezes it for an ImageNet backbone; the smoke profile trains from scratch). The width
multiplier scales the ResNet-50 and every transformer width (kept a multiple of 8, the number
of heads). The class embedding is a linear layer over queries, not a per-pixel classifier: the
family declares no ``classifier`` tap, so CrossKD and C2VKD cannot use Mask2Former as teacher.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from mmengine.config import ConfigDict

from suite.families.base import Family, Tap, TapSet, backbone_init, norm_config, scaled_channels
from suite.tasks.library import library_config

CONFIG = "mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py"
STRIDES = (4, 8, 16, 32)


def transformer_width(channels: int, width: float) -> int:
    """``channels`` scaled, a multiple of 8 (the attention heads), at least 8."""
    return max(8, int(round(channels * width / 8)) * 8)


def _scale(node: Any, width: float) -> None:
    """Scale every transformer width of a config tree in place."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("embed_dims", "feedforward_channels") and isinstance(value, int):
                node[key] = transformer_width(value, width)
            elif key == "num_feats" and isinstance(value, int):
                node[key] = transformer_width(2 * value, width) // 2
            else:
                _scale(value, width)
    elif isinstance(node, list):
        for item in node:
            _scale(item, width)


def stage_channels(width: float) -> list[int]:
    base = scaled_channels(64, width)
    return [base * 4 * 2**i for i in range(4)]


class Mask2FormerFamily(Family):
    """Mask2Former with a ResNet-50 backbone (mmseg + mmdet)."""

    name = "mask2former"
    variants = ("mask2former_r50",)
    notes = ("mmseg's config; head with per-pixel log-probabilities (logits tap); trainable "
             "backbone BN; no classifier tap (query classification)")

    def config(self, variant: str, num_classes: int, width: float = 1.0, norm: str = "BN",
               pretrained: str | None = None, pretrained_prefix: str | None = None) -> ConfigDict:
        import mmdet.models  # noqa: F401  (the pixel and transformer decoders, the assigner)

        import suite.nets.mask2former  # noqa: F401  (registers Mask2FormerLogitsHead)

        model = copy.deepcopy(library_config(CONFIG).model.to_dict())
        base = scaled_channels(64, width)
        model.pop("pretrained", None)
        model["backbone"].update(stem_channels=base, base_channels=base, norm_cfg=norm_config(norm),
                                 init_cfg=backbone_init(pretrained, pretrained_prefix))
        head = model["decode_head"]
        feat = transformer_width(256, width)
        _scale(head, width)
        head.update(type="Mask2FormerLogitsHead", in_channels=stage_channels(width),
                    feat_channels=feat, out_channels=feat, num_classes=num_classes)
        # GroupNorm of 32 groups as published; at least 2 channels a group at small widths
        head["pixel_decoder"]["norm_cfg"] = dict(type="GN", num_groups=math.gcd(32, feat // 2))
        head["loss_cls"]["class_weight"] = [1.0] * num_classes + [0.1]
        return ConfigDict(model)

    def taps(self, variant: str, width: float = 1.0, num_classes: int = 150) -> TapSet:
        stages = stage_channels(width)
        feat = transformer_width(256, width)
        return {
            "logits": Tap("decode_head.logits", num_classes, 4),
            "head_feature": Tap("decode_head.pixel_decoder[0]", feat, 4),
            "stages": [Tap(f"backbone.layer{i + 1}", c, s)
                       for i, (c, s) in enumerate(zip(stages, STRIDES))],
            "low_level": Tap("backbone.layer1", stages[0], 4),
        }
