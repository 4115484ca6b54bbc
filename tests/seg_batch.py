"""A random segmentation batch (inputs and SegDataSamples with labels) for model tests."""

from __future__ import annotations

import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample


def batch(n: int = 2, size: int = 64, classes: int = 5) -> tuple[torch.Tensor, list[SegDataSample]]:
    """``n`` random images of ``size`` x ``size`` with random labels in ``range(classes)``."""
    samples = []
    for _ in range(n):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, classes, (1, size, size)))
        s.set_metainfo({"img_shape": (size, size), "ori_shape": (size, size),
                        "pad_shape": (size, size)})
        samples.append(s)
    return torch.randn(n, 3, size, size), samples
