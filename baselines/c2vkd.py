"""C2VKD — CNN-to-ViT knowledge distillation for segmentation (re-implementation).

Paper: X. Zheng, Y. Luo, P. Zhou, L. Wang, "Distilling efficient vision transformers from CNNs
for semantic segmentation", arXiv 2023 (2310.07265). No public code was found. Two modules:
visual-linguistic feature distillation (VLFD: features compared in a space aligned with
linguistic class embeddings) and pixel-wise decoupled distillation (PDD: DKD's target /
non-target split per pixel, with the ground-truth class as the target).

VLFD (``loss_c2vkd_vlfd``, type ``c2vkd_vlfd``), our reading: the paper uses CLIP text
embeddings of the class names as linguistic anchors; no text model can be loaded here, so the
anchors are the frozen teacher classifier's class weights e_k (``decode_head.conv_seg``; K x C_T,
L2-normalised, kept out of the module tree), which likewise live in a space aligned with the
teacher's features (assumption)::

    a^S_ik = cos(P f^S_i, e_k) / tau_v     (P: trainable 1x1 conv student -> teacher width)
    a^T_ik = cos(f^T_i, e_k) / tau_v
    L_vlfd = mean_{n,i} KL( softmax_k a^T_i || softmax_k a^S_i )       (no tau^2 factor)

PDD (``loss_c2vkd_pdd``, type ``c2vkd_pdd``) on the logits, per labelled pixel with target y::

    b = [p_y, 1 - p_y] at temperature tau;  p~ = softmax over the non-target classes
    L_pdd = tau^2 * mean_{valid i} ( alpha KL(b_T || b_S) + beta KL(p~_T || p~_S) )

(DKD's TCKD/NCKD, MMRazor ``DKDLoss`` with ``batchmean`` over the valid pixels; 255 ignored).
Reductions: VLFD mean over the N*h*w pixels; PDD mean over the labelled pixels (0 if none).
Defaults (unverified): vlfd 1 (tau_v 0.1), pdd 1 with DKD's alpha 1, beta 8, tau 4.
Attach points: ``head_feature`` (VLFD), ``logits`` (PDD); ``teacher_classifier`` is filled by the
distiller. Ground truth: yes (PDD targets). Re-implementation: yes (the paper's students are ViTs;
the BCD paper applies it to a DeepLabV3+-R18 student, as we do).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from baselines._common import (
    IGNORE_INDEX,
    TeacherClassifierMixin,
    align_to_teacher,
    prefixed,
    resize_gt,
    resolve_options,
)
from suite.methods.divergences import softmax_kl
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import GT_SEG, LossSpec, MethodSpec, S, T


@LOSSES.register_module(name="c2vkd_vlfd")
class VisualLinguisticFeatureLoss(TeacherClassifierMixin, nn.Module):
    """KL between class-anchor similarity distributions of the student and teacher features."""

    def __init__(self, student_channels: int, teacher_channels: int,
                 teacher_classifier: nn.Module | None = None, tau: float = 0.1,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.proj = nn.Conv2d(student_channels, teacher_channels, 1)
        self.set_teacher_classifier(teacher_classifier)
        self.tau = tau
        self.loss_weight = loss_weight

    def anchors(self) -> Tensor:
        weight = self._require_teacher_classifier(
            "C2VKD's VLFD needs the frozen teacher classifier as class anchors").weight.detach()
        return F.normalize(weight.reshape(weight.shape[0], -1), dim=1)  # K x C_T

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        s, preds_T = align_to_teacher(self.proj(preds_S), preds_T)
        e = self.anchors().to(s)
        a_s = torch.einsum("nchw,kc->nkhw", F.normalize(s, dim=1), e) / self.tau
        a_t = torch.einsum("nchw,kc->nkhw", F.normalize(preds_T, dim=1), e) / self.tau
        return self.loss_weight * softmax_kl(a_s, a_t, 1).mean()


@LOSSES.register_module(name="c2vkd_pdd")
class PixelDecoupledKDLoss(nn.Module):
    """DKD's target / non-target decoupled KD at every labelled pixel."""

    def __init__(self, tau: float = 4.0, alpha: float = 1.0, beta: float = 8.0,
                 ignore_index: int = IGNORE_INDEX, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.tau, self.alpha, self.beta = tau, alpha, beta
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor, preds_T: Tensor, gt_seg: Tensor) -> Tensor:
        preds_S, preds_T = align_to_teacher(preds_S, preds_T)
        k = preds_S.shape[1]
        labels = resize_gt(gt_seg, preds_T.shape[-2:])
        valid = labels != self.ignore_index
        if not valid.any():
            return 0.0 * preds_S.sum()
        zs = preds_S.permute(0, 2, 3, 1)[valid] / self.tau  # P x K
        zt = preds_T.permute(0, 2, 3, 1)[valid] / self.tau
        target = F.one_hot(labels[valid].clamp(max=k - 1), k).bool()
        p_s, p_t = F.softmax(zs, dim=1), F.softmax(zt, dim=1)
        pt_s = (p_s * target).sum(1, keepdim=True)
        pt_t = (p_t * target).sum(1, keepdim=True)
        b_s = torch.cat([pt_s, 1 - pt_s], 1).clamp(min=1e-12)
        b_t = torch.cat([pt_t, 1 - pt_t], 1).clamp(min=1e-12)
        tckd = (b_t * (b_t.log() - b_s.log())).sum(1)
        nckd = softmax_kl(zs - 1000.0 * target, zt - 1000.0 * target, 1)
        loss = (self.alpha * tckd + self.beta * nckd).mean() * self.tau**2
        return self.loss_weight * loss


DEFAULTS: dict[str, Any] = {"vlfd_weight": 1.0, "vlfd_tau": 0.1, "pdd_weight": 1.0,
                            "tau": 4.0, "alpha": 1.0, "beta": 8.0}


@METHODS.register_module(name="c2vkd")
def c2vkd(options: dict[str, Any] | None = None) -> MethodSpec:
    """C2VKD: class-anchor feature distillation + pixel-wise decoupled KD."""
    o = resolve_options("c2vkd", options, DEFAULTS)
    return MethodSpec(
        name="c2vkd",
        losses={
            "loss_c2vkd_vlfd": LossSpec(
                type="c2vkd_vlfd", weight=float(o["vlfd_weight"]),
                inputs={"preds_S": S("head_feature"), "preds_T": T("head_feature")},
                kwargs={"tau": o["vlfd_tau"]}, channels_from="head_feature"),
            "loss_c2vkd_pdd": LossSpec(
                type="c2vkd_pdd", weight=float(o["pdd_weight"]),
                inputs={"preds_S": S("logits"), "preds_T": T("logits"), "gt_seg": GT_SEG},
                kwargs={"tau": o["tau"], "alpha": o["alpha"], "beta": o["beta"]}),
        },
        needs_gt=True, reimplementation=True,
        unverified=["linguistic anchors: teacher classifier weights instead of CLIP text "
                    "embeddings", "VLFD as anchor-similarity KL", "PDD = DKD with GT targets",
                    "all weights and temperatures"],
        assumptions=prefixed("c2vkd", {"anchors": "frozen teacher conv_seg weights",
                                       "pdd": "DKD (TCKD+NCKD) with GT targets"}),
        paper="X. Zheng, Y. Luo, P. Zhou, L. Wang, arXiv 2023, Distilling efficient vision "
              "transformers from CNNs for semantic segmentation",
    )
