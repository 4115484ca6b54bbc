"""mmdet's GFL and RetinaNet heads with out-of-place ReLUs in their stacked convs.

mmcv's ``ConvModule`` builds an in-place ReLU and neither head lets its config change that: the
activation of the last stacked conv then overwrites the tensor its convolution (RetinaNet) or
GroupNorm (GFL) returned, and a tap recorded there (``cls_feature`` / ``reg_feature``, the
crossing point of CrossKD) would hold post-activation values. These subclasses only switch
those ReLUs to out-of-place after mmdet builds the layers: parameters, state-dict keys and
outputs are mmdet's, so checkpoints load either way.
"""

from __future__ import annotations

from mmdet.models.dense_heads import GFLHead, RetinaHead
from mmdet.registry import MODELS
from torch import nn


def relu_out_of_place(*branches: nn.ModuleList) -> None:
    """Make every ``ConvModule`` activation in ``branches`` an out-of-place ReLU."""
    for branch in branches:
        for block in branch:
            act = getattr(block, "activate", None)
            if isinstance(act, nn.ReLU):
                act.inplace = False


@MODELS.register_module()
class TapGFLHead(GFLHead):
    """mmdet's ``GFLHead``, stacked-conv ReLUs out of place (module docstring)."""

    def _init_layers(self) -> None:
        super()._init_layers()
        relu_out_of_place(self.cls_convs, self.reg_convs)


@MODELS.register_module()
class TapRetinaHead(RetinaHead):
    """mmdet's ``RetinaHead``, stacked-conv ReLUs out of place (module docstring)."""

    def _init_layers(self) -> None:
        super()._init_layers()
        relu_out_of_place(self.cls_convs, self.reg_convs)
