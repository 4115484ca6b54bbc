"""SlimSeg — stepwise downward KD with boundary supervision (re-implementation).

Paper: D. Xue, F. Yang, P. Wang, L. Herranz, J. Sun, Y. Zhu, Y. Zhang, "SlimSeg: slimmable
semantic segmentation with boundary supervision", ACM MM 2022. No public code was found.

SlimSeg trains one slimmable network at several widths; each narrower width distils from the
next wider one (stepwise downward KD) and every width is supervised with ground-truth
boundaries. With a fixed teacher and student the chain has a single step (teacher -> student),
so our reading is::

    L_kd = tau^2 * mean_{n,i} KL( softmax(z_T/tau) || softmax(z_S/tau) )          (logits res.)
    E    = GT boundary band at input resolution: pixels whose (2r+1)^2 window holds another
           label (r = ``edge_radius``; changes to/from 255 count; 255 pixels excluded)
    L_bd = mean_{p in E} CE( upsample_bilinear(z_S)_p, y_p )                       (boundary CE)
    L    = kd_weight * L_kd + boundary_weight * L_bd
           (two losses: ``loss_slimseg_kd`` of type ``kd`` and ``loss_slimseg_boundary`` of type
           ``slimseg_boundary``, which takes no teacher input)

Reductions: L_kd mean over the N*h*w logit pixels; L_bd mean over boundary pixels (0 if the
batch has none). Assumptions (all unverified): the single-step chain, the boundary band
width, a boundary-restricted CE as the "boundary supervision", both weights.
Defaults: kd 1, boundary 1, tau 1, edge radius 2 (input pixels).
Attach point: ``logits``. Ground truth: yes (boundaries). Re-implementation: yes.
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


@LOSSES.register_module(name="slimseg_boundary")
class BoundaryCELoss(nn.Module):
    """Cross entropy of the (bilinearly upsampled) student logits on the GT boundary band only.

    Mean over the band's pixels (0 when the batch has none). No teacher input.
    """

    def __init__(self, edge_radius: int = 2, ignore_index: int = IGNORE_INDEX,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.edge_radius = edge_radius
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor, gt_seg: Tensor) -> Tensor:
        gt = label_map(gt_seg)
        edge = label_edges(gt, self.edge_radius, self.ignore_index)
        up = F.interpolate(preds_S, gt.shape[-2:], mode="bilinear", align_corners=False)
        target = torch.where(edge, gt, torch.zeros_like(gt))
        ce = F.cross_entropy(up, target, reduction="none")
        return self.loss_weight * (ce * edge).sum() / edge.sum().clamp(min=1)


DEFAULTS: dict[str, Any] = {"kd_weight": 1.0, "tau": 1.0, "boundary_weight": 1.0,
                            "edge_radius": 2}


@METHODS.register_module(name="slimseg")
def slimseg(options: dict[str, Any] | None = None) -> MethodSpec:
    """SlimSeg's teacher -> student step: pixel KD + boundary-band cross entropy."""
    o = resolve_options("slimseg", options, DEFAULTS)
    return MethodSpec(
        name="slimseg",
        losses={
            "loss_slimseg_kd": kd_spec(o["kd_weight"], o["tau"]),
            "loss_slimseg_boundary": LossSpec(
                type="slimseg_boundary", weight=float(o["boundary_weight"]),
                inputs={"preds_S": S("logits"), "gt_seg": GT_SEG},
                kwargs={"edge_radius": o["edge_radius"]}),
        },
        needs_gt=True, reimplementation=True,
        unverified=["single-step teacher->student chain instead of width-to-width KD",
                    "boundary supervision as boundary-band CE", "edge radius", "all weights"],
        assumptions=prefixed("slimseg", {"chain": "teacher->student (one step)",
                                         "boundary_loss": "CE on GT boundary band",
                                         "edge_radius": o["edge_radius"]}),
        paper="D. Xue, F. Yang, P. Wang, L. Herranz, J. Sun, Y. Zhu, Y. Zhang, ACM MM 2022, "
              "SlimSeg: slimmable semantic segmentation with boundary supervision",
    )
