"""mmseg's IoUMetric plus the per-class IoU values and the prediction's majority share; the
``quality`` record of a result (mIoU, Boundary IoU and Betti-0 connectivity error per class).

Importing this module also registers :class:`suite.boundary_metrics.BoundaryConnectivityMetric`,
the second metric of a cell's validation evaluator.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from suite import boundary_metrics  # noqa: F401  (registers BoundaryConnectivityMetric)


def majority(pred_area: np.ndarray) -> tuple[float, int]:
    """The share of evaluated pixels predicted as the most frequent predicted class, and it.

    ``s = max_c A_c / Σ_c A_c`` with ``A_c`` the number of pixels predicted as class c (ignored
    pixels excluded); NaN and -1 when nothing was evaluated.
    """
    area = np.asarray(pred_area, dtype=np.float64)
    total = float(area.sum())
    if total <= 0:
        return float("nan"), -1
    cls = int(area.argmax())
    return float(area[cls]) / total, cls


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """``aAcc``, ``mIoU``, ``mAcc`` (as mmseg computes them), ``IoU.<class>`` in percent, and
    ``majority.share`` (a fraction) / ``majority.class`` (an index): the share of validation
    pixels predicted as the single most frequent class (:func:`majority`)."""

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
        share, cls = majority(np.asarray(sum(parts[2]), dtype=np.float64))
        metrics.update({"majority.share": round(share, 6), "majority.class": cls})
        return metrics


def per_class(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """``{class: value}`` of the metric keys ``<prefix>.<class>``."""
    head = prefix + "."
    return {k[len(head):]: float(v) for k, v in metrics.items() if k.startswith(head)}


def quality_record(metrics: dict[str, float]) -> dict[str, object]:
    """The result keys of the boundary and connectivity measures of one validation pass.

    ``boundary_iou`` (%, mean over classes: :mod:`suite.boundary_metrics`),
    ``connectivity_error`` (mean Betti-0 error, components per image; lower is better) and
    ``quality``: per class ``iou`` and ``boundary_iou`` (%), ``connectivity_error``, and the
    band width convention. NaN when the evaluator did not compute them.
    """
    nan = float("nan")
    return {
        "boundary_iou": float(metrics.get("bIoU", nan)),
        "connectivity_error": float(metrics.get("connErr", nan)),
        "quality": {
            "iou": per_class(metrics, "IoU"),
            "boundary_iou": per_class(metrics, "BIoU"),
            "connectivity_error": per_class(metrics, "conn"),
            "boundary_band": f"d = max(1, round({boundary_metrics.DILATION_RATIO} x image "
                             "diagonal)) px, chessboard distance",
            "connectivity": "Betti-0 error |components(pred) - components(gt)|, 8-connected, "
                            "mean over images with the class, then over classes",
        },
    }
