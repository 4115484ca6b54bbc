"""MobileNetV2 (Sandler et al., CVPR 2018) + DeepLabV3+, mmseg's
``mobilenet_v2/mobilenet-v2-d8_deeplabv3plus`` config (dilated, output stride 8).

Which head: the paper gives only "MobileNetV2" with 8.3 M parameters and 33.64 mIoU on ADE20K.
mmseg's ADE20K models of this backbone reach 19.71 (FCN), 29.68 (PSPNet), 34.08 (DeepLabV3)
and 34.02 (DeepLabV3+) mIoU with 9.8 / 13.7 / 18.7 / 15.3 M parameters: no head matches both
numbers; DeepLabV3+ is the nearest in accuracy and the smaller of the two nearest, and is the
suite's choice (15.3 M with the auxiliary head, 15.1 M deployed, against the paper's 8.3 M).
The width multiplier is mmseg's ``widen_factor`` (channels rounded to multiples of 8, as in
MobileNetV2) and scales the head's channels.
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

CONFIG = "mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3plus_4xb4-160k_ade20k-512x512.py"
# out_indices (1, 2, 4, 6) of mmseg's MobileNetV2: layer2, layer3, layer5, layer7
STAGE_LAYERS = ("layer2", "layer3", "layer5", "layer7")
STAGE_CHANNELS = (24, 32, 96, 320)
STRIDES = (4, 8, 8, 8)


def stage_channels(width: float) -> list[int]:
    """The stage widths mmseg's MobileNetV2 builds at ``widen_factor=width``."""
    from mmseg.models.utils import make_divisible

    return [make_divisible(c * width, 8) for c in STAGE_CHANNELS]


class MobileNetV2Family(Family):
    """MobileNetV2-d8 + DeepLabV3+ (mmseg)."""

    name = "mobilenet_v2"
    variants = ("mobilenetv2",)
    notes = ("head chosen: DeepLabV3+ (mmseg ADE20K 34.02 mIoU vs the paper's 33.64); 15.1 M "
             "deployed parameters vs the paper's 8.3 M")

    def config(self, variant: str, num_classes: int, width: float = 1.0, norm: str = "BN",
               pretrained: str | None = None, pretrained_prefix: str | None = None) -> ConfigDict:
        model = copy.deepcopy(library_config(CONFIG).model.to_dict())
        norm_cfg = norm_config(norm)
        stages = stage_channels(width)
        model["pretrained"] = None
        model["backbone"].update(widen_factor=width, norm_cfg=norm_cfg,
                                 init_cfg=backbone_init(pretrained, pretrained_prefix))
        model["decode_head"].update(in_channels=stages[3], c1_in_channels=stages[0],
                                    channels=scaled_channels(512, width),
                                    c1_channels=scaled_channels(48, width),
                                    num_classes=num_classes, norm_cfg=norm_cfg,
                                    act_cfg=dict(RELU))
        model["auxiliary_head"].update(in_channels=stages[2],
                                       channels=scaled_channels(256, width),
                                       num_classes=num_classes, norm_cfg=norm_cfg)
        return ConfigDict(model)

    def taps(self, variant: str, width: float = 1.0, num_classes: int = 21) -> TapSet:
        stages = stage_channels(width)
        head = scaled_channels(512, width)
        return {
            "logits": Tap("decode_head.conv_seg", num_classes, 4),
            "classifier": Tap("decode_head.conv_seg", num_classes, 4),
            "head_feature": Tap("decode_head.sep_bottleneck", head, 4),
            "head_feature_preact": Tap("decode_head.sep_bottleneck.1.pointwise_conv.bn", head, 4),
            "stages": [Tap(f"backbone.{n}", c, s)
                       for n, c, s in zip(STAGE_LAYERS, stages, STRIDES)],
            "low_level": Tap("backbone.layer2", stages[0], 4),
        }
