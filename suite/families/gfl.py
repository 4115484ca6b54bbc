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

import copy
from typing import Any

from mmengine.config import ConfigDict

from suite.families.base import Tap, TapSet, scaled_channels
from suite.families.det_base import (
    DetectionFamily,
    fpn_taps,
    group_norm,
    level_taps,
    resnet_fpn,
    stage_taps,
)
from suite.families.resnet_seg import stage_channels
from suite.tasks.library import library_config

CONFIG = "mmdet::gfl/gfl_r50_fpn_1x_coco.py"
DEPTHS = {"gfl_r50": 50, "gfl_r18": 18}
FPN_STRIDES = (8, 16, 32, 64, 128)
REG_MAX = 16  # the config's: 4 x (reg_max + 1) regression channels per location
# the head-feature taps: the third stacked conv's output before its activation, CrossKD's
# crossing point (its configs' reused_teacher_head_idx = 3: the teacher's 4th conv and
# classifier/regressor run on the student's feature)
CROSS = 2


class GFLFamily(DetectionFamily):
    """GFL-R50 (teacher) and GFL-R18 (student), mmdet."""

    name = "gfl"
    variants = tuple(DEPTHS)
    notes = ("mmdet's gfl_r50_fpn_1x_coco; R18 = depth 18 and FPN inputs as mmdet's R18 configs "
             "(no mmdet GFL-R18 config); head ReLUs out of place for pre-activation taps")
    # test_cfg: candidates per level, detections per image, their lowest score
    options = {"nms_pre": 1000, "max_per_img": 100, "score_thr": 0.05}

    def config(self, variant: str, num_classes: int, width: float = 1.0, norm: str = "BN",
               pretrained: str | None = None, pretrained_prefix: str | None = None,
               **options: Any) -> ConfigDict:
        """mmdet's GFL config of ``variant``; ``options``: ``nms_pre``, ``max_per_img``
        and ``score_thr`` of the test config (mmdet's 1000, 100 and 0.05 by default)."""
        import suite.nets.det_heads  # noqa: F401  (registers TapGFLHead)

        opts = self.resolve_options(options)
        model = copy.deepcopy(library_config(CONFIG).model.to_dict())
        _, fpn = resnet_fpn(model, DEPTHS[variant], width, norm, pretrained, pretrained_prefix)
        feat = scaled_channels(256, width)
        model["bbox_head"].update(type="TapGFLHead", num_classes=num_classes, in_channels=fpn,
                                  feat_channels=feat, norm_cfg=group_norm(feat))
        model["test_cfg"].update(nms_pre=opts["nms_pre"], max_per_img=opts["max_per_img"],
                                 score_thr=opts["score_thr"])
        return ConfigDict(model)

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
