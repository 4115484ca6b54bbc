"""Test helpers: student/teacher tap tensors shaped like the suite's tiny models, a loss
builder that fills channel counts the way ``suite.distill.model.DistillationModel`` does, and
the small random inputs and elementary reference formulas the loss-value tests share.

Shapes (64 x 64 input, small widths): PSPNet-R18-d8 -> logits N x 21 x 8 x 8, head feature
N x 32 x 8 x 8; DeepLabV3+-R18 -> logits N x 21 x 8 x 8 (before the final upsampling the
decoder runs at 1/4: 16 x 16, so both resolutions are exercised), head feature N x 32 x 16 x 16
(``head_feature_preact`` has the head feature's shape and negative values: before the ReLU).
Teachers are twice as wide (head 64, stages 32/64/128/256 vs 16/32/64/128).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from suite.methods.registry import LOSSES
from suite.methods.spec import LossSpec

NUM_CLASSES = 21
STAGE_SIZES = (16, 8, 8, 8)  # ResNet-d8 at a 64 x 64 input


def make_taps(arch: str, side: str, n: int = 2, seed: int = 0) -> dict[str, Any]:
    """Leaf tensors (``requires_grad=True``) for every segmentation tap of one network."""
    g = torch.Generator().manual_seed(seed + (0 if side == "student" else 1000))
    wide = 1 if side == "student" else 2
    head_hw = 8 if arch == "pspnet" else 16
    logit_hw = 8 if arch == "pspnet" else 16

    def leaf(*shape: int, relu: bool = False) -> Tensor:
        x = torch.randn(*shape, generator=g)
        return (x.relu() if relu else x).requires_grad_(True)

    stages = [leaf(n, c * wide, s, s, relu=True) for c, s in zip((16, 32, 64, 128), STAGE_SIZES)]
    return {
        "logits": leaf(n, NUM_CLASSES, logit_hw, logit_hw),
        "head_feature": leaf(n, 32 * wide, head_hw, head_hw, relu=True),
        "head_feature_preact": leaf(n, 32 * wide, head_hw, head_hw),
        "stages": stages,
        "low_level": leaf(n, 16 * wide, 16, 16, relu=True),
    }


def make_gt(n: int = 2, size: int = 64, seed: int = 0) -> Tensor:
    """Blocky labels (so edges and bodies both exist) with an ignored band."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, NUM_CLASSES, (n, 1, 4, 4), generator=g).float()
    gt = torch.nn.functional.interpolate(coarse, size=(size, size), mode="nearest")[:, 0].long()
    gt[:, :, :2] = 255
    return gt


def channels(x: Tensor | list[Tensor]) -> int | list[int]:
    return [t.shape[1] for t in x] if isinstance(x, list) else x.shape[1]


def build_spec_loss(spec: LossSpec, taps_s: dict, taps_t: dict,
                    teacher_classifier: nn.Module | None = None) -> nn.Module:
    """Build ``spec``'s loss like the distiller: ``loss_weight`` and probed channel counts."""
    cls = LOSSES.get(spec.type)
    params = inspect.signature(cls).parameters
    kwargs = dict(spec.kwargs, loss_weight=spec.weight)
    if spec.channels_from:
        if "student_channels" in params:
            kwargs["student_channels"] = channels(taps_s[spec.channels_from])
        if "teacher_channels" in params:
            kwargs["teacher_channels"] = channels(taps_t[spec.channels_from])
    if "teacher_classifier" in params:
        kwargs["teacher_classifier"] = teacher_classifier
    return cls(**kwargs)


def spec_inputs(spec: LossSpec, taps_s: dict, taps_t: dict, gt: Tensor) -> dict[str, Any]:
    out = {}
    for arg, inp in spec.inputs.items():
        if inp.source == "data":
            out[arg] = gt
        else:
            out[arg] = (taps_s if inp.source == "student" else taps_t)[inp.tap]
    return out


# --------------------------------------------------------------------------------------------
# hand-computation tests (run in float64): small random inputs and reference formulas
# --------------------------------------------------------------------------------------------
def float64_default() -> Iterator[None]:
    """Fixture body: run the test with float64 as torch's default dtype.

    Use as ``_float64 = pytest.fixture(autouse=True)(float64_default)`` in a test module.
    """
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def random_pair(n: int = 2, cs: int = 3, ct: int = 4, h: int = 4, w: int = 4, seed: int = 0,
                relu: bool = False, t_scale: float = 1.0) -> tuple[Tensor, Tensor]:
    """Student ``N x cs x h x w`` and teacher ``N x ct x h x w`` leaves (``requires_grad``).

    Both standard normal (the teacher times ``t_scale``), optionally ReLU'd.
    """
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, cs, h, w, generator=g)
    t = t_scale * torch.randn(n, ct, h, w, generator=g)
    if relu:
        s, t = s.relu(), t.relu()
    return s.requires_grad_(True), t.requires_grad_(True)


def random_labels(n: int = 2, h: int = 4, w: int = 4, k: int = 3, seed: int = 1,
                  ignored: int = 1) -> Tensor:
    """``N x h x w`` labels in ``[0, k)``; the first ``ignored`` pixels of image 0 are 255."""
    g = torch.Generator().manual_seed(seed)
    gt = torch.randint(0, k, (n, h, w), generator=g)
    gt[0, 0, :ignored] = 255
    return gt


def dup(x: Tensor) -> Tensor:
    """The batch twice over (detached): batch-mean reductions must not change."""
    return torch.cat([x, x]).detach()


def assert_no_teacher_grad(out: Tensor, s: Tensor, t: Tensor) -> None:
    """Back-propagate ``out``: the student input gets a gradient, the teacher input none."""
    out.backward()
    assert s.grad is not None and t.grad is None


def ref_softmax(x: Tensor, dim: int) -> Tensor:
    e = (x - x.max(dim, keepdim=True).values).exp()
    return e / e.sum(dim, keepdim=True)


def ref_kl(p: Tensor, q: Tensor) -> Tensor:
    """KL(p || q) of two distributions, summed over all entries."""
    return (p * (p.log() - q.log())).sum()


def ref_unit(v: Tensor) -> Tensor:
    return v / v.pow(2).sum().sqrt()


def ref_edges(gt: Tensor, r: int) -> Tensor:
    """Loop version of ``label_edges``: non-255 pixels whose (2r+1)^2 window has another label."""
    n, h, w = gt.shape
    out = torch.zeros(n, h, w, dtype=torch.bool)
    for b in range(n):
        for i in range(h):
            for j in range(w):
                if gt[b, i, j] == 255:
                    continue
                win = gt[b, max(0, i - r):i + r + 1, max(0, j - r):j + r + 1]
                out[b, i, j] = bool((win != gt[b, i, j]).any())
    return out
