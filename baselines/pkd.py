"""PKD — Pearson-correlation feature imitation on the FPN levels (detection).

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
Defaults: weight 1. MMRazor's detection configs (``configs/distill/mmdet/pkd/``) apply it to the
first four FPN outputs (``data_idx`` 0-3 of the neck, one loss per level, levels summed) with
weight 10 (RetinaNet) or 6 (Faster R-CNN): ``levels=(0, 1, 2, 3)`` with a list of FPN maps
(attach point ``fpn``) and ``loss_weight`` 10 or 6 reproduce them. ``levels=None`` (default)
uses every pair given. Ground truth: no.
Re-implementation: no.

Method ``pkd`` (detection): ``loss_pkd`` on ``fpn`` levels 0-3 (P3..P6 for GFL and RetinaNet,
P2..P5 for Cascade Mask R-CNN), as MMRazor's configs; weight 10 (its one-stage RetinaNet/FCOS
configs, used for GFL too: MMRazor has no GFL config) or, with option ``two_stage``, 6 (its
Faster R-CNN config, for Cascade Mask R-CNN). ``weight`` overrides it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from baselines._common import as_list, prefixed, resolve_options
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import LossSpec, MethodSpec, S, T, serves


def _channel_standardise(x: Tensor) -> Tensor:
    c = x.shape[1]
    flat = x.transpose(0, 1).reshape(c, -1)
    flat = (flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-6)
    return flat.reshape(c, x.shape[0], *x.shape[2:]).transpose(0, 1)


@LOSSES.register_module(name="pkd")
class PKDLoss(nn.Module):
    """0.5 * MSE between per-channel standardised maps (MMRazor ``PKDLoss`` semantics)."""

    def __init__(self, loss_weight: float = 1.0, resize_stu: bool = True,
                 levels: Sequence[int] | None = None) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.resize_stu = resize_stu
        self.levels = None if levels is None else tuple(int(i) for i in levels)

    def _pairs(self, preds_S: Tensor | Sequence[Tensor],
               preds_T: Tensor | Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
        pairs = list(zip(as_list(preds_S), as_list(preds_T)))
        return pairs if self.levels is None else [pairs[i] for i in self.levels]

    def forward(self, preds_S: Tensor | Sequence[Tensor],
                preds_T: Tensor | Sequence[Tensor]) -> Tensor:
        total = torch.zeros((), device=as_list(preds_S)[0].device)
        for s, t in self._pairs(preds_S, preds_T):
            t = t.detach()
            if s.shape[-2:] != t.shape[-2:]:
                if self.resize_stu:
                    s = F.interpolate(s, t.shape[-2:], mode="bilinear")
                else:
                    t = F.interpolate(t, s.shape[-2:], mode="bilinear")
            total = total + F.mse_loss(_channel_standardise(s), _channel_standardise(t)) / 2
        return self.loss_weight * total


PKD_DEFAULTS: dict[str, Any] = {"two_stage": False, "weight": None, "levels": [0, 1, 2, 3],
                                "resize_stu": True}
WEIGHTS = {False: 10.0, True: 6.0}  # MMRazor: pkd_fpn_retina_* / pkd_fpn_faster-rcnn_*


@METHODS.register_module(name="pkd")
@serves("detection")
def pkd(options: dict[str, Any] | None = None) -> MethodSpec:
    """PKD on the first four FPN levels, MMRazor's one- or two-stage weight (``two_stage``)."""
    o = resolve_options("pkd", options, PKD_DEFAULTS)
    weight = float(WEIGHTS[bool(o["two_stage"])] if o["weight"] is None else o["weight"])
    return MethodSpec(
        name="pkd",
        losses={"loss_pkd": LossSpec(
            type="pkd", weight=weight, inputs={"preds_S": S("fpn"), "preds_T": T("fpn")},
            kwargs={"levels": [int(i) for i in o["levels"]], "resize_stu": o["resize_stu"]})},
        needs_gt=False, reimplementation=False,
        unverified=["weight 10 for GFL: MMRazor has PKD configs for RetinaNet, FCOS, Faster "
                    "R-CNN and RepPoints, none for GFL"],
        assumptions=prefixed("pkd", {
            "task": "detection", "weight": weight, "levels": list(o["levels"]),
            "setting": "two-stage (Faster R-CNN config)" if o["two_stage"] else
                       "one-stage (RetinaNet config)"}),
        paper="W. Cao, Y. Zhang, J. Gao, A. Cheng, K. Cheng, J. Cheng, NeurIPS 2022, PKD: General "
              "distillation framework for object detectors via Pearson correlation coefficient",
    )
