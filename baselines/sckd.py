"""SCKD — student customized knowledge distillation (re-implementation).

Paper: Y. Zhu, Y. Wang, "Student customized knowledge distillation: bridging the gap between
student and teacher", ICCV 2021. No public code was found. The paper treats distillation as
multi-task learning and lets the teacher transfer knowledge only when the student benefits,
judged by the similarity between the gradients of the task loss and of the distillation loss.

Our reading, per pixel on the logits (everything below the ``|`` is an assumption):

    g_task = p_S - onehot(y)                     (d CE / d z_S at temperature 1)
    g_kd   = tau * (p_S^tau - p_T^tau)            (d [tau^2 KL(p_T^tau || p_S^tau)] / d z_S)
    m_i    = 1[cos(g_task_i, g_kd_i) >= 0]       | hard gate, no gradient through it
             (``mode="soft"``: m_i = max(cos, 0))
    L      = w * tau^2 * mean_{n,i} m_i * KL(p_T^tau[n,:,i] || p_S^tau[n,:,i])

Reduction: mean over all N*h*w pixels (gated-out pixels contribute 0, so the loss shrinks as
the gate closes). Pixels labelled 255 have no task gradient; they keep the KD term
(``gate_ignored=False``). The GT is resized to the logits by nearest neighbour.
| Gating at the pixel/logit level (instead of the network parameters' gradients) keeps the
| cost at one extra softmax and fits the loss-only interface.
Defaults: weight 1, tau 1 (as our pixel KD). Attach point: ``logits``. Ground truth: yes (the
task gradient). Re-implementation: yes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from baselines._common import IGNORE_INDEX, align_to_teacher, prefixed, resize_gt, resolve_options
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import GT_SEG, LossSpec, MethodSpec, S, T


@LOSSES.register_module(name="sckd")
class StudentCustomizedKDLoss(nn.Module):
    """Pixel KD kept only where its logit gradient agrees with the cross-entropy gradient."""

    def __init__(self, tau: float = 1.0, mode: str = "hard", gate_ignored: bool = False,
                 ignore_index: int = IGNORE_INDEX, loss_weight: float = 1.0) -> None:
        super().__init__()
        if mode not in ("hard", "soft"):
            raise ValueError(f"mode must be 'hard' or 'soft', got {mode!r}")
        self.tau, self.mode, self.gate_ignored = tau, mode, gate_ignored
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor, preds_T: Tensor, gt_seg: Tensor) -> Tensor:
        preds_S, preds_T = align_to_teacher(preds_S, preds_T)
        tau = self.tau
        log_p_s = F.log_softmax(preds_S / tau, dim=1)
        log_p_t = F.log_softmax(preds_T / tau, dim=1)
        kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(1) * tau**2  # N x h x w
        with torch.no_grad():
            labels = resize_gt(gt_seg, preds_S.shape[-2:])
            valid = labels != self.ignore_index
            onehot = F.one_hot(labels.clamp(max=preds_S.shape[1] - 1) * valid,
                               preds_S.shape[1]).permute(0, 3, 1, 2).to(preds_S.dtype)
            g_task = F.softmax(preds_S, dim=1) - onehot
            g_kd = tau * (log_p_s.exp() - log_p_t.exp())
            cos = F.cosine_similarity(g_task, g_kd, dim=1, eps=1e-12)
            gate = (cos >= 0).to(kl.dtype) if self.mode == "hard" else cos.clamp(min=0)
            if not self.gate_ignored:
                gate = torch.where(valid, gate, torch.ones_like(gate))
        return self.loss_weight * (gate * kl).mean()


DEFAULTS: dict[str, Any] = {"weight": 1.0, "tau": 1.0, "mode": "hard", "gate_ignored": False}


@METHODS.register_module(name="sckd")
def sckd(options: dict[str, Any] | None = None) -> MethodSpec:
    """Gradient-similarity-gated pixel KD (our reading of SCKD)."""
    o = resolve_options("sckd", options, DEFAULTS)
    return MethodSpec(
        name="sckd",
        losses={"loss_sckd": LossSpec(
            type="sckd", weight=float(o["weight"]),
            inputs={"preds_S": S("logits"), "preds_T": T("logits"), "gt_seg": GT_SEG},
            kwargs={"tau": o["tau"], "mode": o["mode"], "gate_ignored": o["gate_ignored"]})},
        needs_gt=True, reimplementation=True,
        unverified=["the whole formulation (no code): gate granularity, hard vs soft gate",
                    "weight and temperature"],
        assumptions=prefixed("sckd", {"gate": f"per-pixel logit-gradient cosine ({o['mode']})",
                                      "gate_ignored": o["gate_ignored"]}),
        paper="Y. Zhu, Y. Wang, ICCV 2021, Student customized knowledge distillation: bridging "
              "the gap between student and teacher",
    )
