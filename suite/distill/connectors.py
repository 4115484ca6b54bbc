"""Connectors: transforms of a recorded tensor before it reaches a loss (MMRazor's term).

Student-side connectors are trainable and discarded after training; teacher-side connectors are
parameter-free (a trainable teacher-side head lets both sides collapse to one constant map).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from suite.methods.registry import CONNECTORS


@CONNECTORS.register_module(name="conv1x1")
class Conv1x1(nn.Conv2d):
    """A 1x1 convolution from the student's channels to the teacher's."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1)


@CONNECTORS.register_module(name="conv1x1_bn")
class Conv1x1BN(nn.Sequential):
    """1x1 convolution + BatchNorm (FitNets/CIRKD-style projector)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )


def rms_normalise(x: Tensor, eps: float = 1e-6) -> Tensor:
    """Per-pixel RMS normalisation over channels: each pixel vector gets norm sqrt(C)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def l2_normalise(x: Tensor, eps: float = 1e-6) -> Tensor:
    return F.normalize(x, dim=1, eps=eps)


NORMS = {"rms": rms_normalise, "l2": l2_normalise, "none": lambda x: x}


def size_at_stride(feats: list[Tensor], strides: list[int], target: int) -> tuple[int, int]:
    """The spatial size of a map at stride ``target``, from the stage whose stride is nearest
    (that stage's own size when a stage has exactly that stride)."""
    j = min(range(len(strides)), key=lambda i: (abs(math.log(strides[i] / target)), i))
    h, w = feats[j].shape[-2:]
    if strides[j] == target:
        return h, w
    return max(1, round(h * strides[j] / target)), max(1, round(w * strides[j] / target))


def fuse_stages(feats: list[Tensor], stages: list[int], size_stage: int, norm: str,
                size: tuple[int, int] | None = None) -> Tensor:
    """Whole-to-whole fusion: normalise each chosen stage, resize to one size, concatenate.

    The common size is ``size``, by default that of stage ``size_stage`` (stride 8, i.e. 1/8 of
    the input, for ResNet-d8, MiT, MobileNetV2-d8, EfficientNet-d8 and Mask2Former's ResNet).
    Bilinear resizing, ``align_corners=False``.
    """
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid: {sorted(NORMS)}")
    size = tuple(size) if size is not None else feats[size_stage].shape[-2:]
    out = []
    for i in stages:
        f = NORMS[norm](feats[i])
        if f.shape[-2:] != size:
            f = F.interpolate(f, size=size, mode="bilinear", align_corners=False)
        out.append(f)
    return torch.cat(out, dim=1)


@CONNECTORS.register_module(name="bcd_fuse")
class StageFusion(nn.Module):
    """Parameter-free teacher-side W2W fusion of backbone stages (BCD reconstruction item 2)."""

    def __init__(
        self,
        in_channels: list[int],
        stages: tuple[int, ...] = (0, 1, 2, 3),
        size_stage: int = 1,
        norm: str = "rms",
    ) -> None:
        super().__init__()
        self.stages, self.size_stage, self.norm = list(stages), size_stage, norm
        self.out_channels = sum(in_channels[i] for i in self.stages)

    def forward(self, feats: list[Tensor]) -> Tensor:
        return fuse_stages(list(feats), self.stages, self.size_stage, self.norm)


@CONNECTORS.register_module(name="bcd_align_fuse")
class AlignedStageFusion(nn.Module):
    """Student-side fusion: a trainable 1x1 alignment conv per stage (the "A" of the context
    term, student channels -> teacher channels), then the same fusion as the teacher side.

    With ``identity_init`` and equal channel counts the alignment starts as the identity.
    Heterogeneous pairs (stage strides that differ, e.g. ESPNet's 2/4/8/8 under a ResNet-d8
    teacher's 4/8/8/8, or SegFormer under Mask2Former): given the stages' strides
    (``in_strides``, the student's; ``out_strides``, the teacher's, both probed by the
    distiller), the fused map takes the size of the teacher's stage ``size_stage``, i.e. its
    stride, not the student's stage of that index. When the student's stage ``size_stage`` has
    that stride (every ResNet pair) nothing changes.
    """

    def __init__(
        self,
        in_channels: list[int],
        out_channels: list[int],
        stages: tuple[int, ...] = (0, 1, 2, 3),
        size_stage: int = 1,
        norm: str = "rms",
        identity_init: bool = False,
        in_strides: list[int] | None = None,
        out_strides: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.stages, self.size_stage, self.norm = list(stages), size_stage, norm
        self.in_strides = list(in_strides) if in_strides else None
        self.target_stride = out_strides[size_stage] if in_strides and out_strides else None
        self.align = nn.ModuleList(
            nn.Conv2d(in_channels[i], out_channels[i], kernel_size=1) for i in self.stages
        )
        if identity_init:
            for conv in self.align:
                if conv.in_channels != conv.out_channels:
                    raise ValueError("identity_init needs equal student/teacher channels")
                nn.init.zeros_(conv.bias)
                with torch.no_grad():
                    conv.weight.copy_(torch.eye(conv.in_channels)[:, :, None, None])

    def forward(self, feats: list[Tensor]) -> Tensor:
        aligned = list(feats)
        for conv, i in zip(self.align, self.stages):
            aligned[i] = conv(feats[i])
        size = None
        if self.target_stride is not None and self.in_strides is not None:
            size = size_at_stride(list(feats), self.in_strides, self.target_stride)
        return fuse_stages(aligned, self.stages, self.size_stage, self.norm, size)
