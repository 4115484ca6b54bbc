"""FGKD (FGD) — focal and global knowledge distillation, adapted to segmentation.

Paper: Z. Yang, Z. Li, X. Jiang, Y. Gong, Z. Yuan, D. Zhao, C. Yuan, "Focal and global
knowledge distillation for detectors", CVPR 2022. Reference code: yzd-v/FGD (mmdet 2.x,
``mmdet/distillation/losses/fgd.py``), read for the formulas below.

For a feature F (N x C x H x W; the student is first aligned to the teacher's width by a 1x1
conv when they differ), attention at temperature T from |F|::

    S(F) = H*W * softmax_hw( mean_c |F| / T )          C(F) = C * softmax_c( mean_hw |F| / T )

Focal term with the teacher's attention (A = sqrt(S_T) * sqrt(C_T) broadcast) and masks::

    L_fg = sum (M_fg * A^2 * (F_S - F_T)^2) / N      L_bg = sum (M_bg * A^2 * (F_S - F_T)^2) / N
    L_at = sum |C_S - C_T| / N + sum |S_S - S_T| / N
    L_gl = sum (G_S(F_S) - G_T(F_T))^2 / N             (G: GcBlock, x + ChannelAdd(ContextPool(x)))
    L    = alpha L_fg + beta L_bg + gamma L_at + lambda L_gl

Reduction: sums over C*H*W, divided by N (upstream's ``MSELoss(reduction='sum') / len(...)``).
G_S and G_T are two separately trained GcBlocks (upstream trains both; the teacher's feature is
detached before G_T, so only G_T's own weights learn from it); the last conv of each
channel-add branch starts at zero, the context conv uses Kaiming (fan in) init, as upstream.

Segmentation adaptation (ours): detection boxes become ground-truth class regions. For each
image and each class k present (255 ignored), M_fg = 1 / (pixel count of k) on its pixels if
k is a foreground class (not in ``background_classes``, default (0,) = VOC's background);
M_bg = 1 / (number of background pixels) on the background pixels. Detection's 1/(box area)
weighting becomes 1/(class-region area). Option ``background``: ``"complement"`` (default, as
FGD's ``Mask_bg = (Mask_fg == 0)``: every pixel that is not foreground, ignored (255) pixels
included) or ``"labelled"`` (a deviation, this suite's earlier choice: only pixels labelled
with a background class; ignored pixels are in neither mask).
Defaults: alpha 1e-3, beta 5e-4, gamma 5e-4, lambda 5e-6, T 0.5 (RetinaNet/GFL values; not
verified for segmentation). Attach point: ``head_feature``. Ground truth: yes.
Re-implementation: yes (dense adaptation of detection code). FGD's ``init_student`` (copying
the teacher's neck/head into the student) is not used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from baselines._common import (
    IGNORE_INDEX,
    align_to_teacher,
    prefixed,
    resize_gt,
    resolve_options,
    width_adapter,
)
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import GT_SEG, LossSpec, MethodSpec, S, T

BACKGROUNDS = ("complement", "labelled")


def fg_bg_masks(labels: Tensor, background_classes: Sequence[int],
                ignore_index: int = IGNORE_INDEX,
                background: str = "complement") -> tuple[Tensor, Tensor]:
    """Per-pixel weights ``N x H x W``: 1/area of the pixel's foreground class, 1/#background.

    ``background="complement"``: background = not foreground (FGD); ``"labelled"``: background =
    pixels of ``background_classes`` only (ignored pixels excluded).
    """
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    m_fg = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)
    m_bg = torch.zeros_like(m_fg)
    for n in range(labels.shape[0]):
        lab = labels[n]
        bg = torch.zeros_like(lab, dtype=torch.bool)
        for k in torch.unique(lab).tolist():
            if k == ignore_index:
                continue
            region = lab == k
            if k in background_classes:
                bg |= region
            else:
                m_fg[n][region] = 1.0 / region.sum()
        if background == "complement":
            bg = m_fg[n] == 0
        if bg.any():
            m_bg[n][bg] = 1.0 / bg.sum()
    return m_fg, m_bg


def attention(x: Tensor, temp: float) -> tuple[Tensor, Tensor]:
    """Spatial (N x H x W) and channel (N x C) attention of FGD."""
    n, c, h, w = x.shape
    value = x.abs()
    s = h * w * F.softmax((value.mean(1) / temp).reshape(n, -1), dim=1).reshape(n, h, w)
    ch = c * F.softmax(value.mean((2, 3)) / temp, dim=1)
    return s, ch


class GcBlock(nn.Module):
    """Global context block (Cao et al., GCNet) as used by FGD's global loss."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(channels // 2, 1)
        self.conv_mask = nn.Conv2d(channels, 1, 1)
        self.channel_add = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.LayerNorm([hidden, 1, 1]), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1))
        nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.conv_mask.bias)
        nn.init.zeros_(self.channel_add[-1].weight)
        nn.init.zeros_(self.channel_add[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        weights = F.softmax(self.conv_mask(x).reshape(n, 1, h * w), dim=2)  # N x 1 x HW
        context = (x.reshape(n, c, h * w) @ weights.transpose(1, 2)).reshape(n, c, 1, 1)
        return x + self.channel_add(context)


def fgd_terms(preds_S: Tensor, preds_T: Tensor, m_fg: Tensor, m_bg: Tensor, gc_s: nn.Module,
              gc_t: nn.Module, temp: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """FGD's four terms ``(L_fg, L_bg, L_at, L_gl)`` for one aligned pair of maps.

    ``m_fg``/``m_bg`` are the ``N x H x W`` mask weights; every term is summed over C*H*W and
    divided by N. Shared by the segmentation (:class:`FGDLoss`) and the detection
    (:mod:`baselines.det_fgd`) forms, which differ only in their masks.
    """
    n = preds_S.shape[0]
    s_t, c_t = attention(preds_T, temp)
    s_s, c_s = attention(preds_S, temp)
    weight = s_t[:, None] * c_t[:, :, None, None]  # N x C x H x W
    sq = (preds_S - preds_T).pow(2) * weight
    fg = (sq * m_fg[:, None]).sum() / n
    bg = (sq * m_bg[:, None]).sum() / n
    at = (c_s - c_t).abs().sum() / n + (s_s - s_t).abs().sum() / n
    gl = (gc_s(preds_S) - gc_t(preds_T)).pow(2).sum() / n
    return fg, bg, at, gl


@LOSSES.register_module(name="fgkd")
class FGDLoss(nn.Module):
    """Focal (fg/bg, attention-weighted) + attention + global (GcBlock) feature distillation."""

    def __init__(self, student_channels: int, teacher_channels: int, temp: float = 0.5,
                 alpha: float = 1e-3, beta: float = 5e-4, gamma: float = 5e-4,
                 lambda_: float = 5e-6, background_classes: Sequence[int] = (0,),
                 background: str = "complement", ignore_index: int = IGNORE_INDEX,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.align = width_adapter(student_channels, teacher_channels)
        self.gc_s = GcBlock(teacher_channels)
        self.gc_t = GcBlock(teacher_channels)
        self.temp, self.alpha, self.beta = temp, alpha, beta
        self.gamma, self.lambda_ = gamma, lambda_
        self.background_classes = tuple(background_classes)
        self.background = background
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor, preds_T: Tensor, gt_seg: Tensor) -> Tensor:
        preds_S, preds_T = align_to_teacher(self.align(preds_S), preds_T)
        labels = resize_gt(gt_seg, preds_T.shape[-2:])
        m_fg, m_bg = fg_bg_masks(labels, self.background_classes, self.ignore_index,
                                 self.background)
        fg, bg, at, gl = fgd_terms(preds_S, preds_T, m_fg, m_bg, self.gc_s, self.gc_t, self.temp)
        loss = self.alpha * fg + self.beta * bg + self.gamma * at + self.lambda_ * gl
        return self.loss_weight * loss


DEFAULTS: dict[str, Any] = {
    "weight": 1.0, "temp": 0.5, "alpha": 1e-3, "beta": 5e-4, "gamma": 5e-4, "lambda": 5e-6,
    "background_classes": (0,), "background": "complement",
}


@METHODS.register_module(name="fgkd")
def fgkd(options: dict[str, Any] | None = None) -> MethodSpec:
    """FGD on the decode head's feature with GT class regions as the foreground."""
    o = resolve_options("fgkd", options, DEFAULTS)
    return MethodSpec(
        name="fgkd",
        losses={"loss_fgkd": LossSpec(
            type="fgkd", weight=float(o["weight"]),
            inputs={"preds_S": S("head_feature"), "preds_T": T("head_feature"), "gt_seg": GT_SEG},
            kwargs={"temp": o["temp"], "alpha": o["alpha"], "beta": o["beta"],
                    "gamma": o["gamma"], "lambda_": o["lambda"],
                    "background_classes": tuple(o["background_classes"]),
                    "background": o["background"]},
            channels_from="head_feature")},
        needs_gt=True, reimplementation=True,
        unverified=["alpha/beta/gamma/lambda/T are FGD's detection (RetinaNet/GFL) values",
                    "foreground = GT regions of non-background classes, weighted 1/area"],
        assumptions=prefixed("fgkd", {"foreground": "GT class regions, 1/area",
                                      "background_classes": tuple(o["background_classes"]),
                                      "background": o["background"] + (
                                          " (not foreground, ignored pixels included: FGD)"
                                          if o["background"] == "complement" else
                                          " (background classes only, ignored excluded: "
                                          "not FGD)"),
                                      "attach": "head_feature"}),
        paper="Z. Yang, Z. Li, X. Jiang, Y. Gong, Z. Yuan, D. Zhao, C. Yuan, CVPR 2022, Focal and "
              "global knowledge distillation for detectors",
    )
