"""Anchor heads whose box branch predicts GFL's edge distributions: RetinaGFL and RPN-GFL.

LD (Zheng et al., "Localization distillation for dense object detection", CVPR 2022) distils
the box-edge distributions of GFL (Li et al., "Generalized Focal Loss", NeurIPS 2020); its
authors' code (mmdet 2) gives RetinaNet and the RPN of a two-stage detector such a box branch
(``RetinaGFLHead``, ``RPNGFLHead``). These are re-implementations for mmdet 3.3 on mmdet's own
heads:

* :class:`TapRetinaGFLHead` -- :class:`~suite.nets.det_heads.TapRetinaHead` (mmdet's
  ``RetinaHead``: 4 stacked convs a branch, 9 anchors a location, its stacked-conv ReLUs out of
  place) whose 3x3 ``retina_reg`` outputs ``A * 4 * (reg_max + 1)`` logits;
* :class:`RPNGFLHead` -- mmdet's ``RPNHead`` (still an instance of it: 3x3 ``rpn_conv`` + ReLU,
  1x1 ``rpn_cls``, 3 anchors) whose 1x1 ``rpn_reg`` outputs ``A * 4 * (reg_max + 1)`` logits.

What they share (:class:`DistributionBoxMixin`): the logits of a location are ``A`` blocks
(mmdet's anchor order: location-major, anchor-minor) of 4 edges x ``reg_max + 1`` bins; an
anchor's box is the four distances ``integral(softmax(logits)) * stride`` (mmdet's GFL
``Integral``, the level's stride) from the anchor's centre, decoded by mmdet's
``DistancePointBBoxCoder`` (``bbox_coder``), as GFL decodes its points. Everything else is the
base head's: its anchors, assigner and sampler (``get_anchors`` / ``get_targets`` stay
``AnchorHead``'s: targets are the GT boxes, ``reg_decoded_bbox=True``), its classification
loss, and its prediction pipeline (score filtering, top-k, NMS; the RPN's per-level NMS and
proposal filtering) fed with the decoded distances.

Box loss, per FPN level ``l`` of stride ``s_l`` and summed over levels (mmengine sums the
per-level terms)::

    b_a    = decode(centre(a), s_l * sum_k k * softmax(z_a)_k)      (per edge, k = 0..reg_max)
    L_bbox = w * sum_{a in P} (1 - GIoU(b_a, g_a)) / avg_factor

``P`` the positive anchors and ``g_a`` their GT boxes (the base head's assignment),
``avg_factor`` the base head's (positives with mmdet's pseudo sampler: RetinaNet; sampled
anchors with its ``RandomSampler``: RPN), ``w`` the config's ``loss_bbox`` weight (2.0 in the
LD recipes). The upstream loss divides boxes and centres by the stride first; GIoU is
scale-invariant, so the value is the same. Upstream has no DFL term on these heads; neither is
there one here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmdet.models.dense_heads import RPNHead
from mmdet.models.dense_heads.gfl_head import Integral
from mmdet.models.task_modules.coders import DistancePointBBoxCoder
from mmdet.models.utils import images_to_levels, multi_apply
from mmdet.registry import MODELS
from mmdet.structures.bbox import cat_boxes, get_box_tensor
from torch import Tensor, nn

from suite.errors import SpecError
from suite.nets.det_heads import TapRetinaHead

REG_MAX = 16  # the LD recipes' bins - 1 per edge (GFL's)


def as_distribution_head(head: dict[str, Any], head_type: str, reg_max: int = REG_MAX,
                         giou_weight: float = 2.0) -> None:
    """Turn an mmdet RetinaNet / RPN head config (``head``, in place) into ``head_type``'s:
    ``reg_max``, the distance coder, the loss on decoded boxes (GIoU, weight 2.0). Each key is
    replaced, not merged (an mmengine ``ConfigDict.update`` would keep the old coder's and
    loss's other arguments)."""
    new = dict(type=head_type, reg_max=reg_max, bbox_coder=dict(type="DistancePointBBoxCoder"),
               reg_decoded_bbox=True, loss_bbox=dict(type="GIoULoss", loss_weight=giou_weight))
    for key, value in new.items():
        head[key] = value


class DistributionBoxMixin:
    """The distribution box branch of an mmdet ``AnchorHead`` (module docstring). Put it before
    the head class in the bases; ``REGRESSOR`` names the head's final box convolution and
    ``LOSS_KEYS`` its (classification, box) loss keys."""

    REGRESSOR: str = ""
    LOSS_KEYS: tuple[str, str] = ("loss_cls", "loss_bbox")

    def __init__(self, *args: Any, reg_max: int = REG_MAX, **kwargs: Any) -> None:
        name = type(self).__name__
        if isinstance(reg_max, bool) or not isinstance(reg_max, int) or reg_max < 1:
            raise SpecError(f"{name}: reg_max must be a positive integer, got {reg_max!r}")
        if not kwargs.setdefault("reg_decoded_bbox", True):
            raise SpecError(f"{name} regresses decoded boxes: reg_decoded_bbox must be True")
        kwargs.setdefault("bbox_coder", dict(type="DistancePointBBoxCoder"))
        self.reg_max = reg_max  # before the base head builds its layers (_init_layers reads it)
        super().__init__(*args, **kwargs)
        if not isinstance(self.bbox_coder, DistancePointBBoxCoder):
            raise SpecError(f"{name} decodes distances from anchor centres: bbox_coder must be "
                            f"DistancePointBBoxCoder, got {type(self.bbox_coder).__name__}")
        self.integral = Integral(reg_max)

    @property
    def bins(self) -> int:
        """Logits per anchor: 4 edges x ``reg_max + 1`` bins."""
        return 4 * (self.reg_max + 1)

    def _init_layers(self) -> None:
        """The base head's layers, its box convolution rebuilt with ``A * bins`` outputs (same
        input, kernel and padding; same place in the state dict)."""
        super()._init_layers()
        old = getattr(self, self.REGRESSOR)
        setattr(self, self.REGRESSOR, nn.Conv2d(old.in_channels, self.num_base_priors * self.bins,
                                                old.kernel_size, padding=old.padding))

    def level_strides(self) -> list[int]:
        """The head's level strides (square)."""
        out = []
        for stride in self.prior_generator.strides:
            sx, sy = (stride, stride) if isinstance(stride, (int, float)) else stride
            if sx != sy:
                raise SpecError(f"{type(self).__name__} needs square level strides, got {stride}")
            out.append(int(sx))
        return out

    def anchor_center(self, anchors: Tensor) -> Tensor:
        """Centres ``(..., 2)`` (x, y) of ``(..., 4)`` anchors (x1, y1, x2, y2)."""
        anchors = get_box_tensor(anchors)
        return torch.stack([(anchors[..., 0] + anchors[..., 2]) / 2,
                            (anchors[..., 1] + anchors[..., 3]) / 2], dim=-1)

    def distances(self, bbox_pred: Tensor, stride: int) -> Tensor:
        """Edge distances in input pixels, ``(N*H*W*A) x 4`` (mmdet's anchor order), of one
        level's ``N x (A*bins) x H x W`` logits: the integral of each edge's softmax times the
        level's stride."""
        rows = bbox_pred.permute(0, 2, 3, 1).reshape(-1, self.bins)
        return self.integral(rows) * stride

    def decode(self, anchors: Tensor, distances: Tensor,
               max_shape: Sequence[int] | None = None) -> Tensor:
        """Boxes ``M x 4`` at ``distances`` (``M x 4``: left, top, right, bottom) from the
        centres of ``anchors`` (``M x 4``); clipped to ``max_shape`` (h, w) when given."""
        boxes = self.bbox_coder.decode(self.anchor_center(anchors), distances, max_shape=max_shape)
        return get_box_tensor(boxes)

    def loss_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor],
                     batch_gt_instances: list[Any], batch_img_metas: list[dict],
                     batch_gt_instances_ignore: list[Any] | None = None) -> dict[str, list[Tensor]]:
        """``AnchorHead.loss_by_feat`` with each level's stride passed to
        :meth:`loss_by_feat_single` (targets: the base head's ``get_targets``)."""
        sizes = [score.shape[-2:] for score in cls_scores]
        anchors, valid = self.get_anchors(sizes, batch_img_metas, device=cls_scores[0].device)
        labels, label_weights, bbox_targets, bbox_weights, avg_factor = self.get_targets(
            anchors, valid, batch_gt_instances, batch_img_metas,
            batch_gt_instances_ignore=batch_gt_instances_ignore)
        per_level = [a.size(0) for a in anchors[0]]
        level_anchors = images_to_levels([cat_boxes(a) for a in anchors], per_level)
        losses_cls, losses_bbox = multi_apply(
            self.loss_by_feat_single, cls_scores, bbox_preds, level_anchors, labels,
            label_weights, bbox_targets, bbox_weights, self.level_strides(), avg_factor=avg_factor)
        cls_key, bbox_key = self.LOSS_KEYS
        return {cls_key: losses_cls, bbox_key: losses_bbox}

    def loss_by_feat_single(self, cls_score: Tensor, bbox_pred: Tensor, anchors: Tensor,
                            labels: Tensor, label_weights: Tensor, bbox_targets: Tensor,
                            bbox_weights: Tensor, stride: int,
                            avg_factor: float) -> tuple[Tensor, Tensor]:
        """One level's classification loss (the base head's ``loss_cls``) and box loss
        (``loss_bbox`` on the decoded boxes of the positive anchors, module docstring).
        ``anchors`` ``N x (H*W*A) x 4``; targets per anchor as ``get_targets`` gives them."""
        scores = cls_score.permute(0, 2, 3, 1).reshape(-1, self.cls_out_channels)
        loss_cls = self.loss_cls(scores, labels.reshape(-1), label_weights.reshape(-1),
                                 avg_factor=avg_factor)
        bbox_targets = bbox_targets.reshape(-1, 4)
        bbox_weights = bbox_weights.reshape(-1, 4)
        positive = (bbox_weights > 0).any(dim=1)
        rows = bbox_pred.permute(0, 2, 3, 1).reshape(-1, self.bins)[positive]
        boxes = self.decode(anchors.reshape(-1, 4)[positive], self.integral(rows) * stride)
        loss_bbox = self.loss_bbox(boxes, bbox_targets[positive], bbox_weights[positive],
                                   avg_factor=avg_factor)
        return loss_cls, loss_bbox

    def _predict_by_feat_single(self, cls_score_list: list[Tensor], bbox_pred_list: list[Tensor],
                                score_factor_list: list[Tensor], mlvl_priors: list[Tensor],
                                img_meta: dict, cfg: Any, rescale: bool = False,
                                with_nms: bool = True) -> Any:
        """The base head's prediction of one image on decoded distances: each level's logits
        become ``(A*4) x H x W`` distance maps (``integral * stride``) and its anchors their
        centres, so the base head's ``bbox_coder.decode`` places boxes from the centres."""
        maps = []
        for bbox_pred, stride in zip(bbox_pred_list, self.level_strides()):
            h, w = bbox_pred.shape[-2:]
            dist = self.distances(bbox_pred[None], stride)
            maps.append(dist.reshape(h, w, -1).permute(2, 0, 1))
        centres = [self.anchor_center(priors) for priors in mlvl_priors]
        return super()._predict_by_feat_single(cls_score_list, maps, score_factor_list, centres,
                                               img_meta, cfg, rescale=rescale, with_nms=with_nms)


@MODELS.register_module()
class TapRetinaGFLHead(DistributionBoxMixin, TapRetinaHead):
    """RetinaNet's head with a distribution box branch (``retina_reg``: ``A * 4 * (reg_max +
    1)`` logits), focal loss and the base head's max-IoU assignment; module docstring."""

    REGRESSOR = "retina_reg"


@MODELS.register_module()
class RPNGFLHead(DistributionBoxMixin, RPNHead):
    """mmdet's ``RPNHead`` with a distribution box branch (``rpn_reg``: ``A * 4 * (reg_max +
    1)`` logits); its sigmoid cross-entropy, max-IoU assigner, random sampler and proposal
    NMS stay mmdet's; module docstring."""

    REGRESSOR = "rpn_reg"
    LOSS_KEYS = ("loss_rpn_cls", "loss_rpn_bbox")
