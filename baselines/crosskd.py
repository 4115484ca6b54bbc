"""CrossKD — cross-head knowledge distillation, dense adaptation to segmentation.

Paper: J. Wang, Y. Chen, Z. Zheng, X. Li, M.-M. Cheng, Q. Hou, "CrossKD: cross-head knowledge
distillation for object detection", CVPR 2024. Reference code: jbwang1997/CrossKD (mmdet 3.x;
detection only).

CrossKD feeds an intermediate feature of the *student's* head through the *teacher's* remaining
head layers and distils the resulting "cross-head" prediction towards the teacher's prediction,
instead of mimicking the teacher with the student's own head. For mmseg decode heads the only
layer after the feature tap is the classifier ``conv_seg`` (dropout is off in the frozen
teacher), so::

    z_X  = conv_seg_T( A(f_S) )          A: 1x1 conv student width -> teacher width (trainable,
                                            identity when widths match; our addition, as upstream
                                            pairs heads of equal width)
    L    = w * tau^2 * mean_{n,i} KL( softmax(z_T[n,:,i]/tau) || softmax(z_X[n,:,i]/tau) )

Reduction: sum over classes, mean over the N*h*w pixels. The teacher classifier is frozen and
kept out of the module tree (no training, not saved); its weights are used detached, so the
gradient reaches only f_S and A. The student keeps its own classifier and task loss.
Defaults: weight 1, tau 1 (upstream's classification-branch KD weight 1 for GFL/RetinaNet).
Attach points: ``head_feature`` (student), ``logits`` (teacher); ``teacher_classifier`` is the
teacher's ``decode_head.conv_seg`` (filled by the distiller; its ``in_channels`` gives the
teacher width when ``teacher_channels`` is not given, as the teacher's feature is not tapped).
Ground truth: no.
Re-implementation: yes (no segmentation version upstream; the width adapter is ours).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from baselines._common import (
    TeacherClassifierMixin,
    align_to_teacher,
    prefixed,
    resolve_options,
    width_adapter,
)
from suite.methods.divergences import pixel_kl
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import LossSpec, MethodSpec, S, T


@LOSSES.register_module(name="crosskd")
class CrossHeadKDLoss(TeacherClassifierMixin, nn.Module):
    """Pixel KL between the teacher's logits and the teacher classifier on the student feature."""

    def __init__(self, student_channels: int, teacher_channels: int | None = None,
                 teacher_classifier: nn.Module | None = None, tau: float = 1.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if teacher_channels is None:  # the teacher's head feature is not tapped: ask conv_seg
            teacher_channels = getattr(teacher_classifier, "in_channels", None)
        if teacher_channels is None:
            raise ValueError("CrossKD needs teacher_channels or a Conv2d teacher_classifier")
        self.adapter = width_adapter(student_channels, teacher_channels)
        self.set_teacher_classifier(teacher_classifier)
        self.tau = tau
        self.loss_weight = loss_weight

    @property
    def teacher_classifier(self) -> nn.Module:
        return self._require_teacher_classifier(
            "CrossKD needs the frozen teacher classifier (teacher_classifier=)")

    def cross_logits(self, feat: Tensor) -> Tensor:
        x = self.adapter(feat)
        cls = self.teacher_classifier
        if isinstance(cls, nn.Conv2d):
            bias = cls.bias.detach() if cls.bias is not None else None
            return F.conv2d(x, cls.weight.detach(), bias, cls.stride, cls.padding,
                            cls.dilation, cls.groups)
        return cls(x)

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        z_x, preds_T = align_to_teacher(self.cross_logits(preds_S), preds_T)
        return self.loss_weight * pixel_kl(z_x, preds_T, self.tau).mean()


DEFAULTS: dict[str, Any] = {"weight": 1.0, "tau": 1.0}


@METHODS.register_module(name="crosskd")
def crosskd(options: dict[str, Any] | None = None) -> MethodSpec:
    """Student head feature -> teacher classifier, KD to the teacher's logits."""
    o = resolve_options("crosskd", options, DEFAULTS)
    return MethodSpec(
        name="crosskd",
        losses={"loss_crosskd": LossSpec(
            type="crosskd", weight=float(o["weight"]),
            inputs={"preds_S": S("head_feature"), "preds_T": T("logits")},
            kwargs={"tau": o["tau"]},
            channels_from="head_feature")},
        needs_gt=False, reimplementation=True,
        unverified=["segmentation adaptation: cross point = feature before the classifier",
                    "1x1 width adapter", "KD weight/temperature for segmentation"],
        assumptions=prefixed("crosskd", {"cross_point": "head_feature -> teacher conv_seg",
                                         "adapter": "1x1 conv when widths differ"}),
        paper="J. Wang, Y. Chen, Z. Zheng, X. Li, M.-M. Cheng, Q. Hou, CVPR 2024, CrossKD: "
              "cross-head knowledge distillation for object detection",
    )
