"""PSPNet and DeepLabV3+ on dilated ResNet-V1c (output stride 8), from mmseg's own configs.

mmseg's ``_base_/models/{pspnet,deeplabv3plus}_r50-d8.py`` with what its per-depth configs
change (``pspnet_r18-d8`` sets depth 18, head channels 128, ...), the width multiplier on every
channel count, and the dataset's class count. Module names are mmseg's.

PSPNet-38 (the paper's Table II student) is ambiguous: the paper prints 58.6 M parameters on
VOC and 47.4 M on Cityscapes for the same network, and no 38-layer ResNet has either count (a
bottleneck ResNet-50 PSPNet already has 49 M). The suite's assumption, flagged as such: a
bottleneck ResNet-V1c with stage blocks (2, 3, 5, 2) -- 3 x 12 + 2 = 38 weighted layers, the
ResNet-50 layout one block shorter per stage -- under mmseg's PSPNet-R50 head (512 channels).
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
from suite.tasks.library import library_config


@dataclass(frozen=True)
class ResNetSeg:
    """One variant: mmseg base config, depth and the per-depth head widths."""

    base: str
    depth: int
    head_channels: int
    aux_channels: int
    c1_channels: int | None = None  # DeepLabV3+ low-level projection width


PSP = "mmseg::_base_/models/pspnet_r50-d8.py"
DLV3P = "mmseg::_base_/models/deeplabv3plus_r50-d8.py"
VARIANTS: dict[str, ResNetSeg] = {
    # mmseg configs/pspnet/pspnet_r{18,50,101}-d8_*.py
    "pspnet_r18": ResNetSeg(PSP, 18, 128, 64),
    "pspnet_r38": ResNetSeg(PSP, 38, 512, 256),  # the suite's assumption (module docstring)
    "pspnet_r50": ResNetSeg(PSP, 50, 512, 256),
    "pspnet_r101": ResNetSeg(PSP, 101, 512, 256),
    # mmseg configs/deeplabv3plus/deeplabv3plus_r{18,101}-d8_*.py
    "deeplabv3plus_r18": ResNetSeg(DLV3P, 18, 128, 64, c1_channels=12),
    "deeplabv3plus_r101": ResNetSeg(DLV3P, 101, 512, 256, c1_channels=48),
}
STRIDES = (4, 8, 8, 8)  # ResNet-V1c d8: layer3 and layer4 dilated


def stage_channels(depth: int, base: int) -> list[int]:
    """Output channels of the four ResNet stages (BasicBlock x1, Bottleneck x4)."""
    expansion = 1 if depth < 38 else 4
    return [base * expansion * 2**i for i in range(4)]


class ResNetSegFamily(Family):
    """PSPNet-R{18,38,50,101} and DeepLabV3+-R{18,101} (mmseg)."""

    name = "resnet_seg"
    variants = tuple(VARIANTS)
    notes = ("PSPNet-38: bottleneck ResNet-V1c, blocks (2, 3, 5, 2), PSPNet-R50 head -- an "
             "assumption (the paper's 58.6 M / 47.4 M match no 38-layer ResNet)")

    def config(self, variant: str, num_classes: int, width: float = 1.0, norm: str = "BN",
               pretrained: str | None = None, pretrained_prefix: str | None = None) -> ConfigDict:
        arch = VARIANTS[variant]
        model = copy.deepcopy(library_config(arch.base).model.to_dict())
        norm_cfg = norm_config(norm)
        base = scaled_channels(64, width)
        stages = stage_channels(arch.depth, base)

        model["pretrained"] = None
        backbone = model["backbone"]
        backbone.update(depth=arch.depth, stem_channels=base, base_channels=base, norm_cfg=norm_cfg)
        if arch.depth == 38:
            import suite.nets.resnet  # noqa: F401  (registers ResNetV1cBlocks)

            backbone.update(type="ResNetV1cBlocks", stage_blocks=(2, 3, 5, 2))
        backbone["init_cfg"] = backbone_init(pretrained, pretrained_prefix)

        head = model["decode_head"]
        head.update(in_channels=stages[3], channels=scaled_channels(arch.head_channels, width),
                    num_classes=num_classes, norm_cfg=norm_cfg, act_cfg=dict(RELU))
        if arch.c1_channels is not None:
            head.update(c1_in_channels=stages[0],
                        c1_channels=scaled_channels(arch.c1_channels, width))
        model["auxiliary_head"].update(in_channels=stages[2],
                                       channels=scaled_channels(arch.aux_channels, width),
                                       num_classes=num_classes, norm_cfg=norm_cfg)
        return ConfigDict(model)  # attribute access (``test_cfg.mode``) as mmseg expects

    def taps(self, variant: str, width: float = 1.0, num_classes: int = 21) -> TapSet:
        arch = VARIANTS[variant]
        stages = stage_channels(arch.depth, scaled_channels(64, width))
        head = scaled_channels(arch.head_channels, width)
        psp = arch.c1_channels is None
        feature, preact = (("decode_head.bottleneck", "decode_head.bottleneck.bn") if psp else
                           ("decode_head.sep_bottleneck",
                            "decode_head.sep_bottleneck.1.pointwise_conv.bn"))
        head_stride = 8 if psp else 4  # DeepLabV3+ decodes at the low-level (stride 4) map
        return {
            "logits": Tap("decode_head.conv_seg", num_classes, head_stride),
            "classifier": Tap("decode_head.conv_seg", num_classes, head_stride),
            "head_feature": Tap(feature, head, head_stride),
            "head_feature_preact": Tap(preact, head, head_stride),
            "stages": [Tap(f"backbone.layer{i + 1}", c, s)
                       for i, (c, s) in enumerate(zip(stages, STRIDES))],
            "low_level": Tap("backbone.layer1", stages[0], STRIDES[0]),
        }
