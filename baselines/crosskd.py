"""CrossKD — cross-head knowledge distillation, dense adaptation to segmentation.

Paper: J. Wang, Y. Chen, Z. Zheng, X. Li, M.-M. Cheng, Q. Hou, "CrossKD: cross-head knowledge
distillation for object detection", CVPR 2024. Reference code: jbwang1997/CrossKD (mmdet 3.x;
detection only; ``mmdet/models/detectors/crosskd_gfl.py``: ``forward_crosskd_single``,
``reuse_teacher_head``, ``align_scale``).

CrossKD feeds an intermediate feature of the *student's* head through the *teacher's* remaining
head layers and distils the resulting "cross-head" prediction towards the teacher's prediction.
Upstream takes the head feature *before* its activation (``activate=False`` at
``reused_teacher_head_idx``), always re-normalises it to the teacher feature's per-channel
statistics (``align_scale``), applies the activation, then the teacher's remaining layers. For
mmseg decode heads the layers after the last ConvModule's BatchNorm are its ReLU and the
classifier ``conv_seg`` (dropout is off in the frozen teacher), so::

    g      = A(f_S)           A: 1x1 conv student width -> teacher width (trainable, identity
                                  when widths match; ours, upstream pairs heads of equal width)
    g_hat  = (g - mu_S) / (sigma_S + 1e-6) * sigma_T + mu_T          (align_scale)
             mu, sigma: per-channel mean and unbiased std over N, H, W of g and of f_T
             (f_T detached; the student's statistics carry gradient, as upstream)
    z_X    = conv_seg_T( ReLU(g_hat) )      (ReLU only at the pre-activation tap)
    L      = w * tau^2 * mean_{n,i} KL( softmax(z_T[n,:,i]/tau) || softmax(z_X[n,:,i]/tau) )

Options: ``tap`` = ``"head_feature_preact"`` (default, upstream's cross point: the last head
ConvModule's BatchNorm output, then ReLU) or ``"head_feature"`` (after the ReLU, no second ReLU:
this suite's earlier cross point); ``align_scale`` = ``True`` (default, upstream always aligns)
or ``False`` (the raw / adapted student feature goes straight into the teacher's layers, a
deviation). With ``align_scale`` the teacher's feature at the same tap is an input of the loss.
Reduction: sum over classes, mean over the N*h*w pixels. The teacher classifier is frozen and
kept out of the module tree (no training, not saved); its weights are used detached, so the
gradient reaches only f_S and A. The student keeps its own classifier and task loss.
Defaults: weight 1, tau 1 (upstream's classification-branch KD weight 1 for GFL/RetinaNet).
Attach points: ``head_feature_preact`` (student and teacher), ``logits`` (teacher);
``teacher_classifier`` is the teacher's ``decode_head.conv_seg`` (filled by the distiller).
Ground truth: no.
Re-implementation: yes (no segmentation version upstream; the width adapter is ours).
Detection: on a detection table the method is upstream's own dense-detector CrossKD
(:mod:`baselines.det_crosskd`: classification and regression crossing on GFL and RetinaNet).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from baselines._common import (
    TeacherClassifierMixin,
    align_scale,
    align_to_teacher,
    prefixed,
    resize_to,
    resolve_options,
    width_adapter,
)
from suite.methods.divergences import pixel_kl
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import LossSpec, MethodSpec, S, T, serves

TAPS = ("head_feature_preact", "head_feature")


@LOSSES.register_module(name="crosskd")
class CrossHeadKDLoss(TeacherClassifierMixin, nn.Module):
    """Pixel KL between the teacher's logits and the teacher classifier on the student feature."""

    def __init__(self, student_channels: int, teacher_channels: int | None = None,
                 teacher_classifier: nn.Module | None = None, tau: float = 1.0,
                 align_scale: bool = True, relu: bool = False,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if teacher_channels is None:  # the teacher's head feature is not tapped: ask conv_seg
            teacher_channels = getattr(teacher_classifier, "in_channels", None)
        if teacher_channels is None:
            raise ValueError("CrossKD needs teacher_channels or a Conv2d teacher_classifier")
        self.adapter = width_adapter(student_channels, teacher_channels)
        self.set_teacher_classifier(teacher_classifier)
        self.tau = tau
        self.align_scale = align_scale
        self.relu = relu
        self.loss_weight = loss_weight

    @property
    def teacher_classifier(self) -> nn.Module:
        return self._require_teacher_classifier(
            "CrossKD needs the frozen teacher classifier (teacher_classifier=)")

    def cross_feature(self, feat: Tensor, feat_T: Tensor | None = None) -> Tensor:
        """The student feature as the teacher's classifier receives it (adapter, align, ReLU)."""
        x = self.adapter(feat)
        if self.align_scale:
            if feat_T is None:
                raise ValueError("CrossKD with align_scale needs the teacher's feature (feat_T=)")
            x = align_scale(resize_to(x, feat_T.shape[-2:]), feat_T)
        return F.relu(x) if self.relu else x

    def cross_logits(self, feat: Tensor, feat_T: Tensor | None = None) -> Tensor:
        x = self.cross_feature(feat, feat_T)
        cls = self.teacher_classifier
        if isinstance(cls, nn.Conv2d):
            bias = cls.bias.detach() if cls.bias is not None else None
            return F.conv2d(x, cls.weight.detach(), bias, cls.stride, cls.padding,
                            cls.dilation, cls.groups)
        return cls(x)

    def forward(self, preds_S: Tensor, preds_T: Tensor, feat_T: Tensor | None = None) -> Tensor:
        z_x, preds_T = align_to_teacher(self.cross_logits(preds_S, feat_T), preds_T)
        return self.loss_weight * pixel_kl(z_x, preds_T, self.tau).mean()


DEFAULTS: dict[str, Any] = {"weight": 1.0, "tau": 1.0, "align_scale": True,
                            "tap": "head_feature_preact"}


@METHODS.register_module(name="crosskd")
@serves("segmentation", "detection")
def crosskd(options: dict[str, Any] | None = None, task: str = "segmentation") -> MethodSpec:
    """Student head feature -> (align_scale, ReLU) -> teacher classifier, KD to its logits; on a
    detection table the dense-head form of :mod:`baselines.det_crosskd`."""
    if task == "detection":
        from baselines.det_crosskd import detection_spec

        return detection_spec(options)
    o = resolve_options("crosskd", options, DEFAULTS)
    if o["tap"] not in TAPS:
        raise ValueError(f"crosskd: tap must be one of {TAPS}, got {o['tap']!r}")
    inputs = {"preds_S": S(o["tap"]), "preds_T": T("logits")}
    if o["align_scale"]:
        inputs["feat_T"] = T(o["tap"])
    relu = o["tap"] == "head_feature_preact"
    return MethodSpec(
        name="crosskd",
        losses={"loss_crosskd": LossSpec(
            type="crosskd", weight=float(o["weight"]), inputs=inputs,
            kwargs={"tau": o["tau"], "align_scale": bool(o["align_scale"]), "relu": relu},
            channels_from=o["tap"])},
        needs_gt=False, reimplementation=True,
        unverified=["segmentation adaptation: cross point = last head ConvModule",
                    "1x1 width adapter", "KD weight/temperature for segmentation"],
        assumptions=prefixed("crosskd", {
            "cross_point": f"{o['tap']} -> {'ReLU -> ' if relu else ''}teacher conv_seg",
            "align_scale": ("per-channel mean/std of the teacher feature (upstream)"
                            if o["align_scale"] else "off (not upstream)"),
            "adapter": "1x1 conv when widths differ"}),
        paper="J. Wang, Y. Chen, Z. Zheng, X. Li, M.-M. Cheng, Q. Hou, CVPR 2024, CrossKD: "
              "cross-head knowledge distillation for object detection",
    )
