"""SSTKD — structural and statistical texture knowledge distillation (re-implementation).

Paper: D. Ji, H. Wang, M. Tao, J. Huang, X.-S. Hua, H. Lu, "Structural and statistical texture
knowledge distillation for semantic segmentation", CVPR 2022. No public code was found.
SSTKD adds two texture terms on low-level backbone features to the pixel-wise and holistic
(adversarial) terms of SKD's framework. Our reading (every operator below is an assumption
where the paper's exact filters and constants are not known to us):

Structural texture (``loss_sstkd_structural``, type ``sstkd_structural``): a parameter-free
contourlet-style decomposition (CDM) of the teacher's C2 feature and of the student's C2 feature
after a trainable 1x1 conv to the teacher's width::

    for level l = 1..L:  low_l = avgpool2(blur5(x_{l-1})),  band_l = x_{l-1} - up(low_l),
                         sub_{l,d} = D_d * band_l  for D_d in 4 oriented 3x3 filters
                         (0, 45, 90, 135 degrees; a 1-level stand-in for the directional
                         filter bank), x_l = low_l
    L_str = mean over the L*4 directional sub-bands and the final low-pass of MSE(S, T)

Statistical texture (``loss_sstkd_statistical``, type ``sstkd_statistical``), parameter-free,
per image, on each network's own C2 feature (so widths may differ)::

    s_i   = cos(f_i, mean_j f_j), smoothed by a 3x3 mean filter ("denoised")
    E_l,i = max(0, 1 - |s_i - q_l| / delta),  q_l = lo + (l + 1/2) delta, delta = (hi - lo) / Q
            (soft quantisation into Q levels between the image's min lo and max hi, detached)
    h     = mean_i E_{.,i} (intensity histogram),  c = cumsum(h) / sum(h) (equalisation curve)
    L_sta = mean_n ( ||h_S - h_T||^2 + ||c_S - c_T||^2 ) / Q

Reductions: L_str mean over elements of each sub-band, then over sub-bands; L_sta as written
(sum over levels / Q, mean over N); KD mean over N*h*w pixels.
Plus the framework's pixel KD (``loss_sstkd_kd``: tau^2 * mean over N*h*w pixels of KL) and,
optionally, SKD's holistic WGAN-GP term (``loss_sstkd_adv``).
Defaults (unverified): kd 10, structural 1, statistical 1, adversarial 0.1 (as SKD), 2 levels,
Q = 8 levels. Attach points: ``low_level`` (C2) of both networks, ``logits``.
Ground truth: no (the BCD paper's table marks SSTKD as using GT edges; the paper as we read it
does not). Re-implementation: yes.

Detection (an adaptation: SSTKD is a segmentation method): the two texture terms on the
backbone's first stage (``stages[0]``, C2 at stride 4, the low-level feature they are defined
on; the losses' ``stage`` picks it from the list tap). The pixel KD and holistic terms act on
segmentation logits and are left out. Options: ``structural_weight``, ``levels``,
``statistical_weight``, ``num_levels``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from baselines._common import align_to_teacher, prefixed, resolve_options, width_adapter
from baselines.kd import kd_spec
from baselines.skd import CRITIC_DEFAULTS, adversarial_spec
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import LossSpec, MethodSpec, S, T, serves

_BLUR = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
_DIRECTIONAL = torch.tensor([
    [[-1, -1, -1], [2, 2, 2], [-1, -1, -1]],      # 0 deg (horizontal lines)
    [[-1, -1, 2], [-1, 2, -1], [2, -1, -1]],      # 45 deg
    [[-1, 2, -1], [-1, 2, -1], [-1, 2, -1]],      # 90 deg
    [[2, -1, -1], [-1, 2, -1], [-1, -1, 2]],      # 135 deg
], dtype=torch.float32) / 6.0


def contourlet_decompose(x: Tensor, levels: int = 2) -> list[Tensor]:
    """Laplacian pyramid + 4 oriented filters per band; last entry is the coarsest low-pass."""
    c = x.shape[1]
    blur = torch.outer(_BLUR, _BLUR).to(x).expand(c, 1, 5, 5)
    dirs = _DIRECTIONAL.to(x)[:, None].repeat(c, 1, 1, 1)  # (4C) x 1 x 3 x 3
    outs, cur = [], x
    for _ in range(levels):
        if min(cur.shape[-2:]) < 2:
            break
        low = F.avg_pool2d(F.conv2d(F.pad(cur, (2, 2, 2, 2), mode="replicate"), blur, groups=c),
                           2, 2, ceil_mode=True)
        band = cur - F.interpolate(low, cur.shape[-2:], mode="bilinear", align_corners=False)
        outs.append(F.conv2d(F.pad(band, (1, 1, 1, 1), mode="replicate"), dirs, groups=c))
        cur = low
    outs.append(cur)
    return outs


def _pick(x: Any, stage: int | None) -> Any:
    """``x[stage]`` of a per-stage list (a detector's ``stages`` tap), or ``x`` itself."""
    return x[stage] if stage is not None and isinstance(x, (list, tuple)) else x


@LOSSES.register_module(name="sstkd_structural")
class StructuralTextureLoss(nn.Module):
    """MSE between contourlet-style decompositions of aligned student and teacher C2."""

    def __init__(self, student_channels: int | list[int], teacher_channels: int | list[int],
                 levels: int = 2, loss_weight: float = 1.0, stage: int | None = None) -> None:
        super().__init__()
        self.stage = stage
        self.align = width_adapter(_pick(student_channels, stage), _pick(teacher_channels, stage))
        self.levels = levels
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor | list[Tensor], preds_T: Tensor | list[Tensor]) -> Tensor:
        """C2 of each side, or (``stage`` set) the list of stages it is picked from."""
        preds_S, preds_T = _pick(preds_S, self.stage), _pick(preds_T, self.stage)
        s, preds_T = align_to_teacher(self.align(preds_S), preds_T)
        bands_s = contourlet_decompose(s, self.levels)
        bands_t = contourlet_decompose(preds_T, self.levels)
        loss = torch.stack([F.mse_loss(a, b) for a, b in zip(bands_s, bands_t)]).mean()
        return self.loss_weight * loss


def intensity_statistics(feat: Tensor, num_levels: int = 8) -> tuple[Tensor, Tensor]:
    """Soft intensity histogram ``N x Q`` of the denoised cosine-to-mean map, and its CDF."""
    g = feat.mean((2, 3), keepdim=True)
    s = F.cosine_similarity(feat, g.expand_as(feat), dim=1, eps=1e-8)  # N x H x W
    s = F.avg_pool2d(s[:, None], 3, 1, 1, count_include_pad=False)[:, 0]
    flat = s.flatten(1)
    lo = flat.min(1, keepdim=True).values.detach()
    hi = flat.max(1, keepdim=True).values.detach()
    delta = ((hi - lo) / num_levels).clamp(min=1e-6)
    centres = lo + (torch.arange(num_levels, device=feat.device, dtype=feat.dtype) + 0.5) * delta
    e = F.relu(1 - (flat[:, None, :] - centres[:, :, None]).abs() / delta[:, :, None])
    hist = e.mean(2)
    cdf = hist.cumsum(1) / hist.sum(1, keepdim=True).clamp(min=1e-6)
    return hist, cdf


@LOSSES.register_module(name="sstkd_statistical")
class StatisticalTextureLoss(nn.Module):
    """Squared distance between the student's and teacher's intensity histograms and CDFs."""

    def __init__(self, num_levels: int = 8, loss_weight: float = 1.0,
                 stage: int | None = None) -> None:
        super().__init__()
        self.num_levels = num_levels
        self.loss_weight = loss_weight
        self.stage = stage

    def forward(self, preds_S: Tensor | list[Tensor], preds_T: Tensor | list[Tensor]) -> Tensor:
        preds_S, preds_T = _pick(preds_S, self.stage), _pick(preds_T, self.stage)
        h_s, c_s = intensity_statistics(preds_S, self.num_levels)
        h_t, c_t = intensity_statistics(preds_T.detach(), self.num_levels)
        per_image = ((h_s - h_t).pow(2).sum(1) + (c_s - c_t).pow(2).sum(1)) / self.num_levels
        return self.loss_weight * per_image.mean()


DEFAULTS: dict[str, Any] = {
    "kd_weight": 10.0, "tau": 1.0, "structural_weight": 1.0, "levels": 2,
    "statistical_weight": 1.0, "num_levels": 8,
    "adv_weight": 0.1, **CRITIC_DEFAULTS,
}


DETECTION_DEFAULTS: dict[str, Any] = {
    "structural_weight": 1.0, "levels": 2, "statistical_weight": 1.0, "num_levels": 8,
}


def _texture_losses(o: dict[str, Any], tap: str, stage: int | None) -> dict[str, LossSpec]:
    """The structural and statistical terms on ``tap`` (its ``stage`` when it is a list)."""
    at = {} if stage is None else {"stage": stage}
    return {
        "loss_sstkd_structural": LossSpec(
            type="sstkd_structural", weight=float(o["structural_weight"]),
            inputs={"preds_S": S(tap), "preds_T": T(tap)},
            kwargs={"levels": o["levels"], **at}, channels_from=tap),
        "loss_sstkd_statistical": LossSpec(
            type="sstkd_statistical", weight=float(o["statistical_weight"]),
            inputs={"preds_S": S(tap), "preds_T": T(tap)},
            kwargs={"num_levels": o["num_levels"], **at}),
    }


def _detection(options: dict[str, Any] | None) -> MethodSpec:
    """The texture terms on a detector's C2 (module docstring)."""
    o = resolve_options("sstkd", options, DETECTION_DEFAULTS)
    return MethodSpec(
        name="sstkd", losses=_texture_losses(o, "stages", 0), needs_gt=False,
        reimplementation=True,
        unverified=["detection adaptation of a segmentation method: texture terms on the "
                    "backbone's C2, pixel KD and holistic terms left out",
                    "contourlet filters (blur, 4 oriented 3x3 filters, 2 levels)",
                    "statistical texture descriptor", "all weights"],
        assumptions=prefixed("sstkd", {"task": "detection", "attach": "stages[0] (C2, stride 4)",
                                       "cdm": "Laplacian pyramid + 4 oriented 3x3 filters",
                                       "dtiem": "soft histogram + CDF, Q levels",
                                       "levels": o["levels"], "num_levels": o["num_levels"],
                                       "dropped": "pixel KD and holistic terms (no logits)"}),
        paper="D. Ji, H. Wang, M. Tao, J. Huang, X.-S. Hua, H. Lu, CVPR 2022, Structural and "
              "statistical texture knowledge distillation for semantic segmentation",
    )


@METHODS.register_module(name="sstkd")
@serves("segmentation", "detection")
def sstkd(options: dict[str, Any] | None = None, task: str = "segmentation") -> MethodSpec:
    """Structural + statistical texture terms on C2, with SKD's pixel and holistic terms; on a
    detection table the texture terms alone, on the backbone's C2."""
    if task == "detection":
        return _detection(options)
    o = resolve_options("sstkd", options, DEFAULTS)
    losses = {"loss_sstkd_kd": kd_spec(o["kd_weight"], o["tau"]),
              **_texture_losses(o, "low_level", None)}
    if o["adv_weight"]:
        losses["loss_sstkd_adv"] = adversarial_spec(o)
    return MethodSpec(
        name="sstkd", losses=losses, needs_gt=False, reimplementation=True,
        unverified=["contourlet filters (blur, 4 oriented 3x3 filters, 2 levels)",
                    "statistical texture descriptor (soft histogram + CDF of the cosine-to-mean "
                    "map, 3x3 denoising)", "all weights", "no GT use (the table says E)"],
        assumptions=prefixed("sstkd", {"cdm": "Laplacian pyramid + 4 oriented 3x3 filters",
                                       "dtiem": "soft histogram + CDF, Q levels",
                                       "levels": o["levels"], "num_levels": o["num_levels"]}),
        paper="D. Ji, H. Wang, M. Tao, J. Huang, X.-S. Hua, H. Lu, CVPR 2022, Structural and "
              "statistical texture knowledge distillation for semantic segmentation",
    )
