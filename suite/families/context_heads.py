"""DANet and DeepLabV3 on dilated ResNet-V1c-101 (output stride 8), from mmseg's own configs.

The paper's Table II prints them as large models trained without KD (DANet on VOC, DeepLabV3-101
on ADE20K): mmseg's ``_base_/models/{danet,deeplabv3}_r50-d8.py`` with what its ``*_r101-d8``
configs change (depth 101), the width multiplier on every channel count (backbone, head,
DANet's position-attention width, auxiliary head) and the dataset's class count. Module names
are mmseg's: DANet's main logits (``pam_cam``, the sum of both attention branches) come from
``decode_head.conv_seg``; its two per-branch classifiers are ``pam_conv_seg``/``cam_conv_seg``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

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
from suite.families.resnet_seg import STRIDES, stage_channels
from suite.tasks.library import library_config


@dataclass(frozen=True)
class ContextHead:
    """One variant: mmseg base config, depth, the head's tap names (feature, pre-activation)."""

    base: str
    depth: int
    feature: str
    preact: str


VARIANTS: dict[str, ContextHead] = {
    # mmseg configs/danet/danet_r101-d8_*.py
    "danet": ContextHead("mmseg::_base_/models/danet_r50-d8.py", 101,
                         "decode_head.pam_out_conv", "decode_head.pam_out_conv.bn"),
    # mmseg configs/deeplabv3/deeplabv3_r101-d8_*.py
    "deeplabv3_r101": ContextHead("mmseg::_base_/models/deeplabv3_r50-d8.py", 101,
                                  "decode_head.bottleneck", "decode_head.bottleneck.bn"),
}
HEAD_CHANNELS, AUX_CHANNELS, PAM_CHANNELS = 512, 256, 64


class ContextHeadFamily(Family):
    """DANet-R101 and DeepLabV3-R101 (mmseg), Table II's large models without KD."""

    name = "context_heads"
    variants = tuple(VARIANTS)
    notes = "mmseg's danet_r101-d8 and deeplabv3_r101-d8 configs (ResNet-V1c-101, output stride 8)"

    def config(self, variant: str, num_classes: int, width: float = 1.0, norm: str = "BN",
               pretrained: str | None = None, pretrained_prefix: str | None = None) -> ConfigDict:
        arch = VARIANTS[variant]
        model = copy.deepcopy(library_config(arch.base).model.to_dict())
        norm_cfg = norm_config(norm)
        base = scaled_channels(64, width)
        stages = stage_channels(arch.depth, base)
        model["pretrained"] = None
        model["backbone"].update(depth=arch.depth, stem_channels=base, base_channels=base,
                                 norm_cfg=norm_cfg,
                                 init_cfg=backbone_init(pretrained, pretrained_prefix))
        head = model["decode_head"]
        head.update(in_channels=stages[3], channels=scaled_channels(HEAD_CHANNELS, width),
                    num_classes=num_classes, norm_cfg=norm_cfg, act_cfg=dict(RELU))
        if "pam_channels" in head:
            head["pam_channels"] = scaled_channels(PAM_CHANNELS, width)
        model["auxiliary_head"].update(in_channels=stages[2],
                                       channels=scaled_channels(AUX_CHANNELS, width),
                                       num_classes=num_classes, norm_cfg=norm_cfg)
        return ConfigDict(model)

    def taps(self, variant: str, width: float = 1.0, num_classes: int = 21) -> TapSet:
        arch = VARIANTS[variant]
        stages = stage_channels(arch.depth, scaled_channels(64, width))
        head = scaled_channels(HEAD_CHANNELS, width)
        return {
            "logits": Tap("decode_head.conv_seg", num_classes, 8),
            "classifier": Tap("decode_head.conv_seg", num_classes, 8),
            "head_feature": Tap(arch.feature, head, 8),
            "head_feature_preact": Tap(arch.preact, head, 8),
            "stages": [Tap(f"backbone.layer{i + 1}", c, s)
                       for i, (c, s) in enumerate(zip(stages, STRIDES))],
            "low_level": Tap("backbone.layer1", stages[0], STRIDES[0]),
        }
