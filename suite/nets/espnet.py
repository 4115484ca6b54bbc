"""ESPNet (Mehta et al., "ESPNet: Efficient Spatial Pyramid of Dilated Convolutions for Semantic
Segmentation", ECCV 2018) -- a re-implementation, flagged as such (no package here has it).

Written from the paper (Fig. 4d, the full ESPNet with alpha_2 = 2, alpha_3 = 8: 0.36 M
parameters at 19/20 classes) and split the mmseg way into a backbone (the encoder, ESPNet-C
without its classifier) and a decode head (the light-weight decoder):

* ESP module: 1x1 reduction to C/K (K = 5) channels, K parallel 3x3 convolutions with dilation
  1, 2, 4, 8, 16, hierarchical feature fusion (each output added to the previous before the
  concatenation), BatchNorm + PReLU; the residual form adds the input. The strided version
  (3x3, stride 2 reduction) downsamples.
* Encoder: 3x3 stride-2 conv to 16 channels, concatenated with the input downsampled once
  (stride 2, 19 channels); strided ESP to 64, 2 ESP modules, concatenated with the strided ESP's
  output and the input downsampled twice (stride 4, 131 channels); strided ESP to 128, 8 ESP
  modules, concatenated with the strided ESP's output (stride 8, 256 channels).
* Decoder: 1x1 classifiers at strides 8 and 4, fused by an ESP module after a 2x deconvolution,
  again 2x, concatenated with the stride-2 features, a 3x3 conv, and a final 2x deconvolution
  to full resolution (the classifier).

Backbone outputs: the stride-2, stride-4 maps, the strided ESP's output at stride 8 and the
stride-8 concatenation (four maps, the four ``stages`` of the suite's taps).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from mmengine.model import BaseModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import Tensor, nn


def bn_prelu(channels: int) -> nn.Sequential:
    """BatchNorm (eps 1e-3, as upstream) + PReLU."""
    return nn.Sequential(nn.BatchNorm2d(channels, eps=1e-3), nn.PReLU(channels))


def conv_bn_prelu(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    """k x k convolution without bias, then BatchNorm + PReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=(k - 1) // 2, bias=False),
                         *bn_prelu(cout))


class ESPModule(nn.Module):
    """Efficient spatial pyramid: reduce, K = 5 dilated 3x3 branches, hierarchical fusion.

    ``down``: the reduction is a strided 3x3 convolution (no residual); otherwise 1x1, with the
    input added when ``residual`` (and channels match).
    """

    def __init__(self, cin: int, cout: int, down: bool = False, residual: bool = True) -> None:
        super().__init__()
        n = cout // 5
        n1 = cout - 4 * n
        self.reduce = (nn.Conv2d(cin, n, 3, 2, padding=1, bias=False) if down
                       else nn.Conv2d(cin, n, 1, bias=False))
        self.branches = nn.ModuleList(
            nn.Conv2d(n, n1 if d == 1 else n, 3, padding=d, dilation=d, bias=False)
            for d in (1, 2, 4, 8, 16))
        self.residual = residual and not down and cin == cout
        self.out = bn_prelu(cout)

    def forward(self, x: Tensor) -> Tensor:
        r = self.reduce(x)
        d = [b(r) for b in self.branches]
        fused = [d[0], d[1]]
        for k in range(2, 5):  # hierarchical feature fusion: add before concatenating
            fused.append(fused[-1] + d[k])
        out = torch.cat(fused, dim=1)
        if self.residual:
            out = out + x
        return self.out(out)


def downsample_input(x: Tensor, times: int) -> Tensor:
    """The input image average-pooled (3x3, stride 2) ``times`` times (input reinforcement)."""
    for _ in range(times):
        x = F.avg_pool2d(x, 3, stride=2, padding=1)
    return x


@MODELS.register_module()
class ESPNetEncoder(BaseModule):
    """ESPNet's encoder (ESPNet-C without the classifier); see the module docstring.

    Args:
        alpha2 / alpha3: ESP modules at stride 4 and 8 (2 and 8 in the paper's ESPNet).
        widen_factor: scales every width (16, 64, 128 at 1.0).
    """

    def __init__(self, alpha2: int = 2, alpha3: int = 8, widen_factor: float = 1.0,
                 init_cfg: dict | list | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        c1, c2, c3 = (max(5, int(round(c * widen_factor))) for c in (16, 64, 128))
        self.level1 = conv_bn_prelu(3, c1, 3, stride=2)
        self.b1 = bn_prelu(c1 + 3)
        self.level2_0 = ESPModule(c1 + 3, c2, down=True)
        self.level2 = nn.Sequential(*(ESPModule(c2, c2) for _ in range(alpha2)))
        self.b2 = bn_prelu(2 * c2 + 3)
        self.level3_0 = ESPModule(2 * c2 + 3, c3, down=True)
        self.level3 = nn.Sequential(*(ESPModule(c3, c3) for _ in range(alpha3)))
        self.b3 = bn_prelu(2 * c3)
        self.out_channels = [c1 + 3, 2 * c2 + 3, c3, 2 * c3]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        s2 = self.b1(torch.cat([self.level1(x), downsample_input(x, 1)], dim=1))
        d2 = self.level2_0(s2)
        s4 = self.b2(torch.cat([self.level2(d2), d2, downsample_input(x, 2)], dim=1))
        d3 = self.level3_0(s4)
        s8 = self.b3(torch.cat([d3, self.level3(d3)], dim=1))
        return s2, s4, d3, s8


def _up2(channels: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(channels, channels, 2, stride=2, bias=False)


@MODELS.register_module()
class ESPNetHead(BaseDecodeHead):
    """ESPNet's light-weight decoder (see the module docstring); ``conv_seg`` is its last 2x
    deconvolution, the classifier, giving full-resolution logits.

    ``in_channels``: the encoder's four outputs (stride 2, 4, 8 strided, 8).
    """

    def __init__(self, in_channels: list[int], **kwargs) -> None:
        super().__init__(in_channels=in_channels, in_index=[0, 1, 2, 3],
                         input_transform="multiple_select", **kwargs)
        k = self.num_classes
        c_s2, c_s4, _, c_s8 = in_channels
        self.classify_s8 = nn.Conv2d(c_s8, k, 1, bias=False)
        self.bn_s8 = nn.BatchNorm2d(k, eps=1e-3)
        self.up_s8 = _up2(k)
        self.classify_s4 = nn.Conv2d(c_s4, k, 1, bias=False)
        self.combine = nn.Sequential(bn_prelu(2 * k), ESPModule(2 * k, k, residual=False))
        self.up_s4 = nn.Sequential(_up2(k), nn.BatchNorm2d(k, eps=1e-3), nn.PReLU(k))
        self.fuse_s2 = conv_bn_prelu(c_s2 + k, k, 3)
        self.conv_seg = _up2(k)  # the classifier: 2x deconvolution to full resolution

    def forward(self, inputs: list[Tensor]) -> Tensor:
        s2, s4, _, s8 = self._transform_inputs(inputs)
        up8 = self.up_s8(self.bn_s8(self.classify_s8(s8)))
        x = self.up_s4(self.combine(torch.cat([self.classify_s4(s4), up8], dim=1)))
        x = self.fuse_s2(torch.cat([x, s2], dim=1))
        return self.cls_seg(x)
