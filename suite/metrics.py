"""mmseg's IoUMetric plus the per-class IoU values in its returned dict."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """``aAcc``, ``mIoU``, ``mAcc`` (as mmseg computes them) and ``IoU.<class>`` in percent."""

    def compute_metrics(self, results: list) -> dict[str, float]:
        metrics = super().compute_metrics(results)
        parts = tuple(zip(*results))
        intersect = np.asarray(sum(parts[0]), dtype=np.float64)
        union = np.asarray(sum(parts[1]), dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = intersect / union
        classes = self.dataset_meta["classes"]
        per_class = OrderedDict(
            (f"IoU.{name}", round(float(v) * 100, 2)) for name, v in zip(classes, iou) if np.isfinite(v)
        )
        metrics.update(per_class)
        return metrics
