"""TAT — knowledge distillation via the target-aware transformer (segmentation version).

Paper: S. Lin, H. Xie, B. Wang, K. Yu, X. Chang, X. Liang, G. Wang, "Knowledge distillation
via the target-aware transformer", CVPR 2022. Reference code: sihaoevery/TaT-seg
(``distiller_tat.py``, ``train_voc_resnet18.sh``), read for the formulas below.

With Embed = 1x1 conv (no bias) + BN, all to the teacher's width C_T::

    q = Embed_q(f_S),  k = Embed_k(f_T),  v = Embed_v(f_S)       (Embed_k is trainable too)

Patch-group term ("stack_attn"): the maps are cut into an n x m grid of patches
(ph = H // n, pw = W // m; the remainder is dropped, as ``unfold`` does), the patches are
stacked along channels (patch-major), the n*m*C channels are split into ``heads`` groups
(``b (h d) x y -> b h (x y) d``), and within each group::

    out = softmax_j( q_i . k_j ) v_j            (no 1/sqrt(d) scaling, as upstream)
    L_patch = mean (out - f_T patches)^2        (mean over all elements)

Anchor term: q, k, v and f_T are average-pooled with kernel = stride = (H // a_h, W // a_w)
and one head attends over all anchors: L_anchor = mean (out - pooled f_T)^2.

    L_tat = alpha * (beta * L_patch + gamma * L_anchor)

Reduction: element means per image, averaged over the N images (upstream's ``Distiller`` loops
over the batch -- each image alone through the embeddings -- sums the per-image losses and
``train_with_distillation_tat.py`` divides by the batch size). Option ``per_image_bn``:
``True`` (default, upstream) runs each image alone, so the embeddings' BatchNorm layers
normalise with that image's statistics; ``False`` (a deviation, this suite's earlier behaviour)
runs the batch at once, with batch statistics -- the same mean otherwise.
Small maps: n, m, a_h, a_w are clamped to the map size, and ``heads`` is lowered to the
largest divisor of n*m*C_T not above it.
Defaults (VOC, ResNet-18): alpha 0.1, beta 1, gamma 0.4, 16 x 16 patches, 64 heads, 32 x 32
anchors. Attach point (option ``tap``): ``head_feature_preact`` (default) -- upstream distils
the DeepLabV3+ decoder's last BatchNorm output *before* its ReLU (``Decoder.extract_feature``:
``last_conv[0:6]``); here the decode head's last ConvModule's BatchNorm output (DeepLabV3+
``sep_bottleneck.1.pointwise_conv.bn``, PSPNet ``bottleneck.bn``). ``head_feature`` (after the
ReLU) is the suite's earlier attach point.
Ground truth: no. Re-implementation: no.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from baselines._common import align_to_teacher, prefixed, resolve_options
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import LossSpec, MethodSpec, S, T


def _embed(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))


def _largest_divisor(total: int, at_most: int) -> int:
    return max(d for d in range(1, max(1, at_most) + 1) if total % d == 0)


def _stack_patches(x: Tensor, n: int, m: int) -> Tensor:
    """``B x C x H x W`` -> ``B x (n*m*C) x ph x pw``, patch-major channel order."""
    b, c, h, w = x.shape
    ph, pw = h // n, w // m
    x = x[:, :, :n * ph, :m * pw].reshape(b, c, n, ph, m, pw)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, n * m * c, ph, pw)


def _attend(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
    b, ch, h, w = v.shape
    d = ch // heads
    q, k, v = (t.reshape(b, heads, d, h * w).transpose(2, 3) for t in (q, k, v))
    attn = torch.softmax(q @ k.transpose(2, 3), dim=-1)
    return (attn @ v).transpose(2, 3).reshape(b, ch, h, w)


@LOSSES.register_module(name="tat")
class TargetAwareTransformerLoss(nn.Module):
    """Patch-group + anchor-point target-aware transformer distillation."""

    def __init__(self, student_channels: int, teacher_channels: int, beta: float = 1.0,
                 gamma: float = 0.4, n: int = 16, m: int = 16, heads: int = 64,
                 anchor_h: int = 32, anchor_w: int = 32, per_image_bn: bool = True,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.embed_query = _embed(student_channels, teacher_channels)
        self.embed_key = _embed(teacher_channels, teacher_channels)
        self.embed_value = _embed(student_channels, teacher_channels)
        self.beta, self.gamma = beta, gamma
        self.n, self.m, self.heads = n, m, heads
        self.anchor_h, self.anchor_w = anchor_h, anchor_w
        self.per_image_bn = per_image_bn
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        preds_S, f_t = align_to_teacher(preds_S, preds_T)
        if not self.per_image_bn:
            return self.loss_weight * self._loss(preds_S, f_t)
        losses = [self._loss(preds_S[i:i + 1], f_t[i:i + 1]) for i in range(f_t.shape[0])]
        return self.loss_weight * torch.stack(losses).mean()

    def _loss(self, preds_S: Tensor, f_t: Tensor) -> Tensor:
        """``beta * L_patch + gamma * L_anchor`` of one batch (or one image) of maps."""
        q, k, v = self.embed_query(preds_S), self.embed_key(f_t), self.embed_value(preds_S)
        h, w = f_t.shape[-2:]
        n, m = min(self.n, h), min(self.m, w)
        stacked = [_stack_patches(t, n, m) for t in (q, k, v, f_t)]
        heads = _largest_divisor(stacked[0].shape[1], self.heads)
        out = _attend(*stacked[:3], heads)
        patch = F.mse_loss(out, stacked[3])
        kernel = (max(1, h // min(self.anchor_h, h)), max(1, w // min(self.anchor_w, w)))
        pooled = [F.avg_pool2d(t, kernel, kernel) for t in (q, k, v, f_t)]
        anchor = F.mse_loss(_attend(*pooled[:3], 1), pooled[3])
        return self.beta * patch + self.gamma * anchor


DEFAULTS: dict[str, Any] = {"alpha": 0.1, "beta": 1.0, "gamma": 0.4, "n": 16, "m": 16,
                            "heads": 64, "anchor_h": 32, "anchor_w": 32,
                            "per_image_bn": True, "tap": "head_feature_preact"}
TAPS = ("head_feature_preact", "head_feature")


@METHODS.register_module(name="tat")
def tat(options: dict[str, Any] | None = None) -> MethodSpec:
    """TaT-seg: patch-group and anchor-point target-aware transformer on the head feature."""
    o = resolve_options("tat", options, DEFAULTS)
    if o["tap"] not in TAPS:
        raise ValueError(f"tat: tap must be one of {TAPS}, got {o['tap']!r}")
    unverified = ["PSPNet attach point (upstream distils DeepLabV3+ decoders)"]
    if not o["per_image_bn"]:
        unverified.insert(0, "BatchNorm statistics per batch instead of per image")
    return MethodSpec(
        name="tat",
        losses={"loss_tat": LossSpec(
            type="tat", weight=float(o["alpha"]),
            inputs={"preds_S": S(o["tap"]), "preds_T": T(o["tap"])},
            kwargs={k: o[k] for k in ("beta", "gamma", "n", "m", "heads", "anchor_h",
                                       "anchor_w", "per_image_bn")},
            channels_from=o["tap"])},
        needs_gt=False, reimplementation=False,
        unverified=unverified,
        assumptions=prefixed("tat", {
            "tap": o["tap"] + (" (BatchNorm output before the ReLU, upstream)"
                               if o["tap"] == "head_feature_preact"
                               else " (after the ReLU, not upstream)"),
            "bn_statistics": "per image (upstream)" if o["per_image_bn"]
                             else "per batch (not upstream)"}),
        paper="S. Lin, H. Xie, B. Wang, K. Yu, X. Chang, X. Liang, G. Wang, CVPR 2022, "
              "Knowledge distillation via the target-aware transformer",
    )
