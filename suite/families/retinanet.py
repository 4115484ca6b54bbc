"""RetinaNet (Lin et al., ICCV 2017) on ResNet + FPN, from mmdet's configs.

``mmdet::retinanet/retinanet_r50_fpn_1x_coco.py`` (``_base_/models/retinanet_r50_fpn.py``):
FPN from C3 with P6/P7 convolved from C5 (``add_extra_convs='on_input'``, strides 8..128),
``RetinaHead`` with 4 stacked convs per branch (conv + ReLU, no norm), 9 anchors per location.
R101 is the R50 config at ``depth=101`` (mmdet's ``retinanet_r101_fpn_1x_coco.py``). The width
multiplier (and the backbone's settings) as in :mod:`suite.families.det_base`; the head's
stacked and feature channels scale with the FPN's.

The head is :class:`suite.nets.det_heads.TapRetinaHead`, mmdet's ``RetinaHead`` whose
stacked-conv ReLUs do not overwrite their input: ``cls_feature`` / ``reg_feature`` record each
branch's third convolution (``.conv``, bias included) before its ReLU -- CrossKD's crossing
point (its official configs' ``reused_teacher_head_idx`` 3): the 4th conv and the classifier
or regressor are the layers after it.

``retinagfl_r50`` / ``retinagfl_r101`` are RetinaGFL, the RetinaNet of the LD recipes (Zheng et
al., CVPR 2022: ``configs/gfl/retinagfl_r101_2x_coco.py`` and ``configs/ld/ld_retina_r50_1x.py``
of its authors' code): the same config with the head swapped for
:class:`suite.nets.distribution_heads.TapRetinaGFLHead`, a re-implementation for mmdet 3 of the
authors' mmdet-2 ``RetinaGFLHead`` -- ``retina_reg`` predicts GFL's edge distributions
(``reg_max`` 16: ``9 * 4 * 17`` channels), boxes are ``integral * stride`` distances from the
anchor centres (``DistancePointBBoxCoder``) and the box loss is GIoU (weight 2.0) on them.
Everything else (anchors, focal loss, max-IoU assignment 0.5 / 0.4, test config) is the
RetinaNet's; so are the taps' names (``bbox_preds`` / ``regressor`` carry the distributions).
"""

from __future__ import annotations

from typing import Any

from mmengine.config import ConfigDict

from suite.families.base import TapSet, scaled_channels
from suite.families.det_base import (
    CROSS,
    DENSE_FPN_STRIDES,
    DenseDetectorFamily,
    fpn_taps,
    level_taps,
    stage_taps,
)
from suite.families.resnet_seg import stage_channels

DEPTHS = {"retinanet_r50": 50, "retinanet_r101": 101, "retinagfl_r50": 50, "retinagfl_r101": 101}
DISTRIBUTION = ("retinagfl_r50", "retinagfl_r101")  # RetinaGFL: box distributions (LD's)
FPN_STRIDES = DENSE_FPN_STRIDES
ANCHORS = 9  # 3 octave scales x 3 ratios per location (the config's anchor generator)
REG_MAX = 16  # RetinaGFL's: 4 x (reg_max + 1) regression channels per anchor


class RetinaNetFamily(DenseDetectorFamily):
    """RetinaNet-R101 (teacher) and RetinaNet-R50 (student), mmdet; RetinaGFL-R101 / R50 (LD)."""

    name = "retinanet"
    variants = tuple(DEPTHS)
    config_name = "mmdet::retinanet/retinanet_r50_fpn_1x_coco.py"
    depths = DEPTHS
    notes = ("mmdet's retinanet_r{50,101}_fpn_1x_coco; head ReLUs out of place for pre-activation "
             "taps; retinagfl_*: RetinaGFL head (LD's, re-implemented for mmdet 3), reg_max 16, "
             "GIoU 2.0 on decoded boxes")

    def head(self, width: float) -> dict[str, Any]:
        return dict(type="TapRetinaHead", feat_channels=scaled_channels(256, width))

    def config(self, variant: str, num_classes: int, width: float = 1.0, norm: str = "BN",
               pretrained: str | None = None, pretrained_prefix: str | None = None,
               **options: Any) -> ConfigDict:
        """The RetinaNet config (:meth:`DenseDetectorFamily.config`); for RetinaGFL its head
        swapped for ``TapRetinaGFLHead`` (module docstring)."""
        cfg = super().config(variant, num_classes, width, norm=norm, pretrained=pretrained,
                             pretrained_prefix=pretrained_prefix, **options)
        if variant in DISTRIBUTION:
            from suite.nets.distribution_heads import as_distribution_head

            as_distribution_head(cfg["bbox_head"], "TapRetinaGFLHead", REG_MAX)
        return cfg

    def taps(self, variant: str, width: float = 1.0, num_classes: int = 80) -> TapSet:
        stages = stage_channels(DEPTHS[variant], scaled_channels(64, width))
        fpn = feat = scaled_channels(256, width)
        cls = ANCHORS * num_classes
        reg = ANCHORS * 4 * (REG_MAX + 1 if variant in DISTRIBUTION else 1)
        return {
            "stages": stage_taps(stages),
            "fpn": fpn_taps(fpn, FPN_STRIDES),
            "cls_scores": level_taps("bbox_head.retina_cls", cls, FPN_STRIDES),
            "bbox_preds": level_taps("bbox_head.retina_reg", reg, FPN_STRIDES),
            "cls_feature": level_taps(f"bbox_head.cls_convs.{CROSS}.conv", feat, FPN_STRIDES),
            "reg_feature": level_taps(f"bbox_head.reg_convs.{CROSS}.conv", feat, FPN_STRIDES),
            "classifier": level_taps("bbox_head.retina_cls", cls, FPN_STRIDES),
            "regressor": level_taps("bbox_head.retina_reg", reg, FPN_STRIDES),
        }
