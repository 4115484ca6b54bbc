"""Softmax KL divergences shared by BCD (:mod:`suite.methods.bcd`) and the competing methods.

Every function takes logits (student first, teacher second) and returns
``KL(softmax(teacher) || softmax(student))``: the teacher's distribution is the target. Nothing
is detached here; callers decide which side carries a gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor


def _kl_terms(logits_S: Tensor, logits_T: Tensor, dim: int) -> Tensor:
    """Elementwise ``p_T (log p_T - log p_S)``, ``p = softmax(logits, dim)`` (not yet summed)."""
    log_p_t = F.log_softmax(logits_T, dim=dim)
    return log_p_t.exp() * (log_p_t - F.log_softmax(logits_S, dim=dim))


def softmax_kl(logits_S: Tensor, logits_T: Tensor, dim: int) -> Tensor:
    """``KL(softmax(logits_T) || softmax(logits_S))`` along ``dim``; ``dim`` is summed away."""
    return _kl_terms(logits_S, logits_T, dim).sum(dim)


def pixel_kl(preds_S: Tensor, preds_T: Tensor, tau: float) -> Tensor:
    """``N x H x W`` map of ``tau^2 * KL(softmax(z_T/tau) || softmax(z_S/tau))`` over channels."""
    return softmax_kl(preds_S / tau, preds_T / tau, 1) * tau**2


def _spatial_kl(preds_S: Tensor, preds_T: Tensor, tau: float, mask: Tensor | None) -> Tensor:
    """``N x C`` of ``KL(softmax_HW(t/tau) || softmax_HW(s/tau))``, without the ``tau^2``."""
    n, c = preds_S.shape[:2]
    s = preds_S.reshape(n, c, -1) / tau
    t = preds_T.reshape(n, c, -1) / tau
    if mask is None:
        return softmax_kl(s, t, 2)
    keep = mask.reshape(n, 1, -1)
    neg = torch.finfo(s.dtype).min / 4
    s = s.masked_fill(~keep, neg)
    t = t.masked_fill(~keep, neg)
    return (_kl_terms(s, t, 2) * keep).sum(2)


def spatial_kl_map(preds_S: Tensor, preds_T: Tensor, tau: float,
                   mask: Tensor | None = None) -> Tensor:
    """``N x C`` of ``tau^2 * KL`` between spatial softmaxes (over H*W) of each channel (CWD).

    ``mask`` (``N x H x W`` bool) restricts the softmax support to the masked pixels.
    """
    return _spatial_kl(preds_S, preds_T, tau, mask) * tau**2


def spatial_kl(s: Tensor, t: Tensor, tau: float) -> Tensor:
    """tau^2 * mean over (N, C) of KL(softmax_HW(t/tau) || softmax_HW(s/tau)).

    The channel-wise divergence of CWD (Shu et al., ICCV 2021) and BCD's boundary term A4.
    """
    return _spatial_kl(s, t, tau, None).mean() * tau**2
