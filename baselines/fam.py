"""FAM — frequency attention for knowledge distillation, dense adaptation (multi-stage).

Paper: C. Pham, V.-A. Nguyen, T. Le, D. Phung, G. Carneiro, T.-T. Do, "Frequency attention for
knowledge distillation", WACV 2024. Reference code: cuong-pv/FAM-KD (``distillers/FAM_KD.py``,
classification; read for the module below).

Per backbone stage s, the student feature x goes through a frequency attention module and is
regressed onto the teacher's stage feature::

    X      = FFT2(P x)  (orthonormal)            P: 1x1 conv student width -> teacher width
    Y      = W_f (.) X, then the centred low-frequency block (half-size int(cuton*H/2) x
             int(cuton*W/2) around DC, cuton 0.1) is zeroed    (learnable high-pass filter)
    g(x)   = r1 * Re(IFFT2(Y)) + r2 * (W0 x + b0)       (global + local branch; r1 = r2 = 0.5 init)
    y_s    = ReLU(BN(g(x)))
    L_fam  = w * sum_s mean (y_s - f^T_s)^2                   (mean over N*C*H*W per stage)

Upstream's spectral weight is a full complex tensor in_ch x out_ch x H x W per stage; for
segmentation backbones (512 -> 2048 channels at 64 x 64) that is tens of GB, so it is factorised
here (assumption): channel mixing P (a 1x1 conv, which commutes with the FFT) times a per-channel
complex filter W_f of size C_T x F x F (F = ``freq_size``, default 16) stored over the centred
frequency grid and bilinearly resized to the actual grid. Upstream also fuses stages with
attention-based ReviewKD-style residual paths and ramps the weight up over a warm-up epoch;
both are left out (stages are distilled independently, constant weight).
Reduction: mean over N*C*H*W per stage, summed over the stages. If student and teacher stage
sizes differ, upstream (``CROSSATF.forward``) upsamples the student feature with nearest
neighbour to the output size *before* the FAM module, so the filter works on the teacher's
grid; option ``resize``: ``"input_nearest"`` (default, upstream) or ``"output_bilinear"`` (a
deviation, this suite's earlier order: FAM on the student's grid, its output resized
bilinearly). Equal sizes (the -d8 pairs here) make both the same.
Defaults: weight 1 (upstream FAMKD_WEIGHT), all four stages, cuton 0.1.
Attach point: ``stages`` (ResNet C2..C5). Ground truth: no. Re-implementation: yes (the
method's code is for classification; factorised filter and independent stages are ours).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from baselines._common import align_to_teacher, as_int_list, as_list, prefixed, resolve_options
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import LossSpec, MethodSpec, S, T

RESIZE_MODES = ("input_nearest", "output_bilinear")


class FrequencyAttention(nn.Module):
    """Global (learnable high-pass spectral filter) + local (1x1 conv) branches, then BN-ReLU."""

    def __init__(self, in_channels: int, out_channels: int, freq_size: int = 16,
                 cuton: float = 0.1) -> None:
        super().__init__()
        self.mix = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        scale = 1.0 / (in_channels * out_channels)
        self.weight = nn.Parameter(scale * torch.rand(2, out_channels, freq_size, freq_size))
        self.local = nn.Conv2d(in_channels, out_channels, 1)
        self.rate1 = nn.Parameter(torch.full((1,), 0.5))
        self.rate2 = nn.Parameter(torch.full((1,), 0.5))
        self.cuton = cuton
        self.post = nn.Sequential(nn.BatchNorm2d(out_channels), nn.ReLU())

    def spectral(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        spec = torch.fft.fftshift(torch.fft.fft2(self.mix(x), norm="ortho"), dim=(-2, -1))
        filt = F.interpolate(self.weight, size=(h, w), mode="bilinear", align_corners=True)
        spec = spec * torch.complex(filt[0], filt[1])
        cy, cx = h // 2, w // 2
        rh, rw = int(self.cuton * cy), int(self.cuton * cx)
        if rh > 0 and rw > 0:
            keep = torch.ones(h, w, device=x.device, dtype=filt.dtype)
            keep[cy - rh:cy + rh, cx - rw:cx + rw] = 0
            spec = spec * keep
        spec = torch.fft.ifftshift(spec, dim=(-2, -1))
        return torch.fft.ifft2(spec, s=(h, w), norm="ortho").real

    def forward(self, x: Tensor) -> Tensor:
        return self.post(self.rate1 * self.spectral(x) + self.rate2 * self.local(x))


@LOSSES.register_module(name="fam")
class FAMLoss(nn.Module):
    """Sum over stages of the MSE between FAM(student stage) and the teacher stage."""

    def __init__(self, student_channels: int | Sequence[int],
                 teacher_channels: int | Sequence[int], freq_size: int = 16,
                 cuton: float = 0.1, resize: str = "input_nearest",
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
        self.resize = resize
        s_ch = as_int_list(student_channels)
        t_ch = as_int_list(teacher_channels, len(s_ch))
        if len(s_ch) == 1 and len(t_ch) > 1:
            s_ch = s_ch * len(t_ch)
        if len(s_ch) != len(t_ch):
            raise ValueError(f"stage count differs: student {s_ch}, teacher {t_ch}")
        self.fams = nn.ModuleList(
            FrequencyAttention(a, b, freq_size, cuton) for a, b in zip(s_ch, t_ch))
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor | Sequence[Tensor],
                preds_T: Tensor | Sequence[Tensor]) -> Tensor:
        feats_s, feats_t = as_list(preds_S), as_list(preds_T)
        if not len(feats_s) == len(feats_t) == len(self.fams):
            raise ValueError(f"expected {len(self.fams)} stages, got {len(feats_s)} student and "
                             f"{len(feats_t)} teacher maps")
        total = feats_s[0].new_zeros(())
        for fam, s, t in zip(self.fams, feats_s, feats_t):
            total = total + self._stage_loss(fam, s, t)
        return self.loss_weight * total

    def _stage_loss(self, fam: FrequencyAttention, s: Tensor, t: Tensor) -> Tensor:
        """MSE of one stage; the student resized before (nearest) or after (bilinear) FAM."""
        if self.resize == "input_nearest" and tuple(s.shape[-2:]) != tuple(t.shape[-2:]):
            s = F.interpolate(s, size=tuple(t.shape[-2:]), mode="nearest")
        return F.mse_loss(*align_to_teacher(fam(s), t))


DEFAULTS: dict[str, Any] = {"weight": 1.0, "freq_size": 16, "cuton": 0.1,
                            "resize": "input_nearest"}


@METHODS.register_module(name="fam")
def fam(options: dict[str, Any] | None = None) -> MethodSpec:
    """Frequency-attention feature distillation on the four backbone stages."""
    o = resolve_options("fam", options, DEFAULTS)
    return MethodSpec(
        name="fam",
        losses={"loss_fam": LossSpec(
            type="fam", weight=float(o["weight"]),
            inputs={"preds_S": S("stages"), "preds_T": T("stages")},
            kwargs={"freq_size": o["freq_size"], "cuton": o["cuton"], "resize": o["resize"]},
            channels_from="stages")},
        needs_gt=False, reimplementation=True,
        unverified=["weight for segmentation", "factorised spectral filter (channel mix x "
                    "per-channel F x F filter)", "no cross-stage fusion, no warm-up"],
        assumptions=prefixed("fam", {"spectral_weight": f"factorised, {o['freq_size']}^2 grid",
                                     "stages": "C2..C5 independently",
                                     "resize": o["resize"] + (
                                         " (student upsampled before FAM, upstream)"
                                         if o["resize"] == "input_nearest"
                                         else " (FAM output resized, not upstream)")}),
        paper="C. Pham, V.-A. Nguyen, T. Le, D. Phung, G. Carneiro, T.-T. Do, WACV 2024, "
              "Frequency attention for knowledge distillation",
    )
