"""IFD (PEFD) — improved feature distillation via a projector ensemble, dense adaptation.

Paper: Y. Chen, S. Wang, J. Liu, X. Xu, F. de Hoog, Z. Huang, "Improved feature distillation
via projector ensemble", NeurIPS 2022. Reference code: chenyd7/PEFD (``helper/loops.py``,
``models/util.py``: three linear projectors + ReLU, averaged; loss 1 - cos, summed / batch).

Dense adaptation (ours): each projector is a 1x1 convolution (a per-pixel linear map, with
bias, student width -> teacher width), applied to the feature before the classifier::

    g_i   = 1/P * sum_{p=1..P} ReLU(W_p f^S_i + b_p)
    L_ifd = w * mean_{n,i} (1 - cos(f^T_i, g_i))          over the N*h*w pixels

Reduction: mean over pixels (upstream sums over the batch of global vectors and divides by N;
per pixel that would be an extra factor h*w). Defaults: weight 25 (upstream ``beta``), P = 3.
Attach point: ``head_feature``. Ground truth: no. Re-implementation: yes (upstream is for
classification; the per-pixel projectors and the pixel mean are our dense adaptation).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from baselines._common import align_to_teacher, prefixed, resolve_options
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import LossSpec, MethodSpec, S, T


@LOSSES.register_module(name="ifd")
class ProjectorEnsembleLoss(nn.Module):
    """1 - cosine between the teacher feature and the mean of P ReLU'd 1x1 projections."""

    def __init__(self, student_channels: int, teacher_channels: int, num_projectors: int = 3,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.projectors = nn.ModuleList(
            nn.Conv2d(student_channels, teacher_channels, 1) for _ in range(num_projectors))
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        g = torch.stack([F.relu(p(preds_S)) for p in self.projectors]).mean(0)
        g, preds_T = align_to_teacher(g, preds_T)
        cos = F.cosine_similarity(g, preds_T, dim=1, eps=1e-8)
        return self.loss_weight * (1 - cos).mean()


DEFAULTS: dict[str, Any] = {"weight": 25.0, "num_projectors": 3}


@METHODS.register_module(name="ifd")
def ifd(options: dict[str, Any] | None = None) -> MethodSpec:
    """PEFD's projector-ensemble feature distillation on the decode head's feature."""
    o = resolve_options("ifd", options, DEFAULTS)
    return MethodSpec(
        name="ifd",
        losses={"loss_ifd": LossSpec(
            type="ifd", weight=float(o["weight"]),
            inputs={"preds_S": S("head_feature"), "preds_T": T("head_feature")},
            kwargs={"num_projectors": o["num_projectors"]},
            channels_from="head_feature")},
        needs_gt=False, reimplementation=True,
        unverified=["weight 25 is PEFD's classification value", "1x1-conv projectors and the "
                    "mean over pixels are our dense adaptation"],
        assumptions=prefixed("ifd", {"projector": "1x1 conv + ReLU per pixel",
                                     "reduction": "mean over N*h*w"}),
        paper="Y. Chen, S. Wang, J. Liu, X. Xu, F. de Hoog, Z. Huang, NeurIPS 2022, Improved "
              "feature distillation via projector ensemble",
    )
