"""ResNet-V1c with explicit stage blocks (mmseg's ResNet only knows depths 18/34/50/101/152)."""

from __future__ import annotations

from typing import Any

from mmseg.models.backbones.resnet import Bottleneck, ResNetV1c
from mmseg.registry import MODELS


@MODELS.register_module()
class ResNetV1cBlocks(ResNetV1c):
    """mmseg's ResNetV1c with bottleneck ``stage_blocks`` given directly (``depth`` is only a
    label): PSPNet-38 uses (2, 3, 5, 2), 3 x 12 + 2 = 38 weighted layers."""

    def __init__(self, depth: int, stage_blocks: tuple[int, ...] = (2, 3, 5, 2),
                 **kwargs: Any) -> None:
        self.arch_settings = {**ResNetV1c.arch_settings, depth: (Bottleneck, tuple(stage_blocks))}
        super().__init__(depth=depth, **kwargs)
