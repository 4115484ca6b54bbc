"""PKD — Pearson-correlation feature imitation (loss only; the detection method comes later).

Paper: W. Cao, Y. Zhang, J. Gao, A. Cheng, K. Cheng, J. Cheng, "PKD: General distillation
framework for object detectors via Pearson correlation coefficient", NeurIPS 2022.
Reference code: MMRazor ``PKDLoss`` (``losses/pkd_loss.py``).

Formula, for each pair of feature maps (lists are summed)::

    norm(F)[n,c,h,w] = (F[n,c,h,w] - mean_c) / (std_c + 1e-6)      (per channel over N, H, W;
                                                                      unbiased std, as MMRazor)
    L_pkd = w * sum_levels 0.5 * mean_{n,c,h,w} (norm(F_S) - norm(F_T))^2   ( = 1 - Pearson r )

Reduction: mean over N*C*H*W per level, summed over levels. If the spatial sizes differ the
student map is bilinearly resized to the teacher's (``resize_stu=True``) or the reverse.
Channels must match (put a connector before it otherwise).
Defaults: weight 1 (RetinaNet uses 10, Faster R-CNN 6 on FPN outputs). Ground truth: no.
Re-implementation: no. Only the loss is registered now (``"pkd"``); the detection method
(FPN taps) is a later issue.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from baselines._common import as_list
from suite.methods.registry import LOSSES


def _channel_standardise(x: Tensor) -> Tensor:
    c = x.shape[1]
    flat = x.transpose(0, 1).reshape(c, -1)
    flat = (flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-6)
    return flat.reshape(c, x.shape[0], *x.shape[2:]).transpose(0, 1)


@LOSSES.register_module(name="pkd")
class PKDLoss(nn.Module):
    """0.5 * MSE between per-channel standardised maps (MMRazor ``PKDLoss`` semantics)."""

    def __init__(self, loss_weight: float = 1.0, resize_stu: bool = True) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.resize_stu = resize_stu

    def forward(self, preds_S: Tensor | Sequence[Tensor],
                preds_T: Tensor | Sequence[Tensor]) -> Tensor:
        total = torch.zeros((), device=as_list(preds_S)[0].device)
        for s, t in zip(as_list(preds_S), as_list(preds_T)):
            t = t.detach()
            if s.shape[-2:] != t.shape[-2:]:
                if self.resize_stu:
                    s = F.interpolate(s, t.shape[-2:], mode="bilinear")
                else:
                    t = F.interpolate(t, s.shape[-2:], mode="bilinear")
            total = total + F.mse_loss(_channel_standardise(s), _channel_standardise(t)) / 2
        return self.loss_weight * total
