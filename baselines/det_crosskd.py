"""CrossKD for detection — the student's head feature through the teacher's remaining head.

Paper: J. Wang, Y. Chen, Z. Zheng, X. Li, M.-M. Cheng, Q. Hou, "CrossKD: cross-head knowledge
distillation for object detection", CVPR 2024. Reference code: jbwang1997/CrossKD (mmdet 3.x):
``mmdet/models/detectors/crosskd_gfl.py`` (``forward_crosskd_single``, ``reuse_teacher_head``,
``align_scale``, ``pred_mimicking_loss_single``), ``crosskd_retinanet.py``,
``mmdet/models/losses/kd_loss.py`` (``KDQualityFocalLoss``), configs
``configs/crosskd/crosskd_r18_{gflv1,retinanet}_*``.

Per FPN level, with f_S, f_T the student's and teacher's head-branch features at the crossing
point (``reused_teacher_head_idx`` = 3: the last stacked conv's output before its activation)::

    g   = align_scale(f_S, f_T)           per channel over N, H, W: the student's mean/std
                                          replaced by the teacher's (shared with baselines.crosskd)
    z_X = H_T( ReLU(g) )                  H_T: the teacher's remaining layers (frozen, given)

Classification (``det_crosskd_cls``, GFL and RetinaNet alike: both configs use
``KDQualityFocalLoss(beta=1)``), with p_T = sigmoid(z_T), per element::

    l = BCE_with_logits(z_X, p_T) * |sigmoid(z_X) - p_T|^beta
    L_cls = w * sum_l sum (label_weight * l) / (avg_factor + eps)     eps: float32's, as mmdet

Regression (``det_crosskd_reg_gfl``, GFL only; mmdet's ``KnowledgeDistillationKLDivLoss``
with T 1 and the bins summed (``class_reduction='sum'`` upstream, mmdet's mean times
``reg_max + 1`` here), weighted by s = max_k sigmoid(z_T_cls) (0 where label_weight is 0)::

    L_reg = w * sum_l sum_{p, e} s_p * T^2 * KL(softmax(b_T/T) || softmax(b_X/T)) / 4 / sum_l sum_p s_p

Reduction: as above; ``avg_factor`` is the number of positive anchors of the detector's
assigner (mean over all elements when it is not given); ``label_weights`` default to 1.
Defaults: cls weight 1, beta 1; reg (GFL) weight 4, T 1. RetinaNet's regression KD
(``GIoULoss`` on boxes decoded from anchors, weight 1) is not provided here.
Attach points: the head branches' features before the last activation (student and teacher),
``cls_scores`` / ``bbox_preds`` (teacher); ``teacher_head`` is the teacher's remaining layers
(a module, or one per level when they differ, e.g. GFL's per-level ``Scale``).
Ground truth: only through the assigner's ``label_weights`` / ``avg_factor`` (optional).
Re-implementation: no (upstream's semantics; the teacher's layers run with detached
parameters, so the gradient reaches only f_S). Loss only: no detection method is registered.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from mmdet.models.losses import KnowledgeDistillationKLDivLoss
from torch import Tensor, nn
from torch.func import functional_call

from baselines._common import as_list
from baselines.crosskd import align_scale
from suite.methods.registry import LOSSES

Heads = nn.Module | Sequence[nn.Module]
AVG_EPS = torch.finfo(torch.float32).eps  # mmdet's weight_reduce_loss: sum / (avg_factor + eps)


def frozen_call(module: nn.Module, x: Tensor) -> Tensor:
    """``module(x)`` with detached parameters and buffers: gradients reach ``x`` only."""
    state = {k: v.detach() for k, v in module.named_parameters()}
    state.update({k: v.detach() for k, v in module.named_buffers()})
    return functional_call(module, state, (x,))


def kd_quality_focal(pred: Tensor, target_logits: Tensor, beta: float = 1.0) -> Tensor:
    """Element-wise ``BCE(pred, sigmoid(t)) * |sigmoid(pred) - sigmoid(t)|^beta`` (KDQFL)."""
    target = target_logits.detach().sigmoid()
    bce = F.binary_cross_entropy_with_logits(pred, target, reduction="none")
    return bce * (pred.sigmoid() - target).abs().pow(beta)


def rows(x: Tensor, width: int) -> Tensor:
    """``N x (A*width) x H x W`` -> ``(N*H*W*A) x width``, mmdet's head-output ordering."""
    return x.permute(0, 2, 3, 1).reshape(-1, width)


class _CrossHead(nn.Module):
    """Holds the frozen teacher layers out of the module tree and crosses student features."""

    def __init__(self, teacher_head: Heads | None, relu: bool) -> None:
        super().__init__()
        self._heads: tuple[nn.Module, ...] = ()
        self.set_teacher_head(teacher_head)
        self.relu = relu

    def set_teacher_head(self, teacher_head: Heads | None) -> None:
        if teacher_head is None:
            self._heads = ()
        else:
            self._heads = ((teacher_head,) if isinstance(teacher_head, nn.Module)
                           else tuple(teacher_head))

    def head(self, level: int) -> nn.Module:
        if not self._heads:
            raise RuntimeError("CrossKD needs the teacher's remaining head layers (teacher_head=)")
        return self._heads[level] if len(self._heads) > 1 else self._heads[0]

    def cross(self, level: int, feat_S: Tensor, feat_T: Tensor) -> Tensor:
        x = align_scale(feat_S, feat_T)
        return frozen_call(self.head(level), F.relu(x) if self.relu else x)


@LOSSES.register_module(name="det_crosskd_cls")
class CrossKDClsLoss(_CrossHead):
    """KDQualityFocalLoss between the crossed class scores and the teacher's, per level."""

    def __init__(self, teacher_head: Heads | None = None, beta: float = 1.0, relu: bool = True,
                 loss_weight: float = 1.0) -> None:
        super().__init__(teacher_head, relu)
        self.beta = beta
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor | Sequence[Tensor], feats_T: Tensor | Sequence[Tensor],
                preds_T: Tensor | Sequence[Tensor],
                label_weights: Sequence[Tensor] | None = None,
                avg_factor: float | None = None) -> Tensor:
        """``preds_S``/``feats_T``: crossing-point features; ``preds_T``: teacher class scores."""
        total = torch.zeros(())
        count = 0
        for i, (f_s, f_t, z_t) in enumerate(zip(as_list(preds_S), as_list(feats_T),
                                                 as_list(preds_T))):
            k = z_t.shape[1]
            z_x = rows(self.cross(i, f_s, f_t), k)
            loss = kd_quality_focal(z_x, rows(z_t, k), self.beta)
            if label_weights is not None:
                loss = loss * label_weights[i].reshape(-1, 1).to(loss)
            total = total.to(loss) + loss.sum()
            count += loss.numel()
        if avg_factor is None:
            return self.loss_weight * total / count
        return self.loss_weight * total / (avg_factor + AVG_EPS)


@LOSSES.register_module(name="det_crosskd_reg_gfl")
class CrossKDRegGFLLoss(_CrossHead):
    """LD-form KL between the crossed and the teacher's GFL box distributions."""

    def __init__(self, teacher_head: Heads | None = None, T: float = 1.0, reg_max: int = 16,  # noqa: N803
                 relu: bool = True, loss_weight: float = 4.0) -> None:
        super().__init__(teacher_head, relu)
        self.reg_max = reg_max
        self.loss_weight = loss_weight
        # mmdet's loss averages over the bins; upstream sums them (class_reduction='sum')
        self.kd = KnowledgeDistillationKLDivLoss(loss_weight=loss_weight * (reg_max + 1), T=T)

    def forward(self, preds_S: Tensor | Sequence[Tensor], feats_T: Tensor | Sequence[Tensor],
                preds_T: Tensor | Sequence[Tensor], cls_scores_T: Tensor | Sequence[Tensor],
                label_weights: Sequence[Tensor] | None = None) -> Tensor:
        """``preds_T``: teacher box distributions; ``cls_scores_T``: teacher class scores."""
        total, weight_sum = torch.zeros(()), torch.zeros(())
        for i, (f_s, f_t, b_t, c_t) in enumerate(zip(as_list(preds_S), as_list(feats_T),
                                                      as_list(preds_T), as_list(cls_scores_T))):
            b_x = rows(self.cross(i, f_s, f_t), self.reg_max + 1)
            w = rows(c_t.detach(), c_t.shape[1]).max(1)[0].sigmoid()
            if label_weights is not None:
                w = torch.where(label_weights[i].reshape(-1).to(w) == 0, torch.zeros_like(w), w)
            loss = self.kd(b_x, rows(b_t.detach(), self.reg_max + 1),
                           weight=w[:, None].expand(-1, 4).reshape(-1), avg_factor=4.0)
            total = total.to(loss) + loss
            weight_sum = weight_sum.to(w) + w.sum()
        return total / weight_sum
