"""LD — localisation distillation of GFL-style box-edge distributions (mmdet's own loss).

Paper: Z. Zheng, R. Ye, P. Wang, D. Ren, W. Zuo, Q. Hou, M.-M. Cheng, "Localization
distillation for dense object detection", CVPR 2022. Reference code: mmdet's ``LDHead``
(``mmdet/models/dense_heads/ld_head.py``, ``loss_by_feat_single``) and its loss
``KnowledgeDistillationKLDivLoss`` (``mmdet/models/losses/kd_loss.py``), config
``configs/ld/ld_r18-gflv1-r101_fpn_1x_coco.py``; the LD authors' repository (HikariTJU/LD,
mmdet 2) for the RetinaNet and two-stage recipes: ``LDRetinaHead`` with
``configs/ld/ld_retina_r50_1x.py`` and ``LDRPNHead`` with ``configs/ld/ld_r50_faster_r101_1x.py``.
This module *calls* mmdet's loss; it only re-arranges the head outputs the way the heads do.

Formula, per FPN level, for the positive anchors P (the assigner's; all anchors when no mask
is given) and each of the 4 box edges e of an anchor, with the distributions z
(``reg_max + 1`` logits per edge; A anchors a location give A blocks of 4 edges)::

    KL_{p,e} = T^2 * mean_bins KL( softmax(z_T[p,e] / T) || softmax(z_S[p,e] / T) )
    L_l      = w * sum_{p in P, e} s_p * KL_{p,e} / 4        s_p = max_k sigmoid(c_S[p,k]) (detached)
    L        = sum_l L_l

Reduction: mean over the ``reg_max + 1`` bins (mmdet's ``.mean(1)``), sum over edges and
anchors weighted by the student's detached classification score, divided by 4
(``avg_factor=4.0``), summed over levels (the heads return one term per level; mmengine sums
them). Unlike the box and DFL terms, the LD term is not divided by the summed weights.
Attach points: ``bbox_preds`` (student and teacher, N x A*4(reg_max+1) x H x W per level),
``cls_scores`` (student; weights only). Ground truth: the assigner's positive mask (optional
``pos_masks``); given the GT boxes, labels and image shapes and the teacher's dense head
(``teacher_dense_head``, filled inside a ``DistillationModel``), the positives are that head's
assignment (the student's head assigns the same: it depends only on the anchors and the boxes,
:mod:`baselines.det_head`; an RPN's are its sampled positives).

Recipes (option ``recipe``), each the LD authors' or mmdet's config for one detector kind; the
loss class checks the dense head at plan time:

* ``gfl`` (``det_ld``, ``GFLHead``): mmdet's LD config, weight 0.25, T 10.
* ``retinanet`` (``det_ld_retina``, ``TapRetinaGFLHead``: RetinaNet whose box branch predicts
  GFL distributions, the LD authors' "RetinaGFL", re-implemented for mmdet 3 in
  :mod:`suite.nets.distribution_heads`): ``ld_retina_r50_1x``'s LD weight 5, T 10, plus its
  classification KD on the positives (``loss_kd``: weight 10, T 8)::

      L_cls = w_c * sum_l sum_{p in P_l} T_c^2 * mean_k KL(softmax(c_T[p] / T_c) || softmax(c_S[p] / T_c)) / |P_l|

  (softmax over the classes, mean over them, per level divided by the level's positive count;
  a level without positives adds 0).
* ``two_stage`` (``det_ld_rpn``, ``RPNGFLHead``: the RPN whose box branch predicts
  distributions, the LD authors' "Faster R-CNN GFL", re-implemented for mmdet 3): LD on the
  RPN head, ``ld_r50_faster_r101_1x``'s weight 1, T 10 (its class KD is disabled upstream), on
  the RPN's sampled positives. Upstream's recipe is for Faster R-CNN; on Cascade Mask R-CNN the
  RPN is the same and the RoI heads are not distilled (an adaptation, flagged).

Not included (all recipes): the VLR term of the LD authors' heads (``loss_ld_neg`` on the
valuable-localisation region, weight 0.02-0.03 upstream), which mmdet's ``LDHead`` (the GFL
row) does not have either. Re-implementation: the loss is mmdet's; the RetinaGFL and RPN-GFL
heads are re-implemented, and the ``retinanet`` / ``two_stage`` recipes are flagged.

Method ``ld`` (detection): the recipe's losses with the GT. mmdet's LD config also trains the
student with the head's own losses, which the student's task loss already is.
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
    """``N x A*4(n+1) x H x W`` -> ``(N*H*W*A*4) x (n+1)`` rows, the heads' ordering."""
    return bbox_pred.permute(0, 2, 3, 1).reshape(-1, reg_max + 1)


def anchor_rows(x: Tensor, anchors: int) -> Tensor:
    """``N x A*C x H x W`` -> ``(N*H*W*A) x C`` (mmdet's anchor order)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1] // anchors)


@LOSSES.register_module(name="det_ld")
class LDLoss(nn.Module):
    """mmdet's ``KnowledgeDistillationKLDivLoss`` applied as ``LDHead`` applies it, per level."""

    DENSE_HEADS: tuple[str, ...] = ("GFLHead",)  # GFL's edge distributions (LDHead is one)

    def __init__(self, T: float = 10.0, reg_max: int = 16, loss_weight: float = 0.25,  # noqa: N803
                 cls_weight: float = 0.0, cls_T: float = 8.0,  # noqa: N803
                 teacher_dense_head: nn.Module | None = None) -> None:
        super().__init__()
        self.reg_max = reg_max
        self.loss_weight = loss_weight
        self.kd = KnowledgeDistillationKLDivLoss(loss_weight=loss_weight, T=T)
        self.cls_kd = KnowledgeDistillationKLDivLoss(loss_weight=cls_weight, T=cls_T) \
            if cls_weight else None
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
                   pos: Tensor | None, cls_T: Tensor | None = None) -> Tensor:
        anchors = bbox_S.shape[1] // (4 * (self.reg_max + 1))
        score = anchor_rows(cls_S.detach(), anchors).sigmoid().max(1)[0]
        keep = (torch.ones_like(score, dtype=torch.bool) if pos is None
                else pos.reshape(-1).bool())
        if not keep.any():
            return bbox_S.sum() * 0
        rows = keep[:, None].expand(-1, 4).reshape(-1)
        pred = edge_rows(bbox_S, self.reg_max)[rows]
        soft = edge_rows(bbox_T.detach(), self.reg_max)[rows]
        weight = score[keep][:, None].expand(-1, 4).reshape(-1)
        loss = self.kd(pred, soft, weight=weight, avg_factor=4.0)
        if self.cls_kd is not None and cls_T is not None:
            loss = loss + self.cls_kd(anchor_rows(cls_S, anchors)[keep],
                                      anchor_rows(cls_T.detach(), anchors)[keep],
                                      avg_factor=float(keep.sum()))
        return loss

    def forward(self, preds_S: Tensor | Sequence[Tensor], preds_T: Tensor | Sequence[Tensor],
                cls_scores_S: Tensor | Sequence[Tensor],
                pos_masks: Sequence[Tensor] | None = None,
                gt_boxes: Sequence[Tensor] | None = None,
                gt_labels: Sequence[Tensor] | None = None,
                img_shapes: Sequence[Sequence[int]] | None = None,
                cls_scores_T: Tensor | Sequence[Tensor] | None = None) -> Tensor:
        """Box distributions of student and teacher, the student's class scores, per level;
        ``pos_masks``: optional ``N x (H*W*A)`` positive-anchor masks per level, else the
        teacher head's assignment of the ground truth when it is given; ``cls_scores_T``: the
        teacher's class scores (the class KD of the ``retinanet`` recipe)."""
        levels = list(zip(as_list(preds_S), as_list(preds_T), as_list(cls_scores_S)))
        if pos_masks is None and gt_boxes is not None and gt_labels is not None \
                and img_shapes is not None:
            if not len(self._head):
                raise RuntimeError("LD's positives need the teacher's dense head "
                                   "(teacher_dense_head=)")
            pos_masks = assign(self._head[0], [c for *_, c in levels], gt_boxes, gt_labels,
                               img_shapes).positives
        masks = list(pos_masks) if pos_masks is not None else [None] * len(levels)
        teacher_cls = as_list(cls_scores_T) if cls_scores_T is not None else [None] * len(levels)
        return sum(self.level_loss(s, t, c, m, ct)
                   for (s, t, c), m, ct in zip(levels, masks, teacher_cls))


@LOSSES.register_module(name="det_ld_retina")
class RetinaLDLoss(LDLoss):
    """LD on RetinaNet with GFL box distributions (the LD authors' ``LDRetinaHead`` recipe)."""

    DENSE_HEADS = ("TapRetinaGFLHead",)


@LOSSES.register_module(name="det_ld_rpn")
class RPNLDLoss(LDLoss):
    """LD on a two-stage detector's RPN with GFL box distributions (``LDRPNHead``'s recipe)."""

    DENSE_HEADS = ("RPNGFLHead",)


# recipe -> (loss type, dense-head taps, defaults), module docstring
RECIPES: dict[str, dict[str, Any]] = {
    "gfl": {"loss": "det_ld", "scores": "cls_scores", "boxes": "bbox_preds",
            "weight": 0.25, "T": 10.0, "cls_weight": 0.0,
            "config": "mmdet configs/ld/ld_r18-gflv1-r101_fpn_1x_coco.py (LDHead)"},
    "retinanet": {"loss": "det_ld_retina", "scores": "cls_scores", "boxes": "bbox_preds",
                  "weight": 5.0, "T": 10.0, "cls_weight": 10.0,
                  "config": "HikariTJU/LD configs/ld/ld_retina_r50_1x.py (LDRetinaHead on "
                            "RetinaGFL)"},
    "two_stage": {"loss": "det_ld_rpn", "scores": "rpn_cls_scores", "boxes": "rpn_bbox_preds",
                  "weight": 1.0, "T": 10.0, "cls_weight": 0.0,
                  "config": "HikariTJU/LD configs/ld/ld_r50_faster_r101_1x.py (LDRPNHead on "
                            "the RPN-GFL of Faster R-CNN)"},
}
LD_DEFAULTS: dict[str, Any] = {"recipe": "gfl", "weight": None, "T": None, "cls_weight": None,
                               "cls_T": 8.0}


@METHODS.register_module(name="ld")
@serves("detection")
def ld(options: dict[str, Any] | None = None) -> MethodSpec:
    """Localisation distillation of the box distributions on the assigner's positives, with
    the recipe of the detector kind (``recipe``: gfl, retinanet, two_stage)."""
    o = resolve_options("ld", options, LD_DEFAULTS)
    if o["recipe"] not in RECIPES:
        raise ValueError(f"method 'ld': unknown recipe {o['recipe']!r}; valid: "
                         f"{', '.join(RECIPES)}")
    recipe = RECIPES[o["recipe"]]
    weight, temp, cls_weight = (float(recipe[k] if o[k] is None else o[k])
                                for k in ("weight", "T", "cls_weight"))
    inputs = {"preds_S": S(recipe["boxes"]), "preds_T": T(recipe["boxes"]),
              "cls_scores_S": S(recipe["scores"]), "gt_boxes": GT_BOXES,
              "gt_labels": GT_LABELS, "img_shapes": IMG_SHAPES}
    kwargs: dict[str, Any] = {"T": temp}
    if cls_weight:
        inputs["cls_scores_T"] = T(recipe["scores"])
        kwargs.update(cls_weight=cls_weight, cls_T=float(o["cls_T"]))
    flagged = o["recipe"] != "gfl"
    unverified = ["positives from the teacher head's assignment (the same anchors and boxes as "
                  "the student's; upstream assigns with the student's head)"]
    if flagged:
        unverified += ["the box-distribution head is re-implemented for mmdet 3 from the LD "
                       "authors' mmdet-2 code", "the VLR term (loss_ld_neg) is left out, as "
                       "mmdet's LDHead leaves it out"]
    if o["recipe"] == "two_stage":
        unverified.append("upstream's recipe is Faster R-CNN's RPN; on Cascade Mask R-CNN the "
                          "RoI heads are not distilled")
    return MethodSpec(
        name="ld",
        losses={"loss_ld": LossSpec(type=recipe["loss"], weight=weight, inputs=inputs,
                                    kwargs=kwargs)},
        needs_gt=True, reimplementation=flagged, unverified=unverified,
        assumptions=prefixed("ld", {
            "task": "detection", "recipe": o["recipe"], "config": recipe["config"],
            "weight": weight, "T": temp,
            "cls_kd": (f"weight {cls_weight}, T {o['cls_T']}, softmax over classes on the "
                       f"positives" if cls_weight else "off"),
            "region": "main (positive) region only, as mmdet 3.x LDHead",
            "detectors": {"gfl": "GFL (GFLHead)",
                          "retinanet": "RetinaNet with GFL box distributions (RetinaGFL)",
                          "two_stage": "two-stage, the RPN with GFL box distributions"
                          }[o["recipe"]]}),
        paper="Z. Zheng, R. Ye, P. Wang, D. Ren, W. Zuo, Q. Hou, M.-M. Cheng, CVPR 2022, "
              "Localization distillation for dense object detection",
    )
