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
Ground truth: the assigner's positive mask (optional ``pos_masks``); given the GT boxes,
labels and image shapes and the teacher's dense head (``teacher_dense_head``, filled inside a
``DistillationModel``), the positives are that head's ATSS assignment (the student's GFL head
assigns the same: it depends only on the anchors and the boxes, :mod:`baselines.det_head`).
Re-implementation: no (mmdet's loss; LDHead's main-region KD only, without the VLR split of
the LD paper's later versions).

Method ``ld`` (detection): ``loss_ld`` on ``bbox_preds`` with the GT. LD needs GFL's edge
distributions: it is defined for GFL heads only (``DENSE_HEADS``; a RetinaNet or Cascade
Mask R-CNN pair is refused at plan time). mmdet's LD config also trains the student with
GFL's own losses, which the student's task loss already is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmdet.models.losses import KnowledgeDistillationKLDivLoss
from torch import Tensor, nn

from baselines._common import as_list, prefixed, resolve_options
from baselines.det_head import Frozen, assign, dense_head, module_name
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import (
    GT_BOXES,
    GT_LABELS,
    IMG_SHAPES,
    Input,
    LossSpec,
    MethodSpec,
    S,
    T,
    serves,
)


def edge_rows(bbox_pred: Tensor, reg_max: int) -> Tensor:
    """``N x 4(n+1) x H x W`` -> ``(N*H*W*4) x (n+1)`` rows, LDHead's ordering."""
    return bbox_pred.permute(0, 2, 3, 1).reshape(-1, reg_max + 1)


@LOSSES.register_module(name="det_ld")
class LDLoss(nn.Module):
    """mmdet's ``KnowledgeDistillationKLDivLoss`` applied as ``LDHead`` applies it, per level."""

    DENSE_HEADS = ("GFLHead",)  # GFL's edge distributions (LDHead is one)

    def __init__(self, T: float = 10.0, reg_max: int = 16, loss_weight: float = 0.25,  # noqa: N803
                 teacher_dense_head: nn.Module | None = None) -> None:
        super().__init__()
        self.reg_max = reg_max
        self.loss_weight = loss_weight
        self.kd = KnowledgeDistillationKLDivLoss(loss_weight=loss_weight, T=T)
        self._head = Frozen(teacher_dense_head) if teacher_dense_head is not None else Frozen()

    @classmethod
    def teacher_kwargs(cls, teacher: nn.Module, taps: dict[str, str | list[str]],
                       inputs: dict[str, Input]) -> dict[str, Any]:
        """The teacher's dense head (the assigner of the positives) and its ``reg_max``."""
        head = dense_head(teacher, module_name(taps[inputs["preds_T"].tap]))
        if not hasattr(head, "reg_max"):
            raise ValueError(f"LD needs GFL's box distributions; the teacher's "
                             f"{type(head).__name__} regresses none")
        return {"teacher_dense_head": head, "reg_max": int(head.reg_max)}

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
                pos_masks: Sequence[Tensor] | None = None,
                gt_boxes: Sequence[Tensor] | None = None,
                gt_labels: Sequence[Tensor] | None = None,
                img_shapes: Sequence[Sequence[int]] | None = None) -> Tensor:
        """Box distributions of student and teacher, the student's class scores, per level;
        ``pos_masks``: optional ``N x H x W`` positive-location masks per level, else the
        teacher head's assignment of the ground truth when it is given."""
        levels = list(zip(as_list(preds_S), as_list(preds_T), as_list(cls_scores_S)))
        if pos_masks is None and gt_boxes is not None and gt_labels is not None \
                and img_shapes is not None:
            if not len(self._head):
                raise RuntimeError("LD's positives need the teacher's dense head "
                                   "(teacher_dense_head=)")
            pos_masks = assign(self._head[0], [c for *_, c in levels], gt_boxes, gt_labels,
                               img_shapes).positives
        masks = list(pos_masks) if pos_masks is not None else [None] * len(levels)
        return sum(self.level_loss(s, t, c, m) for (s, t, c), m in zip(levels, masks))


LD_DEFAULTS: dict[str, Any] = {"weight": 0.25, "T": 10.0}


@METHODS.register_module(name="ld")
@serves("detection")
def ld(options: dict[str, Any] | None = None) -> MethodSpec:
    """Localisation distillation of GFL's box distributions on the assigner's positives."""
    o = resolve_options("ld", options, LD_DEFAULTS)
    return MethodSpec(
        name="ld",
        losses={"loss_ld": LossSpec(
            type="det_ld", weight=float(o["weight"]),
            inputs={"preds_S": S("bbox_preds"), "preds_T": T("bbox_preds"),
                    "cls_scores_S": S("cls_scores"), "gt_boxes": GT_BOXES,
                    "gt_labels": GT_LABELS, "img_shapes": IMG_SHAPES},
            kwargs={"T": o["T"]})},
        needs_gt=True, reimplementation=False,
        unverified=["positives from the teacher head's ATSS assignment (the same anchors and "
                    "boxes as the student's; upstream assigns with the student's head)"],
        assumptions=prefixed("ld", {
            "task": "detection", "weight": o["weight"], "T": o["T"],
            "region": "main (positive) region only, mmdet 3.x LDHead",
            "detectors": "GFL only (needs box distributions); RetinaNet and Cascade Mask R-CNN "
                         "are refused at plan time"}),
        paper="Z. Zheng, R. Ye, P. Wang, D. Ren, W. Zuo, Q. Hou, M.-M. Cheng, CVPR 2022, "
              "Localization distillation for dense object detection",
    )
