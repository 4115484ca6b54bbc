"""ESPNet (Mehta et al., ECCV 2018) -- a re-implementation (:mod:`suite.nets.espnet`), flagged.

An mmseg ``EncoderDecoder`` (wrapper and data preprocessor from
``mmseg::_base_/models/fcn_r50-d8.py``) around the re-implemented encoder and decoder, the
paper's full ESPNet (alpha_2 = 2, alpha_3 = 8). The decoder's width is the class count, so the
parameter count depends on the dataset: 0.36 M at 19 classes (the paper's figure), more at
ADE20K's 150 (0.95 M; suite/families/README.md). The width multiplier scales the encoder.
"""

from __future__ import annotations

import copy

from mmengine.config import ConfigDict

from suite.families.base import Family, Tap, TapSet, backbone_init, norm_config
from suite.tasks.library import library_config

BASE = "mmseg::_base_/models/fcn_r50-d8.py"
STAGES = ("backbone.b1", "backbone.b2", "backbone.level3_0", "backbone.b3")
STRIDES = (2, 4, 8, 8)


def stage_channels(width: float) -> list[int]:
    """Channels of the encoder's four outputs at ``width``."""
    c1, c2, c3 = (max(5, int(round(c * width))) for c in (16, 64, 128))
    return [c1 + 3, 2 * c2 + 3, c3, 2 * c3]


class ESPNetFamily(Family):
    """ESPNet (encoder + light-weight decoder), re-implemented from the paper."""

    name = "espnet"
    variants = ("espnet",)
    reimplementation = True
    notes = "re-implemented from Mehta et al. ECCV 2018 (alpha_2 = 2, alpha_3 = 8)"

    def config(self, variant: str, num_classes: int, width: float = 1.0, norm: str = "BN",
               pretrained: str | None = None, pretrained_prefix: str | None = None) -> ConfigDict:
        import suite.nets.espnet  # noqa: F401  (registers ESPNetEncoder and ESPNetHead)

        model = copy.deepcopy(library_config(BASE).model.to_dict())
        model["pretrained"] = None
        model["backbone"] = dict(type="ESPNetEncoder", widen_factor=width,
                                 init_cfg=backbone_init(pretrained, pretrained_prefix))
        model["decode_head"] = dict(
            type="ESPNetHead", in_channels=stage_channels(width), channels=num_classes,
            num_classes=num_classes, dropout_ratio=0.0, norm_cfg=norm_config(norm),
            align_corners=False,
            loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0))
        model.pop("auxiliary_head", None)
        return ConfigDict(model)

    def taps(self, variant: str, width: float = 1.0, num_classes: int = 21) -> TapSet:
        stages = stage_channels(width)
        return {
            "logits": Tap("decode_head.conv_seg", num_classes, 1),
            "classifier": Tap("decode_head.conv_seg", num_classes, 1),
            "head_feature": Tap("decode_head.fuse_s2", num_classes, 2),
            "head_feature_preact": Tap("decode_head.fuse_s2.1", num_classes, 2),
            "stages": [Tap(n, c, s) for n, c, s in zip(STAGES, stages, STRIDES)],
            "low_level": Tap("backbone.b1", stages[0], 2),
        }
