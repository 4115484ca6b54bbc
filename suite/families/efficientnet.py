"""EfficientNet-B1 (Tan & Le, ICML 2019) + a 1x1 FCN head -- the backbone is a re-implementation
(:mod:`suite.nets.efficientnet`; mmpretrain's needs torchvision, absent here).

The paper names only "EfficientNet-B1" (6.7 M parameters on VOC and Cityscapes). The suite's
choice, flagged as an assumption: the B1 feature extractor up to its 1280-channel 1x1
convolution, dilated to output stride 8 like the other students, and mmseg's ``FCNHead`` with one
1x1 convolution to 128 channels (no auxiliary head) -- 6.5 M + 0.17 M, the paper's count. The
head config comes from ``mmseg::_base_/models/fcn_r50-d8.py``; the width multiplier scales the
backbone (``widen_factor``) and the head's channels.
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

BASE = "mmseg::_base_/models/fcn_r50-d8.py"
STAGES = ("stages.1", "stages.2", "stages.4", "head")
STRIDES = (4, 8, 8, 8)


def stage_channels(width: float) -> list[int]:
    """Channels of the four tapped outputs (stage 2, 3, 5 and the final 1x1 convolution)."""
    from suite.nets.efficientnet import round_channels

    last = round_channels(320 * width)
    return [round_channels(24 * width), round_channels(40 * width),
            round_channels(112 * width), 4 * last]


class EfficientNetFamily(Family):
    """EfficientNet-B1-d8 + FCN (1x1) head; the backbone is re-implemented."""

    name = "efficientnet"
    variants = ("efficientnet_b1",)
    reimplementation = True
    notes = ("backbone re-implemented from the paper (torch only); head chosen: one 1x1 conv "
             "to 128 channels (mmseg FCNHead), matching the paper's 6.7 M")

    def config(self, variant: str, num_classes: int, width: float = 1.0, norm: str = "BN",
               pretrained: str | None = None, pretrained_prefix: str | None = None) -> ConfigDict:
        import suite.nets.efficientnet  # noqa: F401  (registers EfficientNet)

        model = copy.deepcopy(library_config(BASE).model.to_dict())
        stages = stage_channels(width)
        model["pretrained"] = None
        model["backbone"] = dict(type="EfficientNet", arch="b1", widen_factor=width,
                                 norm_cfg=dict(type=norm),  # the cell's BN / SyncBN
                                 init_cfg=backbone_init(pretrained, pretrained_prefix))
        model["decode_head"].update(in_channels=stages[3], in_index=3,
                                    channels=scaled_channels(128, width), num_convs=1,
                                    kernel_size=1, concat_input=False, num_classes=num_classes,
                                    norm_cfg=norm_config(norm), act_cfg=dict(RELU))
        model.pop("auxiliary_head", None)
        return ConfigDict(model)

    def taps(self, variant: str, width: float = 1.0, num_classes: int = 21) -> TapSet:
        stages = stage_channels(width)
        head = scaled_channels(128, width)
        return {
            "logits": Tap("decode_head.conv_seg", num_classes, 8),
            "classifier": Tap("decode_head.conv_seg", num_classes, 8),
            "head_feature": Tap("decode_head.convs", head, 8),
            "head_feature_preact": Tap("decode_head.convs.0.bn", head, 8),
            "stages": [Tap(f"backbone.{n}", c, s) for n, c, s in zip(STAGES, stages, STRIDES)],
            "low_level": Tap("backbone.stages.1", stages[0], 4),
        }
