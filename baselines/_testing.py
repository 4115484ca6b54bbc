"""Test helpers: student/teacher tap tensors shaped like the suite's tiny models, and a loss
builder that fills channel counts the way ``suite.distill.model.DistillationModel`` does.

Shapes (64 x 64 input, small widths): PSPNet-R18-d8 -> logits N x 21 x 8 x 8, head feature
N x 32 x 8 x 8; DeepLabV3+-R18 -> logits N x 21 x 8 x 8 (before the final upsampling the
decoder runs at 1/4: 16 x 16, so both resolutions are exercised), head feature N x 32 x 16 x 16.
Teachers are twice as wide (head 64, stages 32/64/128/256 vs 16/32/64/128).
"""

from __future__ import annotations

import inspect
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
