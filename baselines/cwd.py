"""CWD — channel-wise divergence (an extra baseline, not a row of the paper's tables).

Paper: C. Shu, Y. Liu, J. Gao, Z. Yan, C. Shen, "Channel-wise knowledge distillation for dense
prediction", ICCV 2021. Reference code: MMRazor ``ChannelWiseDivergence`` (``losses/cwd.py``).

Formula: every channel c of an N x C x H x W map is turned into a distribution over its H*W
positions with a spatial softmax at temperature tau, then::

    L_cwd = w * tau^2 / (N*C) * sum_{n,c} KL( softmax_hw(y_T[n,c]/tau) || softmax_hw(y_S[n,c]/tau) )

Reduction: sum over the H*W positions, mean over the N*C channel maps (MMRazor's).
Defaults: weight 5, tau 1 -- MMRazor's config for exactly this pair and framework,
``configs/distill/mmseg/cwd/cwd_logits_pspnet_r101-d8_pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py``
(``ChannelWiseDivergence(tau=1, loss_weight=5)``, the same in every MMRazor release). The other
published pair, weight 3 with tau 4 on logits (the CWD paper; CIRKD's ``train_kd.py`` uses
tau 4), is available through the options ``weight`` and ``tau`` (both values together: weight 3
at tau 1 is neither). Attach point: ``logits``. Ground truth: not needed.
Re-implementation: no (numerically equal to MMRazor's loss; the teacher is detached here).

Not to be confused with CWT (channel-wise *transformation*, :mod:`baselines.cwt`), the BCD
paper's [106].
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from baselines._common import align_to_teacher, prefixed, resolve_options
from suite.methods.divergences import spatial_kl
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import LossSpec, MethodSpec, S, T


@LOSSES.register_module(name="cwd")
class ChannelWiseDivergence(nn.Module):
    """Spatial-softmax KL per channel, ``tau^2`` scaled, mean over N*C."""

    def __init__(self, tau: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.tau = tau
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        preds_S, preds_T = align_to_teacher(preds_S, preds_T)
        return self.loss_weight * spatial_kl(preds_S, preds_T, self.tau)


DEFAULTS: dict[str, Any] = {"weight": 5.0, "tau": 1.0}


@METHODS.register_module(name="cwd")
def cwd(options: dict[str, Any] | None = None) -> MethodSpec:
    """Channel-wise divergence on the logits (MMRazor's ChannelWiseDivergence)."""
    o = resolve_options("cwd", options, DEFAULTS)
    return MethodSpec(
        name="cwd",
        losses={"loss_cwd": LossSpec(
            type="cwd", weight=float(o["weight"]),
            inputs={"preds_S": S("logits"), "preds_T": T("logits")},
            kwargs={"tau": o["tau"]})},
        needs_gt=False,
        reimplementation=False,
        unverified=[],
        assumptions=prefixed("cwd", {
            "defaults": "MMRazor cwd_logits_pspnet_r101-d8_pspnet_r18-d8 (weight 5, tau 1)",
            "weight": o["weight"], "tau": o["tau"]}),
        paper="C. Shu, Y. Liu, J. Gao, Z. Yan, C. Shen, ICCV 2021, Channel-wise knowledge "
              "distillation for dense prediction",
    )
