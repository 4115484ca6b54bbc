"""Semantic segmentation with mmsegmentation: EncoderDecoder models from mmseg's configs, mmseg's
dataset configs and pipelines, per-class IoU plus boundary/connectivity metrics, ``gt_sem_seg``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from suite.tasks.base import Task, loaders


class SegmentationTask(Task):
    """The ``segmentation`` task (mmseg scope)."""

    name = "segmentation"
    scope = "mmseg"

    def load_modules(self) -> None:
        from mmseg.utils import register_all_modules

        import suite.metrics  # noqa: F401  (registers PerClassIoUMetric and the boundary metric)
        from suite.nets import register_all

        register_all_modules(init_default_scope=False)  # mmseg's own models, datasets, metrics
        register_all()  # the re-implemented networks (EfficientNet, ESPNet, ...) in mmseg's MODELS

    def model_config(self, model: str, num_classes: int, width: float, norm: str,
                     crop: tuple[int, int], pretrained: str | None = None,
                     pretrained_prefix: str | None = None,
                     options: dict[str, Any] | None = None) -> dict[str, Any]:
        from suite.models import segmentor_config

        if options:
            from suite.errors import SpecError

            raise SpecError(f"segmentation models take no options; got {sorted(options)}")

        cfg = segmentor_config(model, num_classes, width, norm=norm, pretrained=pretrained,
                               pretrained_prefix=pretrained_prefix)
        cfg["data_preprocessor"]["size"] = tuple(crop)
        return cfg

    def dataloaders(self, config: dict[str, Any], root: str, batch_size: int) -> dict[str, Any]:
        """mmseg's own base dataset config pointed at ``root``, with the profile's crop and resize
        scales in proportion (:func:`suite.data.mmseg_dataset_config`)."""
        from suite.data import mmseg_dataset_config

        base = mmseg_dataset_config(config["dataset"], root, crop_size=tuple(config["crop"]),
                                    num_workers=int(config.get("num_workers", 0)))
        return loaders(base, batch_size)

    def evaluator(self, config: dict[str, Any], cell_dir: Path) -> list[dict[str, Any]]:
        return [dict(type="PerClassIoUMetric", iou_metrics=["mIoU"]),
                # bIoU, connErr and the prediction PNGs, in the same pass
                dict(type="BoundaryConnectivityMetric", prediction_dir=str(cell_dir / "predictions"))]

    def visualizer(self, name: str, vis_backends: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(type="SegLocalVisualizer", name=name, vis_backends=vis_backends)

    def visualization_hook(self) -> dict[str, Any]:
        return dict(type="SegVisualizationHook", draw=False)

    def ground_truth(self, data_samples: list[Any], kind: str = "gt_seg") -> Tensor:
        """``gt_seg``: the label maps, N x H x W (long)."""
        if kind != "gt_seg":
            from suite.errors import SuiteError

            raise SuiteError(f"segmentation has no ground truth {kind!r}; valid: gt_seg")
        return torch.stack([d.gt_sem_seg.data.squeeze(0) for d in data_samples]).long()

    def probe_batch(self, size: tuple[int, int]) -> tuple[Tensor, list[Any]]:
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample

        h, w = size
        sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=torch.zeros(1, h, w, dtype=torch.long))
        return torch.zeros(1, 3, h, w), [sample]

    def result_metrics(self, metrics: dict[str, float]) -> dict[str, Any]:
        from suite.metrics import quality_record

        nan = float("nan")
        return {"miou": float(metrics.get("mIoU", nan)), "aacc": float(metrics.get("aAcc", nan)),
                **quality_record(metrics)}
