"""Cascade Mask R-CNN (Cai & Vasconcelos, CVPR 2018 / TPAMI 2019) on ResNet + FPN, mmdet.

``mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py``: FPN from C2 with a max-pooled P6
(strides 4..64), an RPN head (3 anchors per location), three cascade stages of
``Shared2FCBBoxHead`` (1024-wide fully connected layers, class-agnostic boxes) and
``FCNMaskHead`` (4 convs of 256). R101 is the R50 config at ``depth=101`` (mmdet's
``cascade-mask-rcnn_r101_fpn_1x_coco.py``). The width multiplier (and the backbone's settings)
as in :mod:`suite.families.det_base`; the RPN's feature channels, the RoI extractors' channels
(the FPN's), the box heads' fully connected width and the mask heads' conv channels scale too.
``num_classes`` applies to the three box heads and the mask head.

Cost options (keyword options of :meth:`CascadeMaskRCNNFamily.config`, mmdet's values by
default, so the paper profile keeps them; a profile's ``detection:`` section lowers them):

* ``train_proposals`` (2000): RPN proposals kept per image in training (``nms_pre`` and
  ``max_per_img`` of ``train_cfg.rpn_proposal``);
* ``test_proposals`` (1000): the same at test time (``test_cfg.rpn``);
* ``sampled_rois`` (512): RoIs sampled per image for each cascade stage's loss
  (``train_cfg.rcnn[i].sampler.num``; the positive fraction 0.25 stays);
* ``max_per_img`` (100): detections kept per image (``test_cfg.rcnn``);
* ``score_thr`` (0.05): the lowest score of a kept detection (``test_cfg.rcnn``). A briefly
  trained detector may score nothing above mmdet's 0.05, and CocoMetric then reports no AP
  at all; a smoke profile can lower it.

Taps: ``stages``, ``fpn``, ``rpn_cls_scores`` and ``rpn_bbox_preds`` (the RPN head's
classification and regression convolutions, per level; one sigmoid score and four deltas per
anchor), ``rpn_feature`` (the RPN's shared 3x3 convolution before its activation, which mmdet's
``RPNHead`` applies out of place: the crossing point of CrossKD on the RPN) and
``rpn_classifier`` / ``rpn_regressor`` (the modules after it). No RoI-level tap is declared: the student's and the teacher's RoIs are different
proposals (each network's own RPN), so their per-RoI features do not pair up without re-pooling
one network's RoIs on the other's features, which no method of the suite does.

``cascade_mask_rcnn_rpngfl_r50`` / ``_r101`` give the RPN GFL's box distributions, as the
two-stage recipe of LD (Zheng et al., CVPR 2022: ``configs/gfl/fasterrcnn_gfl_r50_1x.py`` and
``configs/ld/ld_r50_faster_r101_1x.py`` of its authors' code) does for Faster R-CNN: the same
config with ``rpn_head`` swapped for :class:`suite.nets.distribution_heads.RPNGFLHead`, a
re-implementation for mmdet 3 of the authors' mmdet-2 ``RPNGFLHead`` -- ``rpn_reg`` predicts
the edge distributions (``reg_max`` 16: ``3 * 4 * 17`` channels), proposals are ``integral *
stride`` distances from the anchor centres (``DistancePointBBoxCoder``), then mmdet's RPN
filtering and NMS, and the RPN's box loss is GIoU (weight 2.0) on them. The RPN's sigmoid
cross-entropy, max-IoU assigner and random sampler, the cascade RoI heads and the cost options
are unchanged, and so are the taps' names (``rpn_bbox_preds`` / ``rpn_regressor`` carry the
distributions).
"""

from __future__ import annotations

import copy
from typing import Any

from mmengine.config import ConfigDict

from suite.families.base import TapSet, scaled_channels
from suite.families.det_base import DetectionFamily, fpn_taps, level_taps, resnet_fpn, stage_taps
from suite.families.resnet_seg import stage_channels
from suite.tasks.library import library_config

CONFIG = "mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py"
DEPTHS = {"cascade_mask_rcnn_r50": 50, "cascade_mask_rcnn_r101": 101,
          "cascade_mask_rcnn_rpngfl_r50": 50, "cascade_mask_rcnn_rpngfl_r101": 101}
# the RPN regresses box distributions (LD's two-stage recipe)
DISTRIBUTION = ("cascade_mask_rcnn_rpngfl_r50", "cascade_mask_rcnn_rpngfl_r101")
FPN_STRIDES = (4, 8, 16, 32, 64)
ANCHORS = 3  # one scale x 3 ratios per location (the RPN's anchor generator)
REG_MAX = 16  # the GFL RPN's: 4 x (reg_max + 1) regression channels per anchor


class CascadeMaskRCNNFamily(DetectionFamily):
    """Cascade Mask R-CNN R101 (teacher) and R50 (student), mmdet; with a GFL RPN (LD)."""

    name = "cascade_mask_rcnn"
    variants = tuple(DEPTHS)
    notes = ("mmdet's cascade-mask-rcnn_r{50,101}_fpn_1x_coco; cost options (proposals, sampled "
             "RoIs, detections per image) default to mmdet's values; *_rpngfl_*: GFL RPN head "
             "(LD's, re-implemented for mmdet 3), reg_max 16, GIoU 2.0 on decoded boxes")
    options = {"train_proposals": 2000, "test_proposals": 1000, "sampled_rois": 512,
               "max_per_img": 100, "score_thr": 0.05}
    masks = True

    def config(self, variant: str, num_classes: int, width: float = 1.0, norm: str = "BN",
               pretrained: str | None = None, pretrained_prefix: str | None = None,
               **options: Any) -> ConfigDict:
        """mmdet's Cascade Mask R-CNN config of ``variant``; ``options``: the cost options of
        the module docstring."""
        opts = self.resolve_options(options)
        model = copy.deepcopy(library_config(CONFIG).model.to_dict())
        _, fpn = resnet_fpn(model, DEPTHS[variant], width, norm, pretrained, pretrained_prefix)
        model["rpn_head"].update(in_channels=fpn, feat_channels=scaled_channels(256, width))
        if variant in DISTRIBUTION:
            from suite.nets.distribution_heads import as_distribution_head

            as_distribution_head(model["rpn_head"], "RPNGFLHead", REG_MAX)
        roi = model["roi_head"]
        for extractor in ("bbox_roi_extractor", "mask_roi_extractor"):
            roi[extractor]["out_channels"] = fpn
        for head in roi["bbox_head"]:
            head.update(in_channels=fpn, fc_out_channels=scaled_channels(1024, width),
                        num_classes=num_classes)
        roi["mask_head"].update(in_channels=fpn, conv_out_channels=scaled_channels(256, width),
                                num_classes=num_classes)

        train, test = model["train_cfg"], model["test_cfg"]
        train["rpn_proposal"].update(nms_pre=opts["train_proposals"],
                                     max_per_img=opts["train_proposals"])
        for stage in train["rcnn"]:
            stage["sampler"]["num"] = opts["sampled_rois"]
        test["rpn"].update(nms_pre=opts["test_proposals"], max_per_img=opts["test_proposals"])
        test["rcnn"].update(max_per_img=opts["max_per_img"], score_thr=opts["score_thr"])
        return ConfigDict(model)

    def taps(self, variant: str, width: float = 1.0, num_classes: int = 80) -> TapSet:
        stages = stage_channels(DEPTHS[variant], scaled_channels(64, width))
        fpn = scaled_channels(256, width)
        reg = ANCHORS * 4 * (REG_MAX + 1 if variant in DISTRIBUTION else 1)
        return {
            "stages": stage_taps(stages),
            "fpn": fpn_taps(fpn, FPN_STRIDES),
            "rpn_cls_scores": level_taps("rpn_head.rpn_cls", ANCHORS, FPN_STRIDES),
            "rpn_bbox_preds": level_taps("rpn_head.rpn_reg", reg, FPN_STRIDES),
            "rpn_feature": level_taps("rpn_head.rpn_conv", fpn, FPN_STRIDES),
            "rpn_classifier": level_taps("rpn_head.rpn_cls", ANCHORS, FPN_STRIDES),
            "rpn_regressor": level_taps("rpn_head.rpn_reg", reg, FPN_STRIDES),
        }
