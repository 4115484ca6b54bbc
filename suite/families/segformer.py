"""SegFormer (Xie et al., NeurIPS 2021): mmseg's MixVisionTransformer + SegformerHead.

``mmseg::_base_/models/segformer_mit-b0.py`` unchanged but for the width multiplier, which
scales ``embed_dims`` (every stage's width is ``embed_dims x num_heads[i]``, so the head size
stays) and the head's channels. The backbone returns its four stage maps as a list: the stage
taps index it (``backbone[i]``).
"""

from __future__ import annotations

import copy

from mmengine.config import ConfigDict

from suite.families.base import (
    RELU,
    Family,
    Tap,
    TapSet,
    backbone_init,
    norm_config,
    scaled_channels,
)
from suite.tasks.library import library_config

BASE = "mmseg::_base_/models/segformer_mit-b0.py"
NUM_HEADS = (1, 2, 5, 8)
STRIDES = (4, 8, 16, 32)


def _dims(width: float) -> tuple[int, list[int], int]:
    embed = scaled_channels(32, width)
    return embed, [embed * h for h in NUM_HEADS], scaled_channels(256, width)


class SegFormerFamily(Family):
    """SegFormer-B0 (3.8 M parameters in the paper; mmseg's config)."""

    name = "segformer"
    variants = ("segformer_b0",)
    notes = "mmseg's segformer_mit-b0 config (MiT-B0 + SegformerHead, 256 channels)"

    def config(self, variant: str, num_classes: int, width: float = 1.0, norm: str = "BN",
               pretrained: str | None = None, pretrained_prefix: str | None = None) -> ConfigDict:
        model = copy.deepcopy(library_config(BASE).model.to_dict())
        embed, stages, head = _dims(width)
        model["pretrained"] = None
        model["backbone"].update(embed_dims=embed,
                                 init_cfg=backbone_init(pretrained, pretrained_prefix))
        model["decode_head"].update(in_channels=stages, channels=head, num_classes=num_classes,
                                    norm_cfg=norm_config(norm), act_cfg=dict(RELU))
        return ConfigDict(model)

    def taps(self, variant: str, width: float = 1.0, num_classes: int = 21) -> TapSet:
        _, stages, head = _dims(width)
        return {
            "logits": Tap("decode_head.conv_seg", num_classes, 4),
            "classifier": Tap("decode_head.conv_seg", num_classes, 4),
            "head_feature": Tap("decode_head.fusion_conv", head, 4),
            "head_feature_preact": Tap("decode_head.fusion_conv.bn", head, 4),
            "stages": [Tap(f"backbone[{i}]", c, s) for i, (c, s) in enumerate(zip(stages, STRIDES))],
            "low_level": Tap("backbone[0]", stages[0], STRIDES[0]),
        }
