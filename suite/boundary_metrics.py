"""Boundary IoU and region connectivity of semantic segmentation predictions.

Two measures of what mIoU averages away, computed in the same validation pass as mIoU
(:class:`BoundaryConnectivityMetric`, an mmengine metric beside
:class:`suite.metrics.PerClassIoUMetric`):

* **Boundary IoU** (Cheng, Girshick, Dollár, Berg, Kirillov, "Boundary IoU: Improving
  Object-Centric Image Segmentation Evaluation", CVPR 2021). For a class c with ground-truth
  mask G and predicted mask P, the inner boundary band of a mask M is
  ``M_d = {x ∈ M : dist(x, contour(M)) ≤ d}``, with the chessboard distance of the reference
  implementation (a pixel is in the band when d 3×3 erosions remove it; the image border counts
  as contour, as the reference pads with background). Then
  ``BIoU_c = |G_d ∩ P_d| / |G_d ∪ P_d|``, the intersections and unions summed over the
  validation images before dividing (as mIoU is), and ``bIoU`` is the mean over the classes
  whose union is not empty. ``d = max(1, round(ratio · diag))`` with ``diag`` the image
  diagonal and ``ratio = 0.02`` by default (the paper's). Pixels whose label is the ignore
  index belong to no class's ground truth and are left out of both counts.
* **Betti-0 error** (the 0-dimensional Betti number error of Hu, Li, Samaras, Chen,
  "Topology-Preserving Deep Image Segmentation", NeurIPS 2019; also clDice, Shit et al., CVPR
  2021): for a class c and an image, ``e = |β0(P_c) − β0(G_c)|`` where β0 counts the connected
  components of a binary mask (8-connected; prediction pixels on ignored labels are dropped).
  ``e`` counts fragments a prediction adds (a region broken into pieces, speckles) or loses
  (regions merged or missed). ``conn.<class>`` is the mean of ``e`` over the images in which the
  class is present in the ground truth or the prediction, and ``connErr`` the mean over classes.
  0 is perfect; lower is better.

Both use :mod:`scipy.ndimage` (chessboard distance transform, connected-component labelling).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS
from scipy import ndimage

from suite.boundary_bands import DILATION_RATIO, band_width, inner_band

EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity of foreground components


def components(mask: np.ndarray) -> int:
    """β0 of a binary mask: its number of 8-connected components."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return 0
    return int(ndimage.label(mask, structure=EIGHT)[1])


@dataclass
class ImageStats:
    """Per-class counts of one image: boundary intersection and union (pixels), Betti-0 error,
    and whether the class is present (in the ground truth or the prediction)."""

    b_intersect: np.ndarray
    b_union: np.ndarray
    betti_error: np.ndarray
    present: np.ndarray


def image_stats(pred: np.ndarray, label: np.ndarray, num_classes: int, ignore_index: int = 255,
                ratio: float = DILATION_RATIO, d: int | None = None) -> ImageStats:
    """Boundary intersection/union and Betti-0 error of every class on one (H, W) image.

    ``d`` overrides the band width (default :func:`band_width` of the image size).
    """
    pred = np.asarray(pred)
    label = np.asarray(label)
    valid = label != ignore_index
    d = band_width(label.shape, ratio) if d is None else int(d)
    inter = np.zeros(num_classes, dtype=np.int64)
    union = np.zeros(num_classes, dtype=np.int64)
    betti = np.zeros(num_classes, dtype=np.float64)
    present = np.zeros(num_classes, dtype=bool)
    classes = np.union1d(np.unique(label[valid]), np.unique(pred[valid]))
    for c in classes[(classes >= 0) & (classes < num_classes)].astype(int):
        gt_c = label == c
        pred_c = (pred == c) & valid
        g_band = inner_band(gt_c, d) & valid
        p_band = inner_band(pred_c, d) & valid
        inter[c] = int((g_band & p_band).sum())
        union[c] = int((g_band | p_band).sum())
        betti[c] = abs(components(pred_c) - components(gt_c))
        present[c] = True
    return ImageStats(inter, union, betti, present)


def boundary_iou(b_intersect: np.ndarray, b_union: np.ndarray) -> np.ndarray:
    """Per-class ``Σ |G_d ∩ P_d| / Σ |G_d ∪ P_d|`` (NaN for a class with an empty union)."""
    inter = np.asarray(b_intersect, dtype=np.float64)
    union = np.asarray(b_union, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)


def betti_error(errors: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per-class mean Betti-0 error over the images where the class is present (NaN if none).

    ``errors`` and ``present`` are (images, classes).
    """
    errors = np.asarray(errors, dtype=np.float64)
    present = np.asarray(present, dtype=bool)
    count = present.sum(axis=0)
    total = np.where(present, errors, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def summarise(stats: Sequence[ImageStats], classes: Sequence[str]) -> dict[str, float]:
    """The metric keys of a validation pass: ``bIoU`` (%), ``BIoU.<class>`` (%), ``connErr``
    and ``conn.<class>`` (Betti-0 error, components per image), NaN classes left out."""
    if not stats:
        return {"bIoU": float("nan"), "connErr": float("nan")}
    biou = boundary_iou(sum(s.b_intersect for s in stats), sum(s.b_union for s in stats))
    conn = betti_error(np.stack([s.betti_error for s in stats]),
                       np.stack([s.present for s in stats]))
    out: dict[str, float] = {
        "bIoU": round(float(np.nanmean(biou)) * 100, 2) if np.isfinite(biou).any()
        else float("nan"),
        "connErr": round(float(np.nanmean(conn)), 4) if np.isfinite(conn).any()
        else float("nan"),
    }
    out.update({f"BIoU.{n}": round(float(v) * 100, 2) for n, v in zip(classes, biou)
                if np.isfinite(v)})
    out.update({f"conn.{n}": round(float(v), 4) for n, v in zip(classes, conn) if np.isfinite(v)})
    return out


@METRICS.register_module()
class BoundaryConnectivityMetric(BaseMetric):
    """Boundary IoU and Betti-0 connectivity error in mmseg's validation loop (module docstring).

    Args:
        ignore_index: label of pixels left out (mmseg's 255).
        dilation_ratio: the band width d as a fraction of the image diagonal (0.02).
        prediction_dir: where the first ``num_images`` samples of the pass are saved as PNGs
            (:mod:`suite.predictions`; the cell's ``predictions/``); None saves nothing.
        num_images: how many samples to save.
    """

    default_prefix = None

    def __init__(self, ignore_index: int = 255, dilation_ratio: float = DILATION_RATIO,
                 prediction_dir: str | None = None, num_images: int = 4,
                 collect_device: str = "cpu", prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ignore_index = ignore_index
        self.dilation_ratio = dilation_ratio
        self.prediction_dir = prediction_dir
        self.num_images = int(num_images)
        self._seen = 0

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Per-class counts of every image of the batch (at the label's resolution)."""
        num_classes = len(self.dataset_meta["classes"])
        for sample in data_samples:
            pred = sample["pred_sem_seg"]["data"].squeeze().cpu().numpy()
            label = sample["gt_sem_seg"]["data"].squeeze().cpu().numpy()
            self.results.append(image_stats(pred, label, num_classes, self.ignore_index,
                                            self.dilation_ratio))
            self._picture(sample, pred, label)

    def _picture(self, sample: dict, pred: np.ndarray, label: np.ndarray) -> None:
        """Save (and log) the sample's pictures while fewer than ``num_images`` were."""
        from mmengine.dist import is_main_process

        if self.prediction_dir is None or self._seen >= self.num_images or not is_main_process():
            return
        from suite.predictions import log_image, sample_name, save_sample

        name = sample_name(sample.get("img_path", "image"), self._seen)
        picture = save_sample(Path(self.prediction_dir), name, sample.get("img_path", ""), pred,
                              label, self.dataset_meta.get("palette") or [], self.ignore_index,
                              self.dilation_ratio)
        log_image(name, picture)
        self._seen += 1

    def compute_metrics(self, results: list) -> dict[str, float]:
        """``bIoU``, ``BIoU.<class>``, ``connErr``, ``conn.<class>`` (:func:`summarise`)."""
        self._seen = 0  # the next pass saves the same samples again
        return summarise(results, list(self.dataset_meta["classes"]))
