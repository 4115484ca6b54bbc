"""Model families, one module each (timm's habit), and the registry of the suite's model names.

=====================  ================================================  ==============
family                 models                                            source
=====================  ================================================  ==============
``resnet_seg``         pspnet_r18, pspnet_r38, pspnet_r50, pspnet_r101,  mmseg configs
                       deeplabv3plus_r18, deeplabv3plus_r101
``segformer``          segformer_b0                                      mmseg configs
``mobilenet_v2``       mobilenetv2 (DeepLabV3+ head)                     mmseg configs
``efficientnet``       efficientnet_b1 (FCN 1x1 head)                    re-implemented
``espnet``             espnet                                            re-implemented
``mask2former``        mask2former_r50                                   mmseg + mmdet
``context_heads``      danet, deeplabv3_r101 (Table II, without KD)      mmseg configs
``hrnet_seg``          hrnet (HRNetV2-W48 + FCN; Table II, without KD)   mmseg configs
``gfl``                gfl_r50, gfl_r18 (detection)                      mmdet configs
``retinanet``          retinanet_r50, retinanet_r101 (detection)         mmdet configs
                       retinagfl_r50, retinagfl_r101 (RetinaNet with     mmdet configs,
                       GFL box distributions: LD's RetinaGFL)            head re-impl.
``cascade_mask_rcnn``  cascade_mask_rcnn_r50, cascade_mask_rcnn_r101     mmdet configs
                       (detection, instance masks)
                       cascade_mask_rcnn_rpngfl_r50, _rpngfl_r101        mmdet configs,
                       (GFL box distributions in the RPN: LD's RPN-GFL)  head re-impl.
=====================  ================================================  ==============

Each family names its task (:attr:`Family.task`: ``segmentation`` or ``detection``); the
detection families share :mod:`suite.families.det_base`. The GFL-distribution heads of
RetinaGFL and of the GFL RPN are re-implemented for mmdet 3 (:mod:`suite.nets.distribution_heads`)
from LD's authors' mmdet-2 code; the rest of those models is mmdet's config.
"""

from __future__ import annotations

from suite.errors import SpecError
from suite.families.base import Family, Tap, TapSet, scaled_channels
from suite.families.cascade_mask_rcnn import CascadeMaskRCNNFamily
from suite.families.context_heads import ContextHeadFamily
from suite.families.efficientnet import EfficientNetFamily
from suite.families.espnet import ESPNetFamily
from suite.families.gfl import GFLFamily
from suite.families.hrnet import HRNetFamily
from suite.families.mask2former import Mask2FormerFamily
from suite.families.mobilenet_v2 import MobileNetV2Family
from suite.families.resnet_seg import ResNetSegFamily
from suite.families.retinanet import RetinaNetFamily
from suite.families.segformer import SegFormerFamily

FAMILIES: dict[str, Family] = {f.name: f for f in (
    ResNetSegFamily(), SegFormerFamily(), MobileNetV2Family(), EfficientNetFamily(),
    ESPNetFamily(), Mask2FormerFamily(), ContextHeadFamily(), HRNetFamily(), GFLFamily(),
    RetinaNetFamily(), CascadeMaskRCNNFamily())}
MODEL_FAMILIES: dict[str, str] = {v: f.name for f in FAMILIES.values() for v in f.variants}


class UnknownModelError(SpecError, KeyError):
    """A model or family name the suite does not know; the message lists the valid ones."""

    def __str__(self) -> str:
        return str(self.args[0])


def valid_models() -> str:
    """``family: model, model; family: ...`` -- what an unknown name's error lists."""
    return "; ".join(f"{f.name}: {', '.join(f.variants)}" for f in FAMILIES.values())


def get_family(name: str) -> Family:
    """The family called ``name``."""
    if name not in FAMILIES:
        raise UnknownModelError(f"unknown model family {name!r}; valid: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def family_of(model: str) -> Family:
    """The family of the model called ``model``."""
    if model not in MODEL_FAMILIES:
        raise UnknownModelError(f"unknown model {model!r}; valid: {valid_models()}")
    return FAMILIES[MODEL_FAMILIES[model]]


__all__ = ["FAMILIES", "MODEL_FAMILIES", "Family", "Tap", "TapSet", "UnknownModelError",
           "family_of", "get_family", "scaled_channels", "valid_models"]
