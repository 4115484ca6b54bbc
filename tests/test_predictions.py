"""Prediction pictures: palette, boundary band, the saved PNGs, the metric that saves them, and
the Figure 5/6 grid of the HTML report (its images are self-contained and decode)."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from PIL import Image

from suite.boundary_metrics import BoundaryConnectivityMetric
from suite.predictions import boundary_band, colorize, outline, sample_names, save_sample
from suite.report.html import predictions_html, section_html
from suite.report.layout import build_layout
from suite.report.synthetic import result_rows

PALETTE = [[0, 0, 0], [200, 0, 0], [0, 200, 0]]


def _square(size: int = 32) -> np.ndarray:
    label = np.zeros((size, size), np.int64)
    label[8:24, 8:24] = 1
    return label


def test_colorize_band_and_outline():
    label = _square()
    label[0, 0] = 255
    rgb = colorize(label, PALETTE)
    assert rgb.shape == (32, 32, 3) and rgb[10, 10].tolist() == [200, 0, 0]
    assert rgb[0, 0].tolist() == [0, 0, 0]  # ignored: black
    band = boundary_band(label, d=1)
    assert band[8, 8] and band[8, 15] and not band[12, 12]
    assert band[0, 5]  # the image border is a contour of the background
    light = outline(rgb, band)
    assert light[8, 8].tolist() == [230, 140, 140] and light[12, 12].tolist() == [200, 0, 0]


def test_save_sample_writes_three_small_pngs(tmp_path):
    img = tmp_path / "x.jpg"
    Image.fromarray(np.full((600, 300, 3), 90, np.uint8)).save(img)
    label = np.zeros((600, 300), np.int64)
    label[100:500, 50:250] = 2
    save_sample(tmp_path / "p", "00_x", str(img), label, label, PALETTE)
    for kind in ("image", "gt", "pred"):
        with Image.open(tmp_path / "p" / f"00_x_{kind}.png") as im:
            assert im.size == (128, 256)  # longer side scaled to 256
    assert sample_names(tmp_path / "p") == ["00_x"]
    assert sample_names(tmp_path / "none") == []


def _sample(pred: np.ndarray, gt: np.ndarray, path: str) -> dict:
    s = SegDataSample()
    s.pred_sem_seg = PixelData(data=torch.as_tensor(pred)[None])
    s.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None])
    s.set_metainfo({"img_path": path})
    return s.to_dict()


def test_metric_saves_the_first_images_of_each_pass(tmp_path):
    out = tmp_path / "predictions"
    metric = BoundaryConnectivityMetric(prediction_dir=str(out), num_images=2)
    metric.dataset_meta = {"classes": ("a", "b", "c"), "palette": PALETTE}
    gt = _square()
    metric.process({}, [_sample(gt, gt, f"/nowhere/img{i}.jpg") for i in range(3)])
    metric.evaluate(3)
    assert sample_names(out) == ["00_img0", "01_img1"]
    with Image.open(out / "00_img0_image.png") as im:  # unreadable input: a black picture
        assert im.size == (32, 32)


def _store(tmp_path) -> pd.DataFrame:
    """Student, BCD and teacher on VOC, each with its own predictions folder."""
    parts = []
    gt = _square()
    for row, shift in (("student", 3), ("bcd", 1), ("teacher", 0)):
        folder = tmp_path / row / "predictions"
        pred = np.roll(gt, shift, axis=1)
        for i in range(5):
            save_sample(folder, f"{i:02d}_im{i}", "", pred, gt, PALETTE)
        parts.append(result_rows("table3", row, "voc2012", [50.0], predictions_dir=str(folder)))
    return pd.concat(parts, ignore_index=True)


def test_html_grid_images_decode_in_figure_order(tmp_path):
    lay = build_layout("table3", _store(tmp_path))
    text = predictions_html(lay)
    assert 'id="predictions-table3-voc2012"' in text
    heads = re.findall(r"<th>([^<]*)</th>", text)
    assert heads == ["Image", "Ground truth (band)", "Student PSPNet-18", "BCD",
                     "Teacher PSPNet-101"]
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(uris) == 4 * 5  # 4 images (the limit) x (image, GT, 3 rows)
    for uri in uris:
        with Image.open(io.BytesIO(base64.b64decode(uri))) as im:
            im.load()
            assert im.size == (32, 32)
    assert 'alt="ground truth: 00_im0"' in text
    assert "predictions-table3" in section_html(lay)


def test_no_grid_without_pictures():
    lay = build_layout("table3", result_rows("table3", "student", "voc2012", [50.0]))
    assert predictions_html(lay) == ""
