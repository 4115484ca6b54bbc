"""GFL (Li et al., NeurIPS 2020, Generalized Focal Loss) on ResNet + FPN, from mmdet's configs.

``mmdet::gfl/gfl_r50_fpn_1x_coco.py``: ResNet-50, FPN from C3 with P6/P7 convolved from P5's
output (strides 8..128), ``GFLHead`` with 4 stacked GN convs per branch, ``reg_max`` 16. GFL-R18
(the paper's student) has no mmdet config: it is the R50 config with what mmdet's own R18
configs (``retinanet_r18_fpn_1x_coco.py``) change -- ``depth=18`` and the FPN's input channels.
The width multiplier (and the rest of the backbone's settings) as in
:mod:`suite.families.det_base`; the head's stacked and feature channels scale with the FPN's,
and its GroupNorm keeps 32 groups where the channels allow (:func:`group_norm`).

The head is :class:`suite.nets.det_heads.TapGFLHead`, mmdet's ``GFLHead`` whose stacked-conv
ReLUs do not overwrite their input, so ``cls_feature`` / ``reg_feature`` (each branch's third
GroupNorm, before its ReLU: CrossKD's crossing point, its configs' ``reused_teacher_head_idx``
3) record pre-activation values. ``bbox_preds`` are the head's box
distributions after each level's learnable ``Scale`` (what mmdet's loss and LD see);
``regressor`` is the ``gfl_reg`` convolution before it.
"""

from __future__ import annotations

from typing import Any

from suite.families.base import Tap, TapSet, scaled_channels
from suite.families.det_base import (
    CROSS,
    DENSE_FPN_STRIDES,
    DenseDetectorFamily,
    fpn_taps,
    group_norm,
    level_taps,
    stage_taps,
)
from suite.families.resnet_seg import stage_channels

DEPTHS = {"gfl_r50": 50, "gfl_r18": 18}
FPN_STRIDES = DENSE_FPN_STRIDES
REG_MAX = 16  # the config's: 4 x (reg_max + 1) regression channels per location


class GFLFamily(DenseDetectorFamily):
    """GFL-R50 (teacher) and GFL-R18 (student), mmdet."""

    name = "gfl"
    variants = tuple(DEPTHS)
    config_name = "mmdet::gfl/gfl_r50_fpn_1x_coco.py"
    depths = DEPTHS
    notes = ("mmdet's gfl_r50_fpn_1x_coco; R18 = depth 18 and FPN inputs as mmdet's R18 configs "
             "(no mmdet GFL-R18 config); head ReLUs out of place for pre-activation taps")

    def head(self, width: float) -> dict[str, Any]:
        feat = scaled_channels(256, width)
        return dict(type="TapGFLHead", feat_channels=feat, norm_cfg=group_norm(feat))

    def taps(self, variant: str, width: float = 1.0, num_classes: int = 80) -> TapSet:
        stages = stage_channels(DEPTHS[variant], scaled_channels(64, width))
        fpn = feat = scaled_channels(256, width)
        reg = 4 * (REG_MAX + 1)
        return {
            "stages": stage_taps(stages),
            "fpn": fpn_taps(fpn, FPN_STRIDES),
            "cls_scores": level_taps("bbox_head.gfl_cls", num_classes, FPN_STRIDES),
            "bbox_preds": [Tap(f"bbox_head.scales.{i}", reg, s) for i, s in enumerate(FPN_STRIDES)],
            "cls_feature": level_taps(f"bbox_head.cls_convs.{CROSS}.gn", feat, FPN_STRIDES),
            "reg_feature": level_taps(f"bbox_head.reg_convs.{CROSS}.gn", feat, FPN_STRIDES),
            "classifier": level_taps("bbox_head.gfl_cls", num_classes, FPN_STRIDES),
            "regressor": level_taps("bbox_head.gfl_reg", reg, FPN_STRIDES),
        }
