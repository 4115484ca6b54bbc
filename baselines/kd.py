"""KD — pixel-wise Hinton distillation of the segmentation logits.

Paper: G. Hinton, O. Vinyals, J. Dean, "Distilling the knowledge in a neural network", arXiv 2015;
dense form as re-implemented by CIRKD (``losses/kd.py``) and IFVD (``CriterionKD``).

Formula, for logits z (N x K x h x w) at the decode head's resolution (1/8 for PSPNet-d8)::

    L_kd = w * tau^2 * R_{n,i} KL( softmax(z_T[n,:,i] / tau) || softmax(z_S[n,:,i] / tau) )

Reduction ``R`` (option ``reduction``), stated because it silently rescales the weight:

* ``"pixelmean"`` (default, CIRKD): sum over the K classes, mean over the N*h*w pixels.
* ``"mean"`` (IFVD's ``nn.KLDivLoss()``): mean over all N*K*h*w elements (= pixelmean / K).
* ``"batchmean"`` (MMRazor ``KLDivergence`` on NCHW tensors): sum over K*h*w, divided by N.
* ``"spatialmean"`` (SKD's official ``CriterionPixelWise``): summed over the K classes *and the
  N images*, divided by h*w only -- N times ``"pixelmean"``, so the same weight acts N times
  stronger (N: the per-process batch).
* ``"sum"``: everything summed.

``tau_squared`` (default ``True``, Hinton's and CIRKD's convention) multiplies by ``tau^2``;
IFVD's ``CriterionKD`` (``nn.KLDivLoss()`` on softened logits) has no ``tau^2`` factor, so IFVD
passes ``tau_squared=False`` (identical at its tau = 1).

Defaults: weight 1 (CIRKD), tau 1. IFVD uses weight 10 with ``"mean"`` and no ``tau^2``; SKD
uses weight 10 with ``"spatialmean"``.
Attach point: ``logits`` (student and teacher). Ground truth: not needed.
Re-implementation: no — CIRKD's released code is the reference (``reduction="pixelmean"``).
Teacher logits are detached inside the loss.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from baselines._common import align_to_teacher, prefixed, resolve_options
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import LossSpec, MethodSpec, S, T

REDUCTIONS = ("pixelmean", "mean", "batchmean", "spatialmean", "sum")


@LOSSES.register_module(name="kd")
class PixelKDLoss(nn.Module):
    """Pixel-wise KL divergence between temperature-softened class distributions."""

    def __init__(self, tau: float = 1.0, reduction: str = "pixelmean",
                 tau_squared: bool = True, loss_weight: float = 1.0) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.tau = tau
        self.reduction = reduction
        self.tau_squared = tau_squared
        self.loss_weight = loss_weight

    def _reduce(self, kl: Tensor) -> Tensor:
        """Reduce the ``N x K x h x w`` KL terms as :attr:`reduction` says (module docstring)."""
        if self.reduction == "pixelmean":
            return kl.sum(1).mean()
        if self.reduction == "mean":
            return kl.mean()
        if self.reduction == "batchmean":
            return kl.sum() / kl.shape[0]
        if self.reduction == "spatialmean":
            return kl.sum() / (kl.shape[2] * kl.shape[3])
        return kl.sum()

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        preds_S, preds_T = align_to_teacher(preds_S, preds_T)
        log_p_s = F.log_softmax(preds_S / self.tau, dim=1)
        p_t = F.softmax(preds_T / self.tau, dim=1)
        kl = F.kl_div(log_p_s, p_t, reduction="none")  # N x K x h x w
        scale = self.tau**2 if self.tau_squared else 1.0
        return self.loss_weight * scale * self._reduce(kl)


DEFAULTS: dict[str, Any] = {"weight": 1.0, "tau": 1.0, "reduction": "pixelmean"}


def kd_spec(weight: float, tau: float, reduction: str = "pixelmean",
            tau_squared: bool = True) -> LossSpec:
    """The pixel KD term on the logits (type ``kd``), as KD, SKD, CIRKD, IFVD, SSTKD, SlimSeg and
    BGLSSeg add it (CIRKD's ``"pixelmean"`` reduction and ``tau^2`` unless stated).

    ``tau_squared`` appears in the kwargs only when it is off, so the configs of the methods
    that keep the default are unchanged.
    """
    kwargs: dict[str, Any] = {"tau": tau, "reduction": reduction}
    if not tau_squared:
        kwargs["tau_squared"] = False
    return LossSpec(type="kd", weight=float(weight),
                    inputs={"preds_S": S("logits"), "preds_T": T("logits")}, kwargs=kwargs)


@METHODS.register_module(name="kd")
def kd(options: dict[str, Any] | None = None) -> MethodSpec:
    """Pixel-wise KD on the logits (CIRKD's re-implementation of Hinton KD)."""
    o = resolve_options("kd", options, DEFAULTS)
    return MethodSpec(
        name="kd",
        losses={"loss_kd": kd_spec(o["weight"], o["tau"], o["reduction"])},
        needs_gt=False,
        reimplementation=False,
        unverified=[],
        assumptions=prefixed("kd", {"reduction": o["reduction"]}),
        paper="G. Hinton, O. Vinyals, J. Dean, arXiv 2015, Distilling the knowledge in a neural "
              "network (dense form of CIRKD, CVPR 2022)",
    )
