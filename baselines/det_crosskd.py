"""CrossKD for detection — the student's head feature through the teacher's remaining head.

Paper: J. Wang, Y. Chen, Z. Zheng, X. Li, M.-M. Cheng, Q. Hou, "CrossKD: cross-head knowledge
distillation for object detection", CVPR 2024. Reference code: jbwang1997/CrossKD (mmdet 3.x):
``mmdet/models/detectors/crosskd_gfl.py`` (``forward_crosskd_single``, ``reuse_teacher_head``,
``align_scale``, ``pred_mimicking_loss_single``), ``crosskd_retinanet.py``,
``mmdet/models/losses/kd_loss.py`` (``KDQualityFocalLoss``), configs
``configs/crosskd/crosskd_r18_{gflv1,retinanet}_*``.

Per FPN level, with f_S, f_T the student's and teacher's head-branch features at the crossing
point (``reused_teacher_head_idx`` = 3: the third of four stacked convs, before its activation)::

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

Regression for anchor-delta heads (``det_crosskd_reg_box``, RetinaNet; upstream
``crosskd_retinanet.py``: ``GIoULoss`` weight 1), with B(.) the head's box decoding from its
anchors (:mod:`baselines.det_head`) and the same weights s (teacher scores per anchor, 0 where
label_weight is 0)::

    L_box = w * sum_l sum_a s_a * (1 - GIoU(B(b_X)_a, B(b_T)_a)) / (avg_factor + eps)

``det_crosskd_reg`` (the method's regression term) is the GFL form on a distribution head
(``integral``/``reg_max``), the box form otherwise, each with its own weight.
Reduction: as above; ``avg_factor`` is the number of positive anchors of the detector's
assigner (mean over all elements for the classification term, the sum of s for the box term,
when it is not given); ``label_weights`` default to 1. Given the ground truth
(``gt_boxes``, ``gt_labels``, ``img_shapes``) and the teacher's dense head, both come from that
head's own assigner (ATSS for GFL, max-IoU for RetinaNet: they depend only on the anchors and
the boxes, so the student's head would assign the same).
Defaults: cls weight 1, beta 1; reg (GFL) weight 4, T 1 (the official GFL config at commit
b0c5a76; a later revision uses KL weight 3 plus a GIoU term of weight 2); box (RetinaNet)
weight 1.
Attach points: the head branches' features before the last activation (student and teacher),
``cls_scores`` / ``bbox_preds`` (teacher); ``teacher_head`` is the teacher's remaining layers
(a module, or one per level when they differ, e.g. GFL's per-level ``Scale``). Inside a
``DistillationModel`` (``teacher_kwargs``) they are the tapped branch's stacked convs after the
tapped one, then the teacher's ``classifier`` / ``regressor`` tap (and GFL's ``Scale``);
``teacher_dense_head`` is the head they belong to (anchors, decoding, assigner).
Ground truth: only through the assigner's ``label_weights`` / ``avg_factor`` (optional).
Re-implementation: no (upstream's semantics; the teacher's layers run with detached
parameters, so the gradient reaches only f_S). The method (``crosskd`` on a detection table) is
built by :func:`detection_spec`.

Two-stage detectors (option ``two_stage``, Cascade Mask R-CNN; an adaptation, flagged: upstream
defines CrossKD for dense heads only). The crossing point is the RPN's: f = the output of
``rpn_head.rpn_conv`` (mmdet applies its ReLU out of place, so the tap is pre-activation), and
H_T = the teacher's ``rpn_cls`` / ``rpn_reg`` (no later convs). The terms are RetinaNet's: KDQFL
on the objectness logits (one per anchor) and the score-weighted GIoU of the delta-decoded
anchors, both with RetinaNet's weights. Targets are the teacher RPN head's own: every box as
class 0 and its random sampler's anchors (label weights; ``avg_factor`` their count). The RoI
heads are not crossed: the student's and the teacher's proposals differ, and pairing them would
mean pooling one network's RoIs on the other's features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from mmdet.models.losses import GIoULoss, KnowledgeDistillationKLDivLoss
from torch import Tensor, nn
from torch.func import functional_call

from baselines._common import align_scale, as_list, prefixed, resolve_options
from baselines.det_head import (
    Frozen,
    Targets,
    assign,
    branch_after,
    decode_level,
    dense_head,
    is_distribution_head,
    level_priors,
    module_name,
)
from suite.methods.registry import LOSSES
from suite.methods.spec import GT_BOXES, GT_LABELS, IMG_SHAPES, Input, LossSpec, MethodSpec, S, T

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


def remaining_layers(teacher: nn.Module, taps: dict[str, str | list[str]], crossing: str,
                     final: str, per_level: bool = False) -> list[nn.Module]:
    """The teacher's layers after the ``crossing`` tap up to the ``final`` tap's module: the
    branch's later stacked convs, the final conv, and (``per_level``, boxes) each level's
    ``Scale`` where the dense head has them (GFL) -- one module per level, or one shared."""
    modules = dict(teacher.named_modules())
    head = dense_head(teacher, module_name(taps[final]))
    layers = [*branch_after(teacher, taps[crossing]), modules[module_name(taps[final])]]
    scales = getattr(head, "scales", None) if per_level else None
    if scales is None:
        return [nn.Sequential(*layers)]
    return [nn.Sequential(*layers, scale) for scale in scales]


class _CrossHead(nn.Module):
    """Holds the frozen teacher layers out of the module tree and crosses student features."""

    DENSE_HEADS: tuple[str, ...] = ("GFLHead", "RetinaHead", "RPNHead")
    FINAL = "classifier"  # the teacher tap of the last reused layer (``rpn_`` + it on an RPN)

    @classmethod
    def final_tap(cls, inputs: dict[str, Input]) -> str:
        """The teacher tap of the last reused layer: :attr:`FINAL` of a one-stage head, its
        ``rpn_`` form when the crossing point is the RPN's (``rpn_feature``)."""
        return f"rpn_{cls.FINAL}" if inputs["preds_S"].tap == "rpn_feature" else cls.FINAL

    @classmethod
    def reused_taps(cls, inputs: dict[str, Input]) -> tuple[str, ...]:
        """The teacher taps the loss reuses as modules (checked at plan time)."""
        return (cls.final_tap(inputs),)

    def __init__(self, teacher_head: Heads | None, relu: bool,
                 teacher_dense_head: nn.Module | None = None) -> None:
        super().__init__()
        self._heads: tuple[nn.Module, ...] = ()
        self.set_teacher_head(teacher_head)
        self.relu = relu
        self._dense = Frozen(teacher_dense_head) if teacher_dense_head is not None else Frozen()

    @classmethod
    def teacher_kwargs(cls, teacher: nn.Module, taps: dict[str, str | list[str]],
                       inputs: dict[str, Input]) -> dict[str, object]:
        """The teacher's layers after the crossing tap (``preds_S``'s) and its dense head."""
        crossing, final = inputs["preds_S"].tap, cls.final_tap(inputs)
        per_level = cls.FINAL == "regressor"  # GFL's boxes pass each level's Scale
        return {"teacher_head": remaining_layers(teacher, taps, crossing, final, per_level),
                "teacher_dense_head": dense_head(teacher, module_name(taps[final]))}

    @property
    def anchors(self) -> int:
        """Anchors per location of the teacher's head (1 without one: GFL's single anchor)."""
        return int(getattr(self._dense[0], "num_base_priors", 1)) if len(self._dense) else 1

    @property
    def dense(self) -> nn.Module:
        if not len(self._dense):
            raise RuntimeError("CrossKD needs the teacher's dense head for ground-truth targets "
                               "or box decoding (teacher_dense_head=)")
        return self._dense[0]

    def targets(self, maps: Sequence[Tensor], gt_boxes: Sequence[Tensor] | None,
                gt_labels: Sequence[Tensor] | None,
                img_shapes: Sequence[Sequence[int]] | None) -> Targets | None:
        """The dense head's assignment of the batch when the ground truth is given."""
        if gt_boxes is None or gt_labels is None or img_shapes is None:
            return None
        return assign(self.dense, maps, gt_boxes, gt_labels, img_shapes)

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
                 loss_weight: float = 1.0, teacher_dense_head: nn.Module | None = None) -> None:
        super().__init__(teacher_head, relu, teacher_dense_head)
        self.beta = beta
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor | Sequence[Tensor], feats_T: Tensor | Sequence[Tensor],
                preds_T: Tensor | Sequence[Tensor],
                label_weights: Sequence[Tensor] | None = None,
                avg_factor: float | None = None, gt_boxes: Sequence[Tensor] | None = None,
                gt_labels: Sequence[Tensor] | None = None,
                img_shapes: Sequence[Sequence[int]] | None = None) -> Tensor:
        """``preds_S``/``feats_T``: crossing-point features; ``preds_T``: teacher class scores;
        with the ground truth, ``label_weights``/``avg_factor`` come from the head's assigner."""
        assigned = self.targets(as_list(preds_T), gt_boxes, gt_labels, img_shapes)
        if assigned is not None and label_weights is None and avg_factor is None:
            label_weights, avg_factor = assigned.label_weights, assigned.avg_factor
        total = torch.zeros(())
        count = 0
        for i, (f_s, f_t, z_t) in enumerate(zip(as_list(preds_S), as_list(feats_T),
                                                 as_list(preds_T))):
            k = z_t.shape[1] // self.anchors  # classes per anchor (mmdet's cls_out_channels)
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

    DENSE_HEADS = ("GFLHead",)
    FINAL = "regressor"

    def __init__(self, teacher_head: Heads | None = None, T: float = 1.0, reg_max: int = 16,  # noqa: N803
                 relu: bool = True, loss_weight: float = 4.0,
                 teacher_dense_head: nn.Module | None = None) -> None:
        super().__init__(teacher_head, relu, teacher_dense_head)
        self.reg_max = reg_max
        self.loss_weight = loss_weight
        # mmdet's loss averages over the bins; upstream sums them (class_reduction='sum')
        self.kd = KnowledgeDistillationKLDivLoss(loss_weight=loss_weight * (reg_max + 1), T=T)

    def forward(self, preds_S: Tensor | Sequence[Tensor], feats_T: Tensor | Sequence[Tensor],
                preds_T: Tensor | Sequence[Tensor], cls_scores_T: Tensor | Sequence[Tensor],
                label_weights: Sequence[Tensor] | None = None,
                gt_boxes: Sequence[Tensor] | None = None,
                gt_labels: Sequence[Tensor] | None = None,
                img_shapes: Sequence[Sequence[int]] | None = None) -> Tensor:
        """``preds_T``: teacher box distributions; ``cls_scores_T``: teacher class scores."""
        assigned = self.targets(as_list(cls_scores_T), gt_boxes, gt_labels, img_shapes)
        if assigned is not None and label_weights is None:
            label_weights = assigned.label_weights
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


@LOSSES.register_module(name="det_crosskd_reg_box")
class CrossKDRegBoxLoss(_CrossHead):
    """GIoU between the boxes decoded from the crossed and the teacher's anchor deltas."""

    DENSE_HEADS = ("RetinaHead", "RPNHead")
    FINAL = "regressor"

    def __init__(self, teacher_head: Heads | None = None, relu: bool = True,
                 loss_weight: float = 1.0, teacher_dense_head: nn.Module | None = None) -> None:
        super().__init__(teacher_head, relu, teacher_dense_head)
        self.loss_weight = loss_weight
        self.giou = GIoULoss(loss_weight=loss_weight)

    def forward(self, preds_S: Tensor | Sequence[Tensor], feats_T: Tensor | Sequence[Tensor],
                preds_T: Tensor | Sequence[Tensor], cls_scores_T: Tensor | Sequence[Tensor],
                label_weights: Sequence[Tensor] | None = None, avg_factor: float | None = None,
                gt_boxes: Sequence[Tensor] | None = None,
                gt_labels: Sequence[Tensor] | None = None,
                img_shapes: Sequence[Sequence[int]] | None = None) -> Tensor:
        """``preds_T``: the teacher's anchor deltas; ``cls_scores_T``: its class logits."""
        cls_t = as_list(cls_scores_T)
        assigned = self.targets(cls_t, gt_boxes, gt_labels, img_shapes)
        if assigned is not None and label_weights is None and avg_factor is None:
            label_weights, avg_factor = assigned.label_weights, assigned.avg_factor
        priors = level_priors(self.dense, cls_t)
        levels = []
        for i, (f_s, f_t, b_t, c_t) in enumerate(zip(as_list(preds_S), as_list(feats_T),
                                                      as_list(preds_T), cls_t)):
            k = c_t.shape[1] * 4 // b_t.shape[1]  # classes per anchor
            w = rows(c_t.detach(), k).max(1)[0].sigmoid()
            if label_weights is not None:
                w = torch.where(label_weights[i].reshape(-1).to(w) == 0, torch.zeros_like(w), w)
            stride = int(self.dense.prior_generator.strides[i][0])
            box_x = decode_level(self.dense, priors[i], self.cross(i, f_s, f_t), stride)
            box_t = decode_level(self.dense, priors[i], b_t.detach(), stride)
            levels.append((box_x.reshape(-1, 4), box_t.reshape(-1, 4), w))
        norm = avg_factor if avg_factor is not None else sum(float(w.sum()) for *_, w in levels)
        return sum(self.giou(bx, bt, weight=w, avg_factor=norm) for bx, bt, w in levels)


@LOSSES.register_module(name="det_crosskd_reg")
class CrossKDRegLoss(nn.Module):
    """CrossKD's regression term for the teacher's head: the GFL form on a distribution head
    (:class:`CrossKDRegGFLLoss`, ``gfl_weight``), the box form otherwise
    (:class:`CrossKDRegBoxLoss`, ``box_weight``); either times ``loss_weight``."""

    DENSE_HEADS = ("GFLHead", "RetinaHead", "RPNHead")

    def __init__(self, teacher_head: Heads | None = None,
                 teacher_dense_head: nn.Module | None = None, gfl_weight: float = 4.0,
                 box_weight: float = 1.0, T: float = 1.0, relu: bool = True,  # noqa: N803
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if teacher_dense_head is None:
            raise ValueError("det_crosskd_reg needs the teacher's dense head (teacher_dense_head=)")
        self.form: nn.Module
        if is_distribution_head(teacher_dense_head):
            self.form = CrossKDRegGFLLoss(teacher_head, T=T, reg_max=teacher_dense_head.reg_max,
                                          relu=relu, loss_weight=loss_weight * gfl_weight,
                                          teacher_dense_head=teacher_dense_head)
        else:
            self.form = CrossKDRegBoxLoss(teacher_head, relu=relu,
                                          loss_weight=loss_weight * box_weight,
                                          teacher_dense_head=teacher_dense_head)
        self.loss_weight = loss_weight

    @classmethod
    def teacher_kwargs(cls, teacher: nn.Module, taps: dict[str, str | list[str]],
                       inputs: dict[str, Input]) -> dict[str, object]:
        """As the GFL form's: the layers after the crossing tap up to the regressor."""
        return CrossKDRegGFLLoss.teacher_kwargs(teacher, taps, inputs)

    @classmethod
    def reused_taps(cls, inputs: dict[str, Input]) -> tuple[str, ...]:
        return CrossKDRegGFLLoss.reused_taps(inputs)

    def forward(self, preds_S: Tensor | Sequence[Tensor], feats_T: Tensor | Sequence[Tensor],
                preds_T: Tensor | Sequence[Tensor], cls_scores_T: Tensor | Sequence[Tensor],
                gt_boxes: Sequence[Tensor] | None = None,
                gt_labels: Sequence[Tensor] | None = None,
                img_shapes: Sequence[Sequence[int]] | None = None) -> Tensor:
        return self.form(preds_S, feats_T, preds_T, cls_scores_T, gt_boxes=gt_boxes,
                         gt_labels=gt_labels, img_shapes=img_shapes)


# ------------------------------------------------------------------ the detection method
DETECTION_DEFAULTS: dict[str, Any] = {
    "cls_weight": 1.0, "beta": 1.0, "reg_weight_gfl": 4.0, "reg_weight_box": 1.0, "T": 1.0,
    "regression": True, "two_stage": False,
}
TWO_STAGE_NOTE = ("two-stage adaptation (upstream has none): the crossing on the RPN head -- the "
                  "student's RPN conv feature through the teacher's RPN classifier / regressor; "
                  "the RoI heads are not crossed")
_GT = {"gt_boxes": GT_BOXES, "gt_labels": GT_LABELS, "img_shapes": IMG_SHAPES}


def detection_spec(options: dict[str, Any] | None = None) -> MethodSpec:
    """CrossKD on a dense detector (GFL, RetinaNet) or, option ``two_stage``, on a two-stage
    detector's RPN head (an adaptation): classification and regression crossing."""
    o = resolve_options("crosskd", options, DETECTION_DEFAULTS)
    two = bool(o["two_stage"])
    cls_feat, reg_feat = ("rpn_feature", "rpn_feature") if two else ("cls_feature", "reg_feature")
    scores, boxes = ("rpn_cls_scores", "rpn_bbox_preds") if two else ("cls_scores", "bbox_preds")
    losses = {"loss_crosskd_cls": LossSpec(
        type="det_crosskd_cls", weight=float(o["cls_weight"]),
        inputs={"preds_S": S(cls_feat), "feats_T": T(cls_feat), "preds_T": T(scores), **_GT},
        kwargs={"beta": o["beta"]})}
    if o["regression"]:
        losses["loss_crosskd_reg"] = LossSpec(
            type="det_crosskd_reg", weight=1.0,
            inputs={"preds_S": S(reg_feat), "feats_T": T(reg_feat),
                    "preds_T": T(boxes), "cls_scores_T": T(scores), **_GT},
            kwargs={"gfl_weight": o["reg_weight_gfl"], "box_weight": o["reg_weight_box"],
                    "T": o["T"]})
    unverified = ["GFL regression: KL weight 4 (commit b0c5a76); a later revision uses KL 3 + "
                  "GIoU 2", "avg_factor: the local batch's positives (upstream: averaged over "
                  "GPUs for GFL)"]
    if two:
        unverified = [TWO_STAGE_NOTE, "RPN targets: the RPN's own sampled anchors (256 an image) "
                      "weight the terms, normalised by their count", "weights: RetinaNet's "
                      "(KDQFL 1, GIoU 1)"]
    return MethodSpec(
        name="crosskd", losses=losses, needs_gt=True, reimplementation=two,
        unverified=unverified,
        assumptions=prefixed("crosskd", {
            "task": "detection",
            "cross_point": ("rpn_feature (the RPN's 3x3 conv, before its ReLU) -> ReLU -> the "
                            "teacher's rpn_cls / rpn_reg" if two else
                            "cls_feature / reg_feature (the third of four stacked convs, before "
                            "its ReLU: upstream's reused_teacher_head_idx 3) -> ReLU -> the "
                            "teacher's fourth conv -> classifier / regressor (GFL: then the "
                            "level's Scale)"),
            "align_scale": "per-channel mean/std of the teacher feature (upstream)",
            "cls": f"KDQualityFocalLoss beta {o['beta']}, weight {o['cls_weight']}, / positives",
            "reg": (f"GFL: KL T {o['T']} weight {o['reg_weight_gfl']}; RetinaNet: GIoU of decoded "
                    f"boxes weight {o['reg_weight_box']}") if o["regression"] else "off",
            "targets": "label weights and positives from the teacher head's assigner on the GT",
            "detectors": ("two-stage (Cascade Mask R-CNN): the RPN head, an adaptation" if two
                          else "GFL, RetinaNet (dense heads)")}),
        paper="J. Wang, Y. Chen, Z. Zheng, X. Li, M.-M. Cheng, Q. Hou, CVPR 2024, CrossKD: "
              "cross-head knowledge distillation for object detection",
    )
