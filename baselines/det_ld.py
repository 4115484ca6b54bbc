"""LD — localisation distillation of the GFL box-edge distributions (mmdet's own loss).

Paper: Z. Zheng, R. Ye, P. Wang, D. Ren, W. Zuo, Q. Hou, M.-M. Cheng, "Localization
distillation for dense object detection", CVPR 2022. Reference code: mmdet's ``LDHead``
(``mmdet/models/dense_heads/ld_head.py``, ``loss_by_feat_single``) and its loss
``KnowledgeDistillationKLDivLoss`` (``mmdet/models/losses/kd_loss.py``), config
``configs/ld/ld_r18-gflv1-r101_fpn_1x_coco.py``. This module *calls* mmdet's loss; it only
re-arranges the head outputs the way ``LDHead`` does.

Formula, per FPN level, for the positive locations P (the assigner's; all locations when no
mask is given) and each of the 4 box edges e of a location, with the GFL distributions
z (``reg_max + 1`` logits per edge)::

    KL_{p,e} = T^2 * mean_bins KL( softmax(z_T[p,e] / T) || softmax(z_S[p,e] / T) )
    L_l      = w * sum_{p in P, e} s_p * KL_{p,e} / 4        s_p = max_k sigmoid(c_S[p,k]) (detached)
    L        = sum_l L_l

Reduction: mean over the ``reg_max + 1`` bins (mmdet's ``.mean(1)``), sum over edges and
locations weighted by the student's detached classification score, divided by 4
(``avg_factor=4.0``), summed over levels (LDHead returns one term per level; mmengine sums
them). Unlike the box and DFL terms, LDHead does not divide ``loss_ld`` by the summed weights.
Defaults: T 10, weight 0.25 (mmdet's LD config). Attach points: ``bbox_preds`` (student and
teacher, N x 4(reg_max+1) x H x W per level), ``cls_scores`` (student; weights only).
Ground truth: the assigner's positive mask (optional ``pos_masks``).
Re-implementation: no (mmdet's loss; LDHead's main-region KD only, without the VLR split of
the LD paper's later versions). Loss only: no detection method is registered.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmdet.models.losses import KnowledgeDistillationKLDivLoss
from torch import Tensor, nn

from baselines._common import as_list
from suite.methods.registry import LOSSES


def edge_rows(bbox_pred: Tensor, reg_max: int) -> Tensor:
    """``N x 4(n+1) x H x W`` -> ``(N*H*W*4) x (n+1)`` rows, LDHead's ordering."""
    return bbox_pred.permute(0, 2, 3, 1).reshape(-1, reg_max + 1)


@LOSSES.register_module(name="det_ld")
class LDLoss(nn.Module):
    """mmdet's ``KnowledgeDistillationKLDivLoss`` applied as ``LDHead`` applies it, per level."""

    def __init__(self, T: float = 10.0, reg_max: int = 16, loss_weight: float = 0.25) -> None:  # noqa: N803
        super().__init__()
        self.reg_max = reg_max
        self.loss_weight = loss_weight
        self.kd = KnowledgeDistillationKLDivLoss(loss_weight=loss_weight, T=T)

    def level_loss(self, bbox_S: Tensor, bbox_T: Tensor, cls_S: Tensor,
                   pos: Tensor | None) -> Tensor:
        n_cls = cls_S.shape[1]
        score = cls_S.detach().sigmoid().permute(0, 2, 3, 1).reshape(-1, n_cls).max(1)[0]
        keep = (torch.ones_like(score, dtype=torch.bool) if pos is None
                else pos.reshape(-1).bool())
        if not keep.any():
            return bbox_S.sum() * 0
        rows = keep[:, None].expand(-1, 4).reshape(-1)
        pred = edge_rows(bbox_S, self.reg_max)[rows]
        soft = edge_rows(bbox_T.detach(), self.reg_max)[rows]
        weight = score[keep][:, None].expand(-1, 4).reshape(-1)
        return self.kd(pred, soft, weight=weight, avg_factor=4.0)

    def forward(self, preds_S: Tensor | Sequence[Tensor], preds_T: Tensor | Sequence[Tensor],
                cls_scores_S: Tensor | Sequence[Tensor],
                pos_masks: Sequence[Tensor] | None = None) -> Tensor:
        """Box distributions of student and teacher, the student's class scores, per level;
        ``pos_masks``: optional ``N x H x W`` positive-location masks per level."""
        levels = list(zip(as_list(preds_S), as_list(preds_T), as_list(cls_scores_S)))
        masks = list(pos_masks) if pos_masks is not None else [None] * len(levels)
        return sum(self.level_loss(s, t, c, m) for (s, t, c), m in zip(levels, masks))
