"""BCD: complementary Boundary and Context Distillation (the method under study).

Paper: "Towards Complementary Knowledge Distillation for Efficient Dense Image Prediction",
arXiv 2401.13174 (later versions call it BCKD). No public code exists: this is the suite's
reconstruction. Every choice the paper leaves open is a config option, recorded in each result
(``MethodSpec.assumptions``) and listed in the README's faithfulness table:

A1 stages/size   backbone stages 1-4, each brought to the size of stage 2 (1/8 of the input),
                 concatenated channel-wise: whole-to-whole (W2W) features F_T, F_S.
A2 teacher side  parameter-free (per-stage per-pixel RMS normalisation, resize); the student side
                 has one trainable 1x1 alignment conv per stage (the context term's "A").
A3 boundary map  for each pixel i and offset d in a half disk of radius r (5 at 1/8 scale, as in
                 AffinityNet): B(i, d) = max over the points p of the discrete line i -> i+d of
                 (1 - cos(f_i, f_p)) -- the largest dissimilarity met on the way (IRNet's path
                 max), soft for gradients; a hard straight-through variant is an option.
A4 L_bd          tau^2 * mean over (N, D) of KL( softmax_HW(B_T/tau) || softmax_HW(B_S/tau) )
                 (the ChannelWiseDivergence form of CWD).
A5 L_cd          R = row-softmax(F F^T / (sqrt(C) tau)) over the HW x HW pixel pairs, matched
                 "item by item": L_cd = tau^2 * mean over the N*HW*HW items of the pointwise KL
                 terms R_T (log R_T - log R_S) (``nn.KLDivLoss``'s "mean"; ``reduction="item"``,
                 the default), or the same summed per row and averaged over the N*HW rows
                 (``reduction="row"``: HW times larger), or MSE over items; computed in row
                 chunks under activation checkpointing, so memory is O(chunk x HW), not O(HW^2).
                 Why "item": the stated principle that each weighted term is of the order of the
                 task loss at initialisation (the paper trains at lambda 10 / 50 without
                 collapse). Measured with a trained teacher (smoke VOC, 3 batches,
                 benchmarks/distill_term_scale.py): 50 * L_cd = 74.7 against a task loss of 3.5
                 with "row" (gradient 304x the task's), 1.17 with "item" (0.34x the task loss).
A6 weights       lambda_1 = 10 (boundary), lambda_2 = 50 (context).
A7 temperature   fixed tau = 1; the adaptive rule (multiply tau by ``tau_factor`` while the range
                 of the teacher's items divided by tau exceeds ``tau_threshold``) is an option;
                 ``tau_factor`` 1.05 as in its source ([74], Phuong & Lampert ICCV19: start at
                 tau = 1, multiply by 1.05); the threshold of BCD's statistic was lost, so the
                 rule stays off until ``tau_threshold`` is set.
A8 weight decay  alpha(t) = 1 - (t - 1) / t_max (DWPose), t the 1-based iteration:
                 L = L_task + alpha(t) (lambda_1 L_bd + lambda_2 L_cd); on by default.

Detection (the paper's Table V, no code or detail given): the same bundle on the detector's
backbone ``stages`` (ResNet C2..C5 at strides 4..32, fused at the size of C3, stride 8): W2W
fusion, boundary term on the fused map, context term; no ground truth, no change to the
detector's neck or heads. The fused map of a detection input (e.g. 1333 x 800 -> 167 x 100)
has about four times the pixels of a 512 x 512 segmentation crop, the context term's pairs
sixteen times (computed in row chunks, O(chunk x HW) memory).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from suite.methods.divergences import spatial_kl  # L_bd's divergence (A4), shared with CWD
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import ConnectorSpec, LossSpec, MethodSpec, S, T, serves

# ----------------------------------------------------------------------------- schedules


def weight_decay_alpha(t: int, t_max: int) -> float:
    """DWPose's time function alpha(t) = 1 - (t - 1) / t_max for the 1-based step t."""
    if t_max < 1 or t < 1:
        raise ValueError(f"need 1 <= t and 1 <= t_max, got t={t}, t_max={t_max}")
    return 1.0 - (t - 1) / t_max


def adaptive_temperature(x: Tensor, tau: float, factor: float | None, threshold: float | None) -> float:
    """Temperature rule: start at ``tau``; multiply by ``factor`` while range(x)/tau > threshold.

    With ``factor`` or ``threshold`` unset the temperature stays fixed.
    """
    if not factor or not threshold:
        return tau
    if factor <= 1.0:
        raise ValueError("tau_factor must be > 1")
    spread = float((x.max() - x.min()).detach())
    while spread / tau > threshold:
        tau *= factor
    return tau


# ----------------------------------------------------------------------------- boundary map


@lru_cache(maxsize=16)
def boundary_offsets(radius: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[list[int]]]:
    """Offsets of the disk, of the half disk used as boundary channels, and their line paths.

    Returns ``(disk, half, paths)``: ``disk`` all (dy, dx) with 0 < dy^2 + dx^2 < radius^2;
    ``half`` those with dy > 0 or (dy == 0 and dx > 0) (each unordered pair once, AffinityNet);
    ``paths[k]`` the indices into ``disk`` of the points of the discrete line from the origin to
    ``half[k]`` (origin excluded, endpoint included), padded with the endpoint to one length.
    """
    disk = [
        (dy, dx)
        for dy in range(-radius + 1, radius)
        for dx in range(-radius + 1, radius)
        if 0 < dy * dy + dx * dx < radius * radius
    ]
    index = {o: k for k, o in enumerate(disk)}
    half = [(dy, dx) for dy, dx in disk if dy > 0 or (dy == 0 and dx > 0)]
    paths = []
    for dy, dx in half:
        steps = max(abs(dy), abs(dx))
        pts = []
        for s in range(1, steps + 1):
            p = (round(dy * s / steps), round(dx * s / steps))
            if p != (0, 0) and p not in pts:
                pts.append(p)
        paths.append([index[p] for p in pts])
    length = max(len(p) for p in paths)
    paths = [p + [p[-1]] * (length - len(p)) for p in paths]
    return disk, half, paths


def pairwise_dissimilarity(f: Tensor, offsets: list[tuple[int, int]], gram_width: int = 32) -> Tensor:
    """1 - cos(f_i, f_{i+o}) for every pixel i and offset o: N x len(offsets) x H x W.

    Neighbours outside the map take the border value (replicate padding). ``offsets`` must be
    grouped by ``dy`` (as :func:`boundary_offsets` returns them). Maps up to ``gram_width``
    wide use one row-Gram matmul per ``dy`` (a few large ops; the per-offset form is dominated
    by per-op overhead there); wider maps use one product per offset, which does not compute
    the W-fold wider Gram rows.
    """
    f = F.normalize(f, dim=1, eps=1e-6)
    n, _, h, w = f.shape
    r = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    fp = F.pad(f, (r, r, r, r), mode="replicate")
    if w > gram_width:
        out = [
            1.0 - (f * fp[:, :, r + dy : r + dy + h, r + dx : r + dx + w]).sum(dim=1)
            for dy, dx in offsets
        ]
        return torch.stack(out, dim=1)
    groups = {dy: [dx for d, dx in offsets if d == dy] for dy, _ in offsets}
    if [(dy, dx) for dy, dxs in groups.items() for dx in dxs] != list(offsets):
        raise ValueError("pairwise_dissimilarity: offsets must be grouped by dy")
    rows = f.permute(0, 2, 3, 1)  # N x H x W x C
    xs = torch.arange(w, device=f.device)
    parts = []
    for dy, dxs in groups.items():
        gram = rows @ fp[:, :, r + dy : r + dy + h, :].permute(0, 2, 1, 3)  # N x H x W x (W + 2r)
        index = xs[:, None] + r + torch.tensor(dxs, device=f.device)[None, :]
        parts.append(torch.gather(gram, 3, index.expand(n, h, w, len(dxs))))
    return 1.0 - torch.cat(parts, dim=3).permute(0, 3, 1, 2)


def boundary_map(f: Tensor, radius: int, hard: bool = False, threshold: float = 0.5) -> Tensor:
    """BCD boundary map B: N x D x H x W, D = number of half-disk offsets (path max, A3)."""
    disk, _, paths = boundary_offsets(radius)
    dis = pairwise_dissimilarity(f, disk)
    idx = torch.tensor(paths, device=f.device)  # D x L
    b = dis[:, idx].amax(dim=2)  # N x D x L x H x W -> N x D x H x W
    if hard:  # the paper's 0/1 boundary decision, straight-through for gradients
        b = (b > threshold).to(b.dtype) + b - b.detach()
    return b


@LOSSES.register_module(name="bcd_boundary")
class BoundaryDistillLoss(nn.Module):
    """L_bd = tau^2 * mean_{N,D} KL(softmax_HW(B_T/tau) || softmax_HW(B_S/tau)), times loss_weight.

    B from :func:`boundary_map` on the fused features (assumptions A3, A4, A7). With
    ``channels`` set, both sides are first compressed by one fixed random projection (a buffer,
    not trained, the same for teacher and student), which approximately preserves cosines.
    """

    def __init__(
        self,
        loss_weight: float = 1.0,
        radius: int = 5,
        hard: bool = False,
        hard_threshold: float = 0.5,
        tau: float = 1.0,
        tau_factor: float | None = None,
        tau_threshold: float | None = None,
        channels: int | None = None,
        teacher_channels: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.loss_weight, self.radius, self.hard = loss_weight, radius, hard
        self.hard_threshold = hard_threshold
        self.tau, self.tau_factor, self.tau_threshold = tau, tau_factor, tau_threshold
        self.last_tau = tau
        if channels is not None:
            if teacher_channels is None:
                raise ValueError("bcd_boundary: channels needs teacher_channels")
            g = torch.Generator().manual_seed(seed)
            proj = torch.randn(channels, teacher_channels, generator=g) / teacher_channels**0.5
            self.register_buffer("projection", proj, persistent=False)
        else:
            self.projection = None

    def _compress(self, f: Tensor) -> Tensor:
        if self.projection is None:
            return f
        return torch.einsum("oc,nchw->nohw", self.projection.to(f.dtype), f)

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:  # noqa: N803
        b_t = boundary_map(self._compress(preds_T.detach()), self.radius, self.hard, self.hard_threshold)
        b_s = boundary_map(self._compress(preds_S), self.radius, self.hard, self.hard_threshold)
        tau = adaptive_temperature(b_t, self.tau, self.tau_factor, self.tau_threshold)
        self.last_tau = tau
        return self.loss_weight * spatial_kl(b_s, b_t.detach(), tau)


# ----------------------------------------------------------------------------- context


def _context_rows(s: Tensor, t: Tensor, start: int, stop: int, scale: float, mode: str) -> Tensor:
    """Summed divergence of rows ``start:stop`` of R_S and R_T (N x L x C inputs)."""
    logits_s = s[:, start:stop] @ s.transpose(1, 2) * scale
    logits_t = t[:, start:stop] @ t.transpose(1, 2) * scale
    if mode == "kl":
        log_s = F.log_softmax(logits_s, dim=-1)
        log_t = F.log_softmax(logits_t, dim=-1)
        return (log_t.exp() * (log_t - log_s)).sum()
    return (F.softmax(logits_s, dim=-1) - F.softmax(logits_t, dim=-1)).pow(2).sum()


def context_divergence(fs: Tensor, ft: Tensor, tau: float = 1.0, mode: str = "kl",
                       chunk: int | None = 1024, reduction: str = "row") -> Tensor:
    """Divergence between the pixel self-relations of ``fs`` and ``ft`` (N x C x H x W).

    R = row-softmax(F F^T / (sqrt(C) tau)). ``kl``: tau^2 * mean over N*HW rows of
    KL(R_T row || R_S row) (``reduction="row"``), or that divided by HW, i.e. the mean over
    all N*HW*HW items of the pointwise KL terms (``reduction="item"``, ``nn.KLDivLoss``'s
    "mean"). ``mse``: mean over the N*HW*HW items of (R_S - R_T)^2.
    ``chunk`` rows at a time under activation checkpointing (None = all rows at once).
    """
    if reduction not in ("row", "item"):
        raise ValueError(f"context reduction must be 'row' or 'item', got {reduction!r}")
    if mode not in ("kl", "mse"):
        raise ValueError(f"context mode must be 'kl' or 'mse', got {mode!r}")
    n, c, h, w = fs.shape
    length = h * w
    s = fs.flatten(2).transpose(1, 2)
    t = ft.detach().flatten(2).transpose(1, 2)
    scale = 1.0 / (c**0.5 * tau)
    step = length if not chunk else min(chunk, length)
    total = fs.new_zeros(())
    for start in range(0, length, step):
        stop = min(start + step, length)
        if chunk and s.requires_grad and step < length:
            part = checkpoint(_context_rows, s, t, start, stop, scale, mode, use_reentrant=False)
        else:
            part = _context_rows(s, t, start, stop, scale, mode)
        total = total + part
    if mode == "kl":
        per_row = total / (n * length) * tau**2
        return per_row if reduction == "row" else per_row / length
    return total / (n * length * length)


@LOSSES.register_module(name="bcd_context")
class ContextDistillLoss(nn.Module):
    """L_cd: pixel self-relation distillation, times loss_weight (assumptions A2, A5, A7).

    R = row-softmax(A(F) A(F)^T / sqrt(C)), A the student's alignment (a connector);
    L_cd = tau^2 * mean over rows KL(R_T || R_S), or MSE over items (``mode="mse"``).
    """

    def __init__(
        self,
        loss_weight: float = 1.0,
        mode: str = "kl",
        chunk: int | None = 1024,
        reduction: str = "item",
        tau: float = 1.0,
        tau_factor: float | None = None,
        tau_threshold: float | None = None,
    ) -> None:
        super().__init__()
        self.loss_weight, self.mode, self.chunk, self.reduction = loss_weight, mode, chunk, reduction
        self.tau, self.tau_factor, self.tau_threshold = tau, tau_factor, tau_threshold
        self.last_tau = tau

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:  # noqa: N803
        tau = adaptive_temperature(preds_T, self.tau, self.tau_factor, self.tau_threshold)
        self.last_tau = tau
        return self.loss_weight * context_divergence(preds_S, preds_T, tau, self.mode, self.chunk,
                                                     self.reduction)


# ----------------------------------------------------------------------------- method

BCD_DEFAULTS: dict[str, Any] = {
    "boundary": True,
    "context": True,
    "weight_decay": True,
    "lambda_bd": 10.0,
    "lambda_cd": 50.0,
    "stages": [0, 1, 2, 3],
    "size_stage": 1,
    "norm": "rms",
    "radius": 5,
    "hard_boundary": False,
    "boundary_channels": None,
    "context_mode": "kl",
    "context_chunk": 1024,
    "context_reduction": "item",
    "tau": 1.0,
    "tau_factor": 1.05,
    "tau_threshold": None,
}


@METHODS.register_module(name="bcd")
@serves("segmentation", "detection")
def bcd(options: dict[str, Any], task: str = "segmentation") -> MethodSpec:
    """BCD's bundle: W2W fusion connectors, L_bd and L_cd on the fused features, alpha(t) (the
    same on a detection table: the detector's backbone stages, module docstring)."""
    unknown = set(options) - set(BCD_DEFAULTS)
    if unknown:
        raise ValueError(f"bcd: unknown options {sorted(unknown)}; valid: {sorted(BCD_DEFAULTS)}")
    o = {**BCD_DEFAULTS, **options}
    if not (o["boundary"] or o["context"]):
        raise ValueError("bcd: at least one of boundary/context must be on")
    fuse = {"stages": list(o["stages"]), "size_stage": o["size_stage"], "norm": o["norm"]}
    connectors = {
        "bcd_student": ConnectorSpec("bcd_align_fuse", ("student", "stages"), ("teacher", "stages"), fuse),
        "bcd_teacher": ConnectorSpec("bcd_fuse", ("teacher", "stages"), None, fuse),
    }
    tau = {"tau": o["tau"], "tau_factor": o["tau_factor"], "tau_threshold": o["tau_threshold"]}
    inputs = {"preds_S": S("stages", "bcd_student"), "preds_T": T("stages", "bcd_teacher")}
    losses = {}
    if o["boundary"]:
        kw = {"radius": o["radius"], "hard": o["hard_boundary"], **tau}
        if o["boundary_channels"]:
            kw["channels"] = o["boundary_channels"]
        losses["loss_bd"] = LossSpec(
            "bcd_boundary", o["lambda_bd"], dict(inputs), kw,
            channels_from="bcd_teacher" if o["boundary_channels"] else None, decays=True,
        )
    if o["context"]:
        losses["loss_cd"] = LossSpec(
            "bcd_context", o["lambda_cd"], dict(inputs),
            {"mode": o["context_mode"], "chunk": o["context_chunk"],
             "reduction": o["context_reduction"], **tau}, decays=True,
        )
    unverified = ["boundary map and path rule", "fusion size/normalisation",
                  "temperature rule numbers", "loss reductions"]
    assumptions = {f"bcd.{k}": v for k, v in o.items()}
    if task == "detection":
        unverified.append("detection: the paper gives no detail; the segmentation bundle on the "
                          "detector's backbone stages (C2..C5, fused at stride 8)")
        assumptions["bcd.task"] = "detection: backbone stages C2..C5, fused at C3's size"
    return MethodSpec(
        name="bcd",
        losses=losses,
        connectors=connectors,
        needs_gt=False,
        reimplementation=True,
        unverified=unverified,
        assumptions=assumptions,
        paper="BCD, arXiv 2401.13174 (Towards Complementary Knowledge Distillation for "
              "Efficient Dense Image Prediction)",
        weight_decay=bool(o["weight_decay"]),
    )
