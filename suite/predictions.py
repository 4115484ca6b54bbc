"""Prediction pictures of a cell: a fixed set of validation images, saved as small PNGs.

During the final validation :class:`suite.boundary_metrics.BoundaryConnectivityMetric` hands
the first ``num_images`` validation samples (the validation order is fixed, so every cell of a
dataset shows the same images) to :func:`save_sample`, which writes into the cell's
``predictions/`` folder (longer side at most :data:`MAX_SIDE` pixels)

* ``<name>_image.png``: the input image;
* ``<name>_gt.png``: the ground truth in the dataset's palette, with its Boundary IoU band
  (the pixels within d of a class contour, :func:`suite.boundary_metrics.inner_band`) lightened
  so that boundary errors show;
* ``<name>_pred.png``: the cell's prediction in the same palette (ignored pixels black);

and logs the prediction to the run's visualizer (W&B: ``pred/<name>``). The HTML report lays
them out as the paper's Figures 5 and 6 (:func:`suite.report.html.predictions_html`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from suite.boundary_bands import band_width, inner_band

BAND_ALPHA = 0.55  # how far the band is blended towards white
KINDS: tuple[str, ...] = ("image", "gt", "pred")
MAX_SIDE = 256  # pictures are thumbnails: the longer side is scaled down to this


def colorize(label: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int = 255
             ) -> np.ndarray:
    """An (H, W, 3) uint8 picture of a label map in ``palette``; ignored/unknown pixels black."""
    label = np.asarray(label).astype(np.int64)
    table = np.zeros((max(len(palette), 1) + 1, 3), dtype=np.uint8)
    table[:len(palette)] = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    index = np.where((label >= 0) & (label < len(palette)) & (label != ignore_index), label,
                     len(table) - 1)
    return table[index]


def boundary_band(label: np.ndarray, d: int, ignore_index: int = 255) -> np.ndarray:
    """The union over classes of each ground-truth mask's inner band of width ``d``."""
    label = np.asarray(label)
    band = np.zeros(label.shape, dtype=bool)
    for c in np.unique(label):
        if c != ignore_index:
            band |= inner_band(label == c, d)
    return band


def outline(rgb: np.ndarray, band: np.ndarray, alpha: float = BAND_ALPHA) -> np.ndarray:
    """``rgb`` with the ``band`` pixels blended towards white by ``alpha``."""
    out = rgb.astype(np.float32)
    out[band] = out[band] * (1 - alpha) + 255 * alpha
    return out.round().astype(np.uint8)


def sample_name(img_path: str, index: int) -> str:
    """``03_2008_000123``: the sample's position and file stem (sorts in validation order)."""
    return f"{index:02d}_{Path(str(img_path)).stem}"


def _image(img_path: str, shape: tuple[int, int]) -> np.ndarray:
    """The input image as RGB at the label's size (black when it cannot be read)."""
    try:
        with Image.open(img_path) as im:
            img = im.convert("RGB")
            if img.size != (shape[1], shape[0]):
                img = img.resize((shape[1], shape[0]), Image.BILINEAR)
            return np.asarray(img)
    except (OSError, ValueError):
        return np.zeros((*shape, 3), dtype=np.uint8)


def save_sample(folder: Path, name: str, img_path: str, pred: np.ndarray, label: np.ndarray,
                palette: Sequence[Sequence[int]], ignore_index: int = 255,
                ratio: float | None = None) -> np.ndarray:
    """Write the three PNGs of one sample (module docstring); returns the prediction picture."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    label = np.asarray(label)
    d = band_width(label.shape) if ratio is None else band_width(label.shape, ratio)
    gt = outline(colorize(label, palette, ignore_index), boundary_band(label, d, ignore_index))
    shown = np.where(label == ignore_index, ignore_index, np.asarray(pred))
    picture = colorize(shown, palette, ignore_index)
    _save(_image(img_path, label.shape), folder / f"{name}_image.png", Image.BILINEAR)
    _save(gt, folder / f"{name}_gt.png", Image.NEAREST)
    _save(picture, folder / f"{name}_pred.png", Image.NEAREST)
    return picture


def _save(rgb: np.ndarray, path: Path, resample: int) -> None:
    """Save an RGB array as PNG, its longer side at most :data:`MAX_SIDE` pixels."""
    img = Image.fromarray(rgb)
    scale = MAX_SIDE / max(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         resample)
    img.save(path, optimize=True)


def log_image(name: str, picture: np.ndarray) -> None:
    """Add the picture to the current mmengine visualizer (its W&B backend logs it)."""
    try:
        from mmengine.visualization import Visualizer

        Visualizer.get_current_instance().add_image(f"pred/{name}", picture)
    except Exception:  # noqa: BLE001 - a picture never fails a cell
        return


def sample_names(folder: Path) -> list[str]:
    """The names of the samples with a prediction in ``folder``, in validation order."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name[:-len("_pred.png")] for p in folder.glob("*_pred.png"))
