"""Boundary IoU and the Betti-0 connectivity error on hand-made masks whose values are counted by
hand (a shifted square, a thin bar, a fragmented prediction), and the mmengine metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from suite.boundary_metrics import (
    BoundaryConnectivityMetric,
    band_width,
    betti_error,
    components,
    image_stats,
    inner_band,
    summarise,
)

SIZE = 64  # band width at 64 x 64: round(0.02 * 90.5) = 2


def _square(top: int, left: int, side: int, size: int = SIZE) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.int64)
    mask[top:top + side, left:left + side] = 1
    return mask


def test_band_width_is_two_percent_of_the_diagonal():
    assert band_width((64, 64)) == 2  # 1.81 -> 2
    assert band_width((512, 1024)) == 23  # 0.02 * 1144.9 = 22.9
    assert band_width((8, 8)) == 1  # never below one pixel


def test_inner_band_of_a_square_is_its_outer_rings():
    band = inner_band(_square(10, 10, 20).astype(bool), d=2)
    assert band.sum() == 20 * 20 - 16 * 16  # 144: the two outer rings
    assert band[10, 10] and band[11, 15] and not band[12, 12]
    # the image border is contour: a full image's band is its d-wide frame
    assert inner_band(np.ones((10, 10), bool), d=1).sum() == 100 - 64


def test_shifted_square_boundary_iou_by_hand():
    """GT square rows/cols 10..29, prediction shifted 2 columns right (cols 12..31), d = 2.

    Class 1: each band has 144 pixels. They share rows 10, 11, 28, 29 over cols 12..29 (4 x 18
    = 72 pixels) and nothing in rows 12..27 (GT band cols 10, 11, 28, 29; prediction band cols
    12, 13, 30, 31): BIoU = 72 / (144 + 144 - 72) = 1/3, while the IoU is 360 / 440 = 0.82.
    Class 0 (background): the 2-pixel image frame (64² − 60² = 496 pixels, in both bands) plus
    the 2-pixel ring around each square (24² − 20² = 176 each), which share rows 8, 9, 30, 31
    over cols 10..31 (88): BIoU = (496 + 88) / (672 + 672 − 584) = 584 / 760.
    """
    gt, pred = _square(10, 10, 20), _square(10, 12, 20)
    stats = image_stats(pred, gt, num_classes=2)
    assert stats.b_intersect.tolist() == [584, 72]
    assert stats.b_union.tolist() == [760, 216]
    out = summarise([stats], ["background", "square"])
    assert out["BIoU.square"] == pytest.approx(100 / 3, abs=0.01)
    assert out["BIoU.background"] == pytest.approx(100 * 584 / 760, abs=0.01)
    assert out["bIoU"] == pytest.approx((100 / 3 + 100 * 584 / 760) / 2, abs=0.01)
    assert out["connErr"] == 0.0  # one component each


def test_thin_bar_is_all_boundary_so_biou_equals_iou():
    """A 3-pixel bar (rows 30..32, cols 10..39) lies wholly within d = 2 of its contour. The
    prediction one row lower (rows 31..33) shares 2 of 4 rows: BIoU = IoU = 60 / 120."""
    gt = np.zeros((SIZE, SIZE), np.int64)
    gt[30:33, 10:40] = 1
    pred = np.zeros_like(gt)
    pred[31:34, 10:40] = 1
    stats = image_stats(pred, gt, num_classes=2)
    assert (stats.b_intersect[1], stats.b_union[1]) == (60, 120)
    assert summarise([stats], ["bg", "bar"])["BIoU.bar"] == 50.0


def test_perfect_prediction_scores_100_and_zero_error():
    gt = _square(5, 5, 30)
    out = summarise([image_stats(gt.copy(), gt, 2)], ["bg", "fg"])
    assert out["bIoU"] == 100.0 and out["connErr"] == 0.0


def test_fragmented_prediction_betti_error_by_hand():
    """GT: one 20 x 20 square. Prediction: the same square cut by two 1-pixel columns of
    background into 3 pieces: β0 error 3 − 1 = 2 for the square; the background stays one
    component (the cuts join it), error 0. A second image where the square is missed: error 1.
    Mean over the two images: (2 + 1) / 2 = 1.5 for the square; connErr = (0 + 1.5) / 2."""
    gt = _square(10, 10, 20)
    cut = gt.copy()
    cut[:, 16] = 0
    cut[:, 23] = 0
    assert components(cut == 1) == 3 and components(gt == 1) == 1
    first = image_stats(cut, gt, 2)
    assert first.betti_error.tolist() == [0.0, 2.0]
    missed = image_stats(np.zeros_like(gt), gt, 2)
    assert missed.betti_error.tolist() == [0.0, 1.0]
    out = summarise([first, missed], ["bg", "square"])
    assert out["conn.square"] == 1.5 and out["conn.bg"] == 0.0 and out["connErr"] == 0.75


def test_components_are_eight_connected_and_speckles_count():
    mask = np.zeros((6, 6), bool)
    mask[1, 1] = mask[2, 2] = True  # diagonal neighbours: one component
    mask[4, 4] = True
    assert components(mask) == 2
    gt = np.zeros((SIZE, SIZE), np.int64)
    speckled = gt.copy()
    speckled[5:60:10, 5:60:10] = 1  # 6 x 6 = 36 isolated speckles of a class absent from the GT
    stats = image_stats(speckled, gt, 2)
    assert stats.betti_error[1] == 36 and stats.present[1]


def test_ignored_pixels_count_for_no_class():
    gt = _square(10, 10, 20)
    gt[:, 40:] = 255  # ignored region
    pred = gt.copy()
    pred[pred == 255] = 1  # predictions there must not matter
    pred[2:6, 50:54] = 1
    stats = image_stats(pred, gt, 2)
    assert stats.betti_error[1] == 0.0
    assert stats.b_intersect[1] == stats.b_union[1] == 144


def test_classes_absent_everywhere_are_left_out():
    errors = np.array([[1.0, 0.0], [3.0, 0.0]])
    present = np.array([[True, False], [True, False]])
    out = betti_error(errors, present)
    assert out[0] == 2.0 and np.isnan(out[1])
    summary = summarise([image_stats(np.zeros((8, 8), int), np.zeros((8, 8), int), 3)],
                        ["a", "b", "c"])
    assert set(summary) == {"bIoU", "connErr", "BIoU.a", "conn.a"}


def _sample(pred: np.ndarray, gt: np.ndarray) -> SegDataSample:
    s = SegDataSample()
    s.pred_sem_seg = PixelData(data=torch.as_tensor(pred)[None])
    s.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None])
    return s


def test_mmengine_metric_over_two_images():
    metric = BoundaryConnectivityMetric()
    metric.dataset_meta = {"classes": ("background", "square")}
    gt, shifted = _square(10, 10, 20), _square(10, 12, 20)
    metric.process({}, [_sample(shifted, gt).to_dict(), _sample(gt, gt).to_dict()])
    out = metric.evaluate(2)
    # class 1 summed over both images: (72 + 144) / (216 + 144)
    assert out["BIoU.square"] == pytest.approx(100 * 216 / 360, abs=0.01)
    assert out["connErr"] == 0.0 and "bIoU" in out
