"""GID — general instance distillation (re-implementation from the paper; no official code).

Paper: X. Dai, Z. Jiang, Z. Wu, Y. Bao, Z. Wang, S. Liu, E. Zhou, "General instance
distillation for object detection", CVPR 2021. No official code exists: this module is written
from the paper and is flagged as a re-implementation; details the paper leaves open are marked
(assumed) below.

General instances (GIs), per image, over all FPN locations (anchors) of a dense head::

    GI score_i = max_k | sigmoid(c_T[i,k]) - sigmoid(c_S[i,k]) |
    box_i      = the teacher's decoded box if max_k sigmoid(c_T[i]) >= max_k sigmoid(c_S[i]),
                 else the student's
    GIs        = top ``topk`` (10) of NMS(box, GI score, IoU ``nms_iou`` 0.3) (mmcv.ops.nms)

Terms, with r_i = RoIAlign(F, GI_i) (mmcv.ops.RoIAlign, ``roi_size`` 7x7 (assumed), on the FPN
level of the GI by the FPN rule floor(4 + log2(sqrt(wh)/224)) clamped to the given levels,
student maps widened by a trainable 1x1 conv when they differ)::

    L_feat = sum_i ||r_T,i - r_S,i||^2 / #GIs                       (sum over C*7*7)
    L_rel  = mean_images mean_{i,j} smoothL1( d_S,ij / mu_S , d_T,ij / mu_T )
             d_ij = ||r_i - r_j||_2 (flattened), mu = mean of d over the pairs i != j
    L_resp = w_cls * sum_{m in M,k} KL_bin(sigmoid(c_T[m,k]) || sigmoid(c_S[m,k])) / |M|
           + w_reg * sum_{m in M} smoothL1(b_S[m], b_T[m]) / |M|
             M: anchors whose prior has IoU >= ``pos_iou`` (0.5, assumed: RetinaNet's positive
             threshold) with a GI of its image
    L      = w * (w_feat L_feat + w_rel L_rel + L_resp)

Reduction: as written (per-GI sums averaged over the batch's GIs; pair means per image
averaged over images; response sums averaged over the masked anchors).
Defaults (docs/baselines.md, the paper's): feature 5e-4, relation 40, response cls 0.1,
reg 1.0; K 10, NMS IoU 0.3. Unverified: the RoI size, the anchor mask rule, the regression
response form (smooth L1, beta 1, on the raw regression outputs) and the form of the
classification response (binary KL = BCE to the teacher's probabilities minus their entropy:
BCE's gradient, zero for identical outputs).
Attach points: ``fpn``, ``cls_scores``, ``bbox_preds`` (student and teacher), plus the
decoded boxes of both and the priors (from the detector's ``prior_generator`` / ``bbox_coder``)
and the FPN strides. Inside a ``DistillationModel`` the teacher's dense head
(``teacher_dense_head``, the head of the ``cls_scores_T`` tap) gives the priors, the decoding
(:mod:`baselines.det_head`; the student's head decodes the same way) and the strides, so the
boxes need not be passed. Ground truth: no.
Re-implementation: yes.

Method ``gid`` (detection): ``loss_gid`` on ``fpn`` with the dense head's ``cls_scores`` /
``bbox_preds`` (GFL: its joint class-quality scores and box distributions; RetinaNet: class
logits and anchor deltas). Option ``two_stage`` (Cascade Mask R-CNN): the RPN's
``rpn_cls_scores`` / ``rpn_bbox_preds`` and anchors stand in for the dense head (GID's R-CNN
response terms on the RoI head's outputs are not reproduced), FPN levels at strides 4..64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from mmcv.ops import RoIAlign, nms
from torch import Tensor, nn

from baselines._common import as_int_list, as_list, prefixed, resolve_options, width_adapter
from baselines.det_head import Frozen, decode_boxes, dense_head, level_priors, module_name
from baselines.det_head import strides as head_strides
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import Input, LossSpec, MethodSpec, S, T, serves


def flat_rows(x: Tensor, width: int) -> Tensor:
    """``N x (A*width) x H x W`` -> ``N x (H*W*A) x width`` (mmdet's anchor ordering)."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, width)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU of ``a`` (m x 4) and ``b`` (k x 4), x1 y1 x2 y2."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None] - inter).clamp(min=1e-12)


def select_general_instances(score_S: Tensor, score_T: Tensor, boxes_S: Tensor, boxes_T: Tensor,
                             topk: int = 10, nms_iou: float = 0.3) -> Tensor:
    """GI boxes (``<= topk`` x 4) of one image from its ``M x K`` logits and ``M x 4`` boxes."""
    p_s, p_t = score_S.detach().sigmoid(), score_T.detach().sigmoid()
    gi = (p_t - p_s).abs().max(1)[0]
    use_t = p_t.max(1)[0] >= p_s.max(1)[0]
    boxes = torch.where(use_t[:, None], boxes_T.detach(), boxes_S.detach())
    _, keep = nms(boxes.float(), gi.float(), nms_iou)
    return boxes[keep[:topk]]


def fpn_level(boxes: Tensor, num_levels: int, first: int = 3, k0: int = 4) -> Tensor:
    """FPN's level rule floor(k0 + log2(sqrt(wh) / 224)), as an index from ``first``."""
    scale = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-6).prod(1).sqrt()
    k = torch.floor(k0 + torch.log2(scale / 224.0))
    return (k - first).clamp(0, num_levels - 1).long()


def relation_loss(emb_S: Tensor, emb_T: Tensor) -> Tensor:
    """Mean smooth L1 between the mean-normalised pairwise distance matrices (K x K)."""
    k = emb_S.shape[0]
    if k < 2:
        return emb_S.sum() * 0
    off = ~torch.eye(k, dtype=torch.bool, device=emb_S.device)
    d_s = (emb_S[:, None] - emb_S[None]).pow(2).sum(-1).clamp(min=1e-12).sqrt() * off
    d_t = (emb_T[:, None] - emb_T[None]).pow(2).sum(-1).clamp(min=1e-12).sqrt() * off
    d_s = d_s / d_s[off].mean().clamp(min=1e-12)
    d_t = d_t / d_t[off].mean().clamp(min=1e-12)
    return F.smooth_l1_loss(d_s, d_t.detach(), reduction="mean")


@LOSSES.register_module(name="det_gid")
class GIDLoss(nn.Module):
    """GID's feature, relation and response terms on the general instances."""

    def __init__(self, student_channels: int | Sequence[int], teacher_channels: int | Sequence[int],
                 strides: Sequence[int] | None = None, topk: int = 10,
                 nms_iou: float = 0.3, pos_iou: float = 0.5, roi_size: int = 7,
                 feat_weight: float = 5e-4, rel_weight: float = 40.0, cls_weight: float = 0.1,
                 reg_weight: float = 1.0, loss_weight: float = 1.0,
                 teacher_dense_head: nn.Module | None = None) -> None:
        super().__init__()
        self._head = Frozen(teacher_dense_head) if teacher_dense_head is not None else Frozen()
        if strides is None:
            strides = (head_strides(teacher_dense_head) if teacher_dense_head is not None
                       else (8, 16, 32, 64, 128))
        n = len(strides)
        cs, ct = as_int_list(student_channels, n), as_int_list(teacher_channels, n)
        self.align = nn.ModuleList(width_adapter(s, t) for s, t in zip(cs, ct))
        self.strides = tuple(strides)
        self.first_level = int(round(math.log2(self.strides[0])))
        self.roi = nn.ModuleList(RoIAlign((roi_size, roi_size), 1.0 / s, 0, aligned=True)
                                 for s in self.strides)
        self.topk, self.nms_iou, self.pos_iou = topk, nms_iou, pos_iou
        self.feat_weight, self.rel_weight = feat_weight, rel_weight
        self.cls_weight, self.reg_weight = cls_weight, reg_weight
        self.loss_weight = loss_weight

    def roi_features(self, feats: Sequence[Tensor], image: int, boxes: Tensor,
                     student: bool) -> Tensor:
        """``#boxes x C x r x r`` RoIAlign features of one image, each box on its FPN level."""
        levels = fpn_level(boxes, len(feats), self.first_level)
        out: Tensor | None = None
        for lvl in levels.unique().tolist():
            idx = (levels == lvl).nonzero()[:, 0]
            fmap = feats[lvl][image:image + 1]
            fmap = self.align[lvl](fmap) if student else fmap.detach()
            rois = torch.cat([boxes.new_zeros(len(idx), 1), boxes[idx]], 1).to(fmap)
            r = self.roi[lvl](fmap, rois)
            if out is None:
                out = r.new_zeros(len(boxes), *r.shape[1:])
            out = out.index_copy(0, idx, r)
        assert out is not None
        return out

    def terms(self, feats_S: Sequence[Tensor], feats_T: Sequence[Tensor],
              cls_S: Sequence[Tensor], cls_T: Sequence[Tensor], reg_S: Sequence[Tensor],
              reg_T: Sequence[Tensor], boxes_S: Sequence[Tensor], boxes_T: Sequence[Tensor],
              priors: Sequence[Tensor]) -> dict[str, Tensor]:
        """Unweighted ``feat``, ``rel``, ``cls``, ``reg`` terms (see the module docstring)."""
        k = cls_T[0].shape[1] // (priors[0].shape[0] // (cls_T[0].shape[2] * cls_T[0].shape[3]))
        c_s = torch.cat([flat_rows(c, k) for c in cls_S], 1)
        c_t = torch.cat([flat_rows(c, k) for c in cls_T], 1).detach()
        r_s = torch.cat([flat_rows(r, r.shape[1] * k // c.shape[1]) for r, c in zip(reg_S, cls_S)], 1)
        r_t = torch.cat([flat_rows(r, r.shape[1] * k // c.shape[1])
                         for r, c in zip(reg_T, cls_T)], 1).detach()
        b_s, b_t = torch.cat(list(boxes_S), 1), torch.cat(list(boxes_T), 1)
        prior = torch.cat(list(priors), 0)
        feat = rel = c_s.sum() * 0
        n_gi, masks = 0, []
        for i in range(c_s.shape[0]):
            gis = select_general_instances(c_s[i], c_t[i], b_s[i], b_t[i], self.topk,
                                           self.nms_iou)
            masks.append(box_iou(prior, gis).max(1)[0] >= self.pos_iou if len(gis)
                         else torch.zeros(len(prior), dtype=torch.bool, device=prior.device))
            if not len(gis):
                continue
            f_s = self.roi_features(feats_S, i, gis, student=True)
            f_t = self.roi_features(feats_T, i, gis, student=False)
            feat = feat + (f_s - f_t).pow(2).sum()
            rel = rel + relation_loss(f_s.flatten(1), f_t.flatten(1))
            n_gi += len(gis)
        mask = torch.stack(masks)
        m = mask.sum().clamp(min=1)
        p_t = c_t.sigmoid()
        bce = (F.binary_cross_entropy_with_logits(c_s, p_t, reduction="none")
               - F.binary_cross_entropy_with_logits(c_t, p_t, reduction="none"))  # binary KL
        reg = F.smooth_l1_loss(r_s, r_t, reduction="none", beta=1.0)
        return {"feat": feat / max(n_gi, 1), "rel": rel / c_s.shape[0],
                "cls": (bce.sum(-1) * mask).sum() / m, "reg": (reg.sum(-1) * mask).sum() / m}

    @classmethod
    def teacher_kwargs(cls, teacher: nn.Module, taps: dict[str, str | list[str]],
                       inputs: dict[str, Input]) -> dict[str, Any]:
        """The dense head of the teacher's class-score tap (priors, decoding, strides)."""
        return {"teacher_dense_head": dense_head(teacher,
                                                 module_name(taps[inputs["cls_scores_T"].tap]))}

    def forward(self, preds_S: Tensor | Sequence[Tensor], preds_T: Tensor | Sequence[Tensor],
                cls_scores_S: Sequence[Tensor], cls_scores_T: Sequence[Tensor],
                bbox_preds_S: Sequence[Tensor], bbox_preds_T: Sequence[Tensor],
                boxes_S: Sequence[Tensor] | None = None, boxes_T: Sequence[Tensor] | None = None,
                priors: Sequence[Tensor] | None = None) -> Tensor:
        """FPN maps, class logits and raw regression outputs per level (student, teacher);
        ``boxes_*``: per level ``N x (H*W*A) x 4`` decoded boxes; ``priors``: per level
        ``(H*W*A) x 4`` anchor boxes, all in the input's pixels (decoded by the teacher's dense
        head when not given)."""
        cls_scores_S, cls_scores_T = as_list(cls_scores_S), as_list(cls_scores_T)
        bbox_preds_S, bbox_preds_T = as_list(bbox_preds_S), as_list(bbox_preds_T)
        if boxes_S is None or boxes_T is None or priors is None:
            if not len(self._head):
                raise RuntimeError("GID needs decoded boxes and priors, or the teacher's dense "
                                   "head (teacher_dense_head=)")
            head = self._head[0]
            priors = level_priors(head, cls_scores_T)
            with torch.no_grad():  # GI selection and the anchor mask only: no gradient
                boxes_S = decode_boxes(head, [b.detach() for b in bbox_preds_S], priors)
                boxes_T = decode_boxes(head, [b.detach() for b in bbox_preds_T], priors)
        t = self.terms(as_list(preds_S), as_list(preds_T), cls_scores_S, cls_scores_T,
                       bbox_preds_S, bbox_preds_T, boxes_S, boxes_T, priors)
        loss = (self.feat_weight * t["feat"] + self.rel_weight * t["rel"]
                + self.cls_weight * t["cls"] + self.reg_weight * t["reg"])
        return self.loss_weight * loss


GID_DEFAULTS: dict[str, Any] = {
    "two_stage": False, "weight": 1.0, "feat_weight": 5e-4, "rel_weight": 40.0,
    "cls_weight": 0.1, "reg_weight": 1.0, "topk": 10, "nms_iou": 0.3, "pos_iou": 0.5,
    "roi_size": 7,
}


@METHODS.register_module(name="gid")
@serves("detection")
def gid(options: dict[str, Any] | None = None) -> MethodSpec:
    """GID on the FPN with the dense head's (or, ``two_stage``, the RPN's) outputs."""
    o = resolve_options("gid", options, GID_DEFAULTS)
    cls_tap, reg_tap = ("rpn_cls_scores", "rpn_bbox_preds") if o["two_stage"] else \
        ("cls_scores", "bbox_preds")
    keys = ("topk", "nms_iou", "pos_iou", "roi_size", "feat_weight", "rel_weight", "cls_weight",
            "reg_weight")
    return MethodSpec(
        name="gid",
        losses={"loss_gid": LossSpec(
            type="det_gid", weight=float(o["weight"]),
            inputs={"preds_S": S("fpn"), "preds_T": T("fpn"),
                    "cls_scores_S": S(cls_tap), "cls_scores_T": T(cls_tap),
                    "bbox_preds_S": S(reg_tap), "bbox_preds_T": T(reg_tap)},
            kwargs={k: o[k] for k in keys}, channels_from="fpn")},
        needs_gt=False, reimplementation=True,
        unverified=["no official code: RoI size, anchor mask rule, response forms (see "
                    "baselines.det_gid)", "GFL: responses on its joint scores and raw box "
                    "distributions", "two-stage: RPN outputs stand in for the head; no R-CNN "
                    "response terms"],
        assumptions=prefixed("gid", {
            "task": "detection", **{k: o[k] for k in keys},
            "head": "RPN (two-stage)" if o["two_stage"] else "dense head (GFL, RetinaNet)",
            "boxes": "decoded by the teacher's head from both networks' box outputs"}),
        paper="X. Dai, Z. Jiang, Z. Wu, Y. Bao, Z. Wang, S. Liu, E. Zhou, CVPR 2021, General "
              "instance distillation for object detection",
    )
