"""BGLSSeg — boundary-guided lightweight segmentation, as a KD baseline (re-implementation).

Paper: Q. Zhou, L. Wang, G. Gao, K. Bin, W. Ou, H. Lu, "Boundary-guided lightweight semantic
segmentation with multi-scale semantic context", IEEE Transactions on Multimedia 2024. No public
code was found. BGLSSeg is an architecture (a boundary branch on shallow features, supervised by
ground-truth edges, guiding a multi-scale context decoder). The BCD paper lists it as an L2L
method using GT edges; we keep the student's architecture fixed (inference cost unchanged), so
our reading adds its boundary supervision as a training-only auxiliary branch next to pixel KD:

    L_kd = tau^2 * mean_{n,i} KL( softmax(z_T/tau) || softmax(z_S/tau) )      (``loss_bglsseg_kd``)
    b    = sigmoid(upsample_bilinear(H(f_low)))   H: 3x3 conv-BN-ReLU-1x1 conv (trainable,
                                                   discarded after training), f_low = student C2
    E    = GT boundary band at input resolution (radius ``edge_radius``; 255 pixels excluded
           from the loss; a change to/from 255 counts as an edge)
    L_bd = BCE(b, E) + Dice(b, E)                  (``loss_bglsseg_boundary``)

Reductions: KD mean over N*h*w logit pixels; BCE mean over the valid (non-255) input pixels;
Dice = 1 - (2 sum b E + 1) / (sum b + sum E + 1) over the whole batch's valid pixels.
Defaults (unverified): kd 1, boundary 1, tau 1, edge radius 2.
Attach points: ``logits``; ``low_level`` (student only). Ground truth: yes.
Re-implementation: yes; the auxiliary-head form is our assumption.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from baselines._common import IGNORE_INDEX, label_edges, label_map, prefixed, resolve_options
from baselines.kd import kd_spec
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import GT_SEG, LossSpec, MethodSpec, S


@LOSSES.register_module(name="bglsseg_boundary")
class BoundaryHeadLoss(nn.Module):
    """Auxiliary boundary head on the student's shallow feature, BCE + Dice to GT edges."""

    def __init__(self, student_channels: int, hidden_channels: int = 64, edge_radius: int = 2,
                 ignore_index: int = IGNORE_INDEX, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.head = nn.Sequential(
            nn.Conv2d(student_channels, hidden_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden_channels), nn.ReLU(inplace=True),
            nn.Conv2d(hidden_channels, 1, 1))
        self.edge_radius = edge_radius
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor, gt_seg: Tensor) -> Tensor:
        gt = label_map(gt_seg)
        target = label_edges(gt, self.edge_radius, self.ignore_index).float()
        valid = (gt != self.ignore_index).float()
        logit = F.interpolate(self.head(preds_S), gt.shape[-2:], mode="bilinear",
                              align_corners=False)[:, 0]
        bce = F.binary_cross_entropy_with_logits(logit, target, reduction="none")
        bce = (bce * valid).sum() / valid.sum().clamp(min=1)
        prob = torch.sigmoid(logit) * valid
        dice = 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)
        return self.loss_weight * (bce + dice)


DEFAULTS: dict[str, Any] = {"kd_weight": 1.0, "tau": 1.0, "boundary_weight": 1.0,
                            "edge_radius": 2, "hidden_channels": 64}


@METHODS.register_module(name="bglsseg")
def bglsseg(options: dict[str, Any] | None = None) -> MethodSpec:
    """Pixel KD + GT-edge supervision of a training-only boundary branch on C2."""
    o = resolve_options("bglsseg", options, DEFAULTS)
    return MethodSpec(
        name="bglsseg",
        losses={
            "loss_bglsseg_kd": kd_spec(o["kd_weight"], o["tau"]),
            "loss_bglsseg_boundary": LossSpec(
                type="bglsseg_boundary", weight=float(o["boundary_weight"]),
                inputs={"preds_S": S("low_level"), "gt_seg": GT_SEG},
                kwargs={"edge_radius": o["edge_radius"],
                        "hidden_channels": o["hidden_channels"]},
                channels_from="low_level", width_kwargs=("hidden_channels",)),
        },
        needs_gt=True, reimplementation=True,
        unverified=["the whole KD formulation (BGLSSeg is an architecture paper)",
                    "boundary head, BCE+Dice, edge radius, all weights"],
        assumptions=prefixed("bglsseg", {"boundary_branch": "training-only head on C2",
                                         "edge_radius": o["edge_radius"]}),
        paper="Q. Zhou, L. Wang, G. Gao, K. Bin, W. Ou, H. Lu, IEEE TMM 2024, Boundary-guided "
              "lightweight semantic segmentation with multi-scale semantic context",
    )
