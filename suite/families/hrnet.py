"""HRNetV2-W48 + FCN (Wang et al., TPAMI 2020), mmseg's ``hrnet/fcn_hr48`` config.

The paper's Table II prints "HRNet" (65.9 M parameters, 81.1 mIoU) as the large model trained
without KD on Cityscapes: HRNetV2-W48 with mmseg's FCN head (one 1x1 convolution over the four
branches resized and concatenated). ``fcn_hr48`` is ``_base_/models/fcn_hr18.py`` with the
branch widths (48, 96, 192, 384). The width multiplier scales every branch (and stage 1's
bottleneck width); the 64-channel stem is fixed in mmseg's HRNet. The backbone returns its four
branches as a list: the stage taps index it (``backbone[i]``, strides 4, 8, 16, 32).
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

BASE = "mmseg::_base_/models/fcn_hr18.py"
BRANCHES = (48, 96, 192, 384)  # HRNetV2-W48 (mmseg's fcn_hr48 configs)
STAGE1 = 64  # stage 1's bottleneck width (x4 out)
STRIDES = (4, 8, 16, 32)


def branch_channels(width: float) -> list[int]:
    """The four branch widths at ``width``."""
    return [scaled_channels(c, width) for c in BRANCHES]


class HRNetFamily(Family):
    """HRNetV2-W48 + FCN head (mmseg)."""

    name = "hrnet_seg"
    variants = ("hrnet",)
    notes = "mmseg's fcn_hr48 config (HRNetV2-W48, FCN head over the concatenated branches)"

    def config(self, variant: str, num_classes: int, width: float = 1.0, norm: str = "BN",
               pretrained: str | None = None, pretrained_prefix: str | None = None) -> ConfigDict:
        model = copy.deepcopy(library_config(BASE).model.to_dict())
        norm_cfg = norm_config(norm)
        branches = branch_channels(width)
        model["pretrained"] = None
        extra = model["backbone"]["extra"]
        extra["stage1"]["num_channels"] = (scaled_channels(STAGE1, width),)
        for stage, n in (("stage2", 2), ("stage3", 3), ("stage4", 4)):
            extra[stage]["num_channels"] = tuple(branches[:n])
        model["backbone"].update(norm_cfg=norm_cfg,
                                 init_cfg=backbone_init(pretrained, pretrained_prefix))
        model["decode_head"].update(in_channels=branches, channels=sum(branches),
                                    num_classes=num_classes, norm_cfg=norm_cfg,
                                    act_cfg=dict(RELU))
        return ConfigDict(model)

    def taps(self, variant: str, width: float = 1.0, num_classes: int = 21) -> TapSet:
        branches = branch_channels(width)
        return {
            "logits": Tap("decode_head.conv_seg", num_classes, 4),
            "classifier": Tap("decode_head.conv_seg", num_classes, 4),
            "head_feature": Tap("decode_head.convs", sum(branches), 4),
            "head_feature_preact": Tap("decode_head.convs.0.bn", sum(branches), 4),
            "stages": [Tap(f"backbone[{i}]", c, s)
                       for i, (c, s) in enumerate(zip(branches, STRIDES))],
            "low_level": Tap("backbone[0]", branches[0], STRIDES[0]),
        }
