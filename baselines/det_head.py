"""What detection KD losses reuse from the frozen teacher's mmdet dense head.

The taps give tensors; some losses also need the head itself, never its gradients:

* its **priors** (``prior_generator.grid_priors``: anchors per level, ``(H*W*A) x 4`` in input
  pixels, mmdet's order: location-major, anchor-minor) and its **box decoding**: GFL's
  distributions through ``integral`` times the level's stride, then ``bbox_coder.decode`` from
  the anchor centres (``GFLHead.predict_by_feat_single``); anchor deltas (RetinaNet, RPN)
  through ``bbox_coder.decode`` from the anchors;
* its **label assignment** (``get_anchors`` + ``get_targets``: ATSS for GFL, max-IoU for
  RetinaNet), which depends only on the anchors and the ground truth, so the teacher's head
  assigns exactly as the student's would: per level the label weights and the positive anchors,
  and ``avg_factor`` = the number of positive anchors in the batch (mmdet's
  ``SamplingResult.avg_factor`` with its pseudo sampler). An RPN head (two-stage detectors)
  assigns every box as class 0, as mmdet's ``TwoStageDetector.loss`` does, and samples with its
  ``RandomSampler`` (256 anchors an image, half positive at most): its label weights mark the
  sampled anchors and ``avg_factor`` counts them (positives and negatives);
* the **layers after a tapped feature** (CrossKD's crossing point): the stacked convs of the
  tapped branch after the tapped one, then the final classifier / regressor (and GFL's
  per-level ``Scale`` for boxes).

The head is kept out of the loss's module tree (:class:`Frozen`): not trained, not saved.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

_INDEXED = re.compile(r"\[-?\d+\]$")
_BRANCH = re.compile(r"^(?P<branch>.+)\.(?P<index>\d+)(\..+)?$")


class Frozen:
    """Holds teacher modules outside any ``nn.Module`` tree (plain attribute of a tuple)."""

    def __init__(self, *modules: nn.Module) -> None:
        self.modules: tuple[nn.Module, ...] = tuple(modules)

    def __getitem__(self, i: int) -> nn.Module:
        return self.modules[i]

    def __len__(self) -> int:
        return len(self.modules)


def module_name(tap: str | list[str]) -> str:
    """The module a tap names (its first, for a list tap), without a ``[i]`` output index."""
    name = tap if isinstance(tap, str) else tap[0]
    return _INDEXED.sub("", name)


def dense_head(model: nn.Module, name: str) -> nn.Module:
    """The nearest module at or above ``name`` in ``model`` that has a ``prior_generator`` (the
    mmdet dense head a tap belongs to)."""
    modules = dict(model.named_modules())
    parts = name.split(".")
    for end in range(len(parts), -1, -1):
        module = modules.get(".".join(parts[:end]))
        if module is not None and hasattr(module, "prior_generator"):
            return module
    raise ValueError(f"module {name!r} belongs to no dense head (no prior_generator above it)")


def strides(head: nn.Module) -> list[int]:
    """The head's level strides (square strides)."""
    return [int(s[0]) if isinstance(s, (tuple, list)) else int(s)
            for s in head.prior_generator.strides]


def is_distribution_head(head: nn.Module) -> bool:
    """Whether the head regresses GFL's edge distributions (it has ``integral``/``reg_max``)."""
    return hasattr(head, "integral") and hasattr(head, "reg_max")


def is_rpn(head: nn.Module) -> bool:
    """Whether the head is a two-stage detector's class-agnostic RPN head."""
    from mmdet.models.dense_heads import RPNHead

    return isinstance(head, RPNHead)


def level_priors(head: nn.Module, maps: Sequence[Tensor]) -> list[Tensor]:
    """The head's anchors of each level for maps of these sizes: ``(H*W*A) x 4``."""
    sizes = [tuple(m.shape[-2:]) for m in maps]
    return head.prior_generator.grid_priors(sizes, dtype=maps[0].dtype, device=maps[0].device)


def rows(x: Tensor, width: int) -> Tensor:
    """``N x (A*width) x H x W`` -> ``N x (H*W*A) x width`` (mmdet's anchor order)."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, width)


def decode_level(head: nn.Module, priors: Tensor, bbox_pred: Tensor, stride: int) -> Tensor:
    """Boxes ``N x (H*W*A) x 4`` (input pixels) of one level's box outputs, as the head decodes
    them for prediction (module docstring)."""
    n = bbox_pred.shape[0]
    if is_distribution_head(head):
        dist = rows(bbox_pred, 4 * (head.reg_max + 1)).reshape(-1, 4 * (head.reg_max + 1))
        distances = head.integral(dist) * stride
        centres = head.anchor_center(priors).repeat(n, 1)
        boxes = head.bbox_coder.decode(centres, distances)
    else:
        deltas = rows(bbox_pred, 4).reshape(-1, 4)
        boxes = head.bbox_coder.decode(priors.repeat(n, 1), deltas)
    boxes = getattr(boxes, "tensor", boxes)  # mmdet's box type, when the coder returns one
    return boxes.reshape(n, -1, 4)


def decode_boxes(head: nn.Module, bbox_preds: Sequence[Tensor],
                 priors: Sequence[Tensor]) -> list[Tensor]:
    """:func:`decode_level` for every level."""
    return [decode_level(head, p, b, s) for p, b, s in zip(priors, bbox_preds, strides(head))]


class Targets:
    """The head's label assignment of a batch: per level ``N x (H*W*A)`` label weights and
    positive masks, and ``avg_factor`` (positive anchors in the batch, at least 1)."""

    def __init__(self, label_weights: list[Tensor], positives: list[Tensor],
                 avg_factor: float) -> None:
        self.label_weights, self.positives, self.avg_factor = label_weights, positives, avg_factor


_LAST: dict[str, Any] = {}  # the last assignment: two losses of one step share it


def assign(head: nn.Module, maps: Sequence[Tensor], gt_boxes: Sequence[Tensor],
           gt_labels: Sequence[Tensor], img_shapes: Sequence[Sequence[int]]) -> Targets:
    """The head's targets for one level-``maps`` batch (module docstring). ``img_shapes``: each
    image's ``(h, w)`` before padding; the padded shape is the first level's size x stride."""
    from mmengine.structures import InstanceData

    sizes = [tuple(m.shape[-2:]) for m in maps]
    key = (id(head), tuple(sizes))
    if _LAST.get("key") == key and _LAST.get("gt") is gt_boxes:
        return _LAST["targets"]
    device = maps[0].device
    s0 = strides(head)[0]
    pad = (sizes[0][0] * s0, sizes[0][1] * s0)
    metas = [{"img_shape": tuple(int(v) for v in shape[:2]), "pad_shape": pad,
              "batch_input_shape": pad} for shape in img_shapes]
    if is_rpn(head):  # class-agnostic: every box is class 0, as TwoStageDetector.loss sets
        gt_labels = [torch.zeros_like(lab) for lab in gt_labels]
    gts = [InstanceData(bboxes=b.detach().float().to(device), labels=lab.long().to(device))
           for b, lab in zip(gt_boxes, gt_labels)]
    with torch.no_grad():
        anchors, valid = head.get_anchors(sizes, metas, device=device)
        out = head.get_targets(anchors, valid, gts, metas)
    first = 1 if out[0][0].dim() == 3 else 0  # GFL/ATSS heads return the anchors first
    labels, weights, avg = out[first], out[first + 1], out[-1]
    avg = float(avg.item() if isinstance(avg, Tensor) else avg)
    num_classes = int(getattr(head, "num_classes", 1))
    positives = [(lab >= 0) & (lab < num_classes) for lab in labels]
    targets = Targets(list(weights), positives, max(avg, 1.0))
    _LAST.update(key=key, gt=gt_boxes, targets=targets)
    return targets


def branch_after(model: nn.Module, tapped: str) -> list[nn.Module]:
    """The stacked convs of the branch that the module ``tapped`` (e.g.
    ``bbox_head.cls_convs.2.gn``) belongs to, after the one it is in (``cls_convs[3:]``); none
    for a head's single shared convolution (the RPN's ``rpn_head.rpn_conv``)."""
    name = module_name(tapped)
    modules = dict(model.named_modules())
    parent = modules.get(name.rpartition(".")[0])
    if hasattr(parent, "prior_generator") and isinstance(modules.get(name), nn.Conv2d):
        return []
    match = _BRANCH.match(name)
    while match is not None:
        branch = modules.get(match["branch"])
        if isinstance(branch, nn.ModuleList):
            return list(branch)[int(match["index"]) + 1:]
        match = _BRANCH.match(match["branch"])
    raise ValueError(f"tapped module {tapped!r} is not inside a stacked-conv branch (ModuleList)")
