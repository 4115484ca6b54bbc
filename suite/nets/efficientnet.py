"""EfficientNet (Tan & Le, ICML 2019) as an mmseg backbone -- a re-implementation in torch.

mmpretrain's EfficientNet does not import on this stack (it needs torchvision), so the network
is written out here from the paper (Table 1, B0's stages; B1: width 1.0, depth 1.1): a 3x3
stem, seven stages of MBConv blocks (1x1 expansion, depthwise kxk, squeeze-and-excitation with
a quarter of the block's input channels, linear 1x1 projection, identity shortcut with
stochastic depth when shapes allow), and the final 1x1 convolution to 1280 channels; SiLU and
BatchNorm throughout (``norm_cfg``: the cell's BN or SyncBN with the reference's eps 1e-3 and
PyTorch's momentum 0.1, as every other network of the suite; the reference's decay 0.99, i.e.
momentum 0.01, left the running statistics of a 120-iteration smoke schedule far from the
training batches', and the eval-mode student predicted one class while its training loss fell). Channels are rounded to multiples of 8, repeats rounded up (the reference
implementation's rules; the final convolution has 4x the last stage's channels, 1280 at
width 1). For dense prediction the stride-2 blocks of stages 4 and 6 keep
stride 1 and dilate instead (output stride 8), as mmseg does for MobileNetV2 ("-d8").

Outputs (``out_indices``): stage 2 (stride 4), stage 3 (stride 8), stage 5 and the final
convolution (stride 8 with dilation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor, nn

# expand ratio, kernel, stride, output channels, repeats (B0; Table 1 of the paper)
B0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1),
)
ARCHS = {"b0": (1.0, 1.0), "b1": (1.0, 1.1), "b2": (1.1, 1.2)}  # (width, depth) multipliers
NORM = dict(type="BN", eps=1e-3, momentum=0.1)


def round_channels(channels: float, divisor: int = 8) -> int:
    """The reference rule: nearest multiple of ``divisor``, never below 90% of ``channels``."""
    out = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * channels else out


def conv_bn_act(cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1, groups: int = 1,
                act: bool = True, norm_cfg: dict | None = None) -> nn.Sequential:
    """k x k convolution (no bias), BatchNorm (``norm_cfg``, :data:`NORM` by default), optional
    SiLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, padding=dilation * (k - 1) // 2, dilation=dilation,
                  groups=groups, bias=False),
        build_norm_layer(dict(norm_cfg or NORM), cout)[1],
    ]
    if act:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Channel attention: global average, reduce to ``squeeze`` with SiLU, expand, sigmoid."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.act = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        s = self.act(self.reduce(x.mean(dim=(2, 3), keepdim=True)))
        return x * torch.sigmoid(self.expand(s))


class MBConv(nn.Module):
    """Inverted residual block with squeeze-and-excitation (MobileNetV2/MnasNet's MBConv)."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int,
                 dilation: int, drop_path: float, norm_cfg: dict | None = None) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = conv_bn_act(cin, mid, 1, norm_cfg=norm_cfg) if expand != 1 else nn.Identity()
        self.depthwise = conv_bn_act(mid, mid, kernel, stride, dilation, groups=mid,
                                     norm_cfg=norm_cfg)
        self.se = SqueezeExcite(mid, max(1, cin // 4))
        self.project = conv_bn_act(mid, cout, 1, act=False, norm_cfg=norm_cfg)
        self.residual = stride == 1 and cin == cout
        self.drop_path = drop_path

    def forward(self, x: Tensor) -> Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        if not self.residual:
            return out
        if self.training and self.drop_path > 0:  # stochastic depth, per sample
            keep = 1.0 - self.drop_path
            mask = x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(keep) / keep
            out = out * mask
        return x + out


@MODELS.register_module()
class EfficientNet(BaseModule):
    """EfficientNet backbone (re-implementation, see the module docstring).

    Args:
        arch: ``b0``, ``b1`` or ``b2`` (width and depth multipliers of the paper).
        widen_factor: the suite's width multiplier, on top of the arch's width.
        strides / dilations: per stage (7 each); the defaults give output stride 8.
        out_indices: which of the 8 outputs (7 stages, then the final 1x1 conv) to return.
        drop_path_rate: stochastic depth, linearly increasing over the blocks (0.2 in the paper).
        norm_cfg: mmcv's norm config of every BatchNorm (:data:`NORM` by default).
    """

    def __init__(self, arch: str = "b1", widen_factor: float = 1.0,
                 strides: Sequence[int] = (1, 2, 2, 1, 1, 1, 1),
                 dilations: Sequence[int] = (1, 1, 1, 2, 2, 4, 4),
                 out_indices: Sequence[int] = (1, 2, 4, 7), drop_path_rate: float = 0.2,
                 norm_cfg: dict | None = None, init_cfg: dict | list | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        width, depth = ARCHS[arch]
        width *= widen_factor
        self.out_indices = tuple(out_indices)
        norm_cfg = {**NORM, **(norm_cfg or {})}
        self.stem = conv_bn_act(3, round_channels(32 * width), 3, stride=2, norm_cfg=norm_cfg)
        repeats = [math.ceil(r * depth) for *_, r in B0_STAGES]
        total, index = sum(repeats), 0
        cin = round_channels(32 * width)
        self.stages = nn.ModuleList()
        for (expand, kernel, _, cout, _), n, stride, dilation in zip(B0_STAGES, repeats, strides,
                                                                    dilations):
            cout = round_channels(cout * width)
            blocks = []
            for i in range(n):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1,
                                     dilation, drop_path_rate * index / total, norm_cfg))
                cin, index = cout, index + 1
            self.stages.append(nn.Sequential(*blocks))
        self.head = conv_bn_act(cin, 4 * cin, 1, norm_cfg=norm_cfg)  # 1280 channels at width 1
        self.out_channels = [round_channels(c * width) for *_, c, _ in B0_STAGES] + [4 * cin]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        outs = []
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        if 7 in self.out_indices:
            outs.append(self.head(x))
        return tuple(outs)
