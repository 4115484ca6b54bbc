"""CWT — feature distillation via a learnable channel-wise transformation.

Paper: Z. Liu, Y. Wang, X. Chu, N. Dong, S. Qi, H. Ling, "A simple and generic framework for
feature distillation via channel-wise transformation", ICCV Workshops 2023 (arXiv 2303.13212);
the BCD paper's reference [106]. No public code was found.

Formula (the paper's): the student feature goes through a two-layer MLP made of 1x1
convolutions, MLP(F) = W2(ReLU(W1 F)), and is compared with the teacher feature by L2::

    L_cwt = w * R( (MLP(F_S) - F_T)^2 )

Reduction ``R`` (option ``reduction``): ``"mean"`` (default; mean over N*C*H*W) or
``"sum_per_sample"`` (sum over C*H*W, mean over N: the paper writes a sum over the feature).
Hidden width of the MLP: the teacher's width (assumption; option ``hidden_ratio`` scales it).
Defaults: weight 1 (the paper's single hyper-parameter for segmentation is not known to us).
Attach point: ``head_feature``. Ground truth: no. Re-implementation: yes (from the paper).

Not CWD: the channel-wise *divergence* of Shu et al. lives in :mod:`baselines.cwd`.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from baselines._common import align_to_teacher, prefixed, resolve_options
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import LossSpec, MethodSpec, S, T


@LOSSES.register_module(name="cwt")
class ChannelWiseTransformLoss(nn.Module):
    """L2 between W2(ReLU(W1 F_S)) (1x1 convs) and F_T."""

    def __init__(self, student_channels: int, teacher_channels: int, hidden_ratio: float = 1.0,
                 reduction: str = "mean", loss_weight: float = 1.0) -> None:
        super().__init__()
        if reduction not in ("mean", "sum_per_sample"):
            raise ValueError(f"reduction must be 'mean' or 'sum_per_sample', got {reduction!r}")
        hidden = max(1, int(round(teacher_channels * hidden_ratio)))
        self.mlp = nn.Sequential(nn.Conv2d(student_channels, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, teacher_channels, 1))
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        x, preds_T = align_to_teacher(self.mlp(preds_S), preds_T)
        sq = (x - preds_T).pow(2)
        loss = sq.mean() if self.reduction == "mean" else sq.sum() / sq.shape[0]
        return self.loss_weight * loss


DEFAULTS: dict[str, Any] = {"weight": 1.0, "hidden_ratio": 1.0, "reduction": "mean"}


@METHODS.register_module(name="cwt")
def cwt(options: dict[str, Any] | None = None) -> MethodSpec:
    """Channel-wise transformation feature distillation on the decode head's feature."""
    o = resolve_options("cwt", options, DEFAULTS)
    return MethodSpec(
        name="cwt",
        losses={"loss_cwt": LossSpec(
            type="cwt", weight=float(o["weight"]),
            inputs={"preds_S": S("head_feature"), "preds_T": T("head_feature")},
            kwargs={"hidden_ratio": o["hidden_ratio"], "reduction": o["reduction"]},
            channels_from="head_feature")},
        needs_gt=False, reimplementation=True,
        unverified=["loss weight for segmentation", "MLP hidden width", "reduction",
                    "attach point (feature before the classifier)"],
        assumptions=prefixed("cwt", {"hidden_ratio": o["hidden_ratio"],
                                     "reduction": o["reduction"], "attach": "head_feature"}),
        paper="Z. Liu, Y. Wang, X. Chu, N. Dong, S. Qi, H. Ling, ICCV Workshops 2023, A simple and "
              "generic framework for feature distillation via channel-wise transformation",
    )
