"""Class appearances and the painting canvas of the synthetic scenes.

Every class has a characteristic :class:`Appearance`: two colours (a hue with a darker or
lighter partner), a texture pattern (stripes, checker, dots, grain, waves, rings, flat,
gradient), a period and an orientation. Each painted instance jitters these (brightness,
colour offset, period, angle, phase), so that a class is recognisable by a small CNN from its
hue *and* texture while instances still vary. :class:`Canvas` composes layers in painter's
order: each :meth:`Canvas.paint` writes a class index into the label map and that class's
texture into the image under a boolean mask; :meth:`Canvas.finish` adds a smooth illumination
field and sensor noise.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

PATTERNS: tuple[str, ...] = (
    "stripes",
    "checker",
    "dots",
    "grain",
    "waves",
    "rings",
    "flat",
    "gradient",
)

_GOLDEN = 0.6180339887498949


@dataclass(frozen=True)
class Appearance:
    """The look of one class (or of one unlabeled region).

    Attributes:
        color1: RGB (0-255) of the pattern's low phase.
        color2: RGB (0-255) of the pattern's high phase.
        pattern: One of :data:`PATTERNS`.
        period: Pattern period in pixels at the reference scale (96 px images).
        angle: Pattern orientation in radians.
    """

    color1: tuple[float, float, float]
    color2: tuple[float, float, float]
    pattern: str
    period: float
    angle: float


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (r * 255.0, g * 255.0, b * 255.0)


def class_appearance(cls: int, offset: float = 0.0) -> Appearance:
    """Characteristic appearance of class number ``cls`` (deterministic, seed-independent).

    Hues follow the golden-ratio sequence (neighbouring class numbers get far-apart hues);
    saturation, value, pattern and period cycle with co-prime periods so that two classes
    rarely share more than one attribute.
    """
    hue = (offset + cls * _GOLDEN) % 1.0
    sat = (0.9, 0.55, 0.75)[cls % 3]
    val = (0.9, 0.6, 0.78, 0.48, 0.68)[cls % 5]
    pattern = PATTERNS[(cls * 3 + cls // 8) % len(PATTERNS)]
    period = (3.0, 5.0, 8.0, 4.0, 6.5, 11.0, 3.5)[cls % 7]
    angle = ((cls * 37) % 12) * math.pi / 12.0
    # The partner colour: shifted hue, and darker for bright classes / lighter for dark ones.
    dv = -0.38 if val > 0.62 else 0.32
    color2 = _hsv(hue + (0.05 if cls % 2 else -0.05), sat * 0.8, val + dv)
    return Appearance(_hsv(hue, sat, val), color2, pattern, period, angle)


def random_appearance(rng: np.random.Generator, max_saturation: float = 1.0) -> Appearance:
    """An arbitrary appearance, e.g. for background clutter or "other" regions."""
    hue = float(rng.random())
    sat = float(rng.uniform(0.0, max_saturation))
    val = float(rng.uniform(0.3, 0.9))
    c2 = _hsv(hue + rng.uniform(-0.1, 0.1), sat * rng.uniform(0.5, 1.0),
              val + rng.uniform(-0.35, 0.35))
    return Appearance(
        _hsv(hue, sat, val),
        c2,
        PATTERNS[int(rng.integers(len(PATTERNS)))],
        float(rng.uniform(3.0, 12.0)),
        float(rng.uniform(0.0, math.pi)),
    )


def block_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Uniform [0, 1) noise constant on ``cell``-sized blocks, shape ``(h, w)``."""
    c = max(1, int(round(cell)))
    small = rng.random((h // c + 2, w // c + 2), dtype=np.float32)
    oy, ox = int(rng.integers(c)), int(rng.integers(c))
    rows = (np.arange(h) + oy) // c
    cols = (np.arange(w) + ox) // c
    return small[rows[:, None], cols[None, :]]


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int = 4) -> np.ndarray:
    """Bilinearly upsampled noise in [0, 1], shape ``(h, w)`` (low frequency)."""
    small = (rng.random((cells, cells)) * 255.0).astype(np.uint8)
    up = Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(up, dtype=np.float32) / 255.0


class Canvas:
    """An image and its label map, painted layer by layer in painter's order."""

    def __init__(self, height: int, width: int, rng: np.random.Generator) -> None:
        self.h = height
        self.w = width
        self.rng = rng
        #: Pixels per reference pixel (the reference image is 96 px on its short side).
        self.scale = min(height, width) / 96.0
        self.img = np.zeros((height, width, 3), dtype=np.float32)
        self.label = np.zeros((height, width), dtype=np.uint8)
        yy, xx = np.mgrid[0:height, 0:width]
        self._yy = yy.astype(np.float32)
        self._xx = xx.astype(np.float32)

    # -- masks ---------------------------------------------------------------------------
    def new_layer(self) -> tuple[Image.Image, ImageDraw.ImageDraw]:
        """A blank mask image to draw a shape on (fill=255)."""
        im = Image.new("L", (self.w, self.h), 0)
        return im, ImageDraw.Draw(im)

    @staticmethod
    def mask_of(layer: Image.Image) -> np.ndarray:
        """Boolean mask of what was drawn on ``layer``."""
        return np.asarray(layer) > 0

    def thin_width(self, low: int = 1, high: int = 3) -> int:
        """A thin-structure line width: ``low``-``high`` px at the reference scale."""
        return max(1, int(round(int(self.rng.integers(low, high + 1)) * self.scale)))

    # -- painting ------------------------------------------------------------------------
    def texture(self, app: Appearance, ys: slice, xs: slice) -> np.ndarray:
        """Render one jittered instance of ``app`` on the window ``[ys, xs]``, (h, w, 3)."""
        rng = self.rng
        yy = self._yy[ys, xs]
        xx = self._xx[ys, xs]
        h, w = yy.shape
        period = max(2.0, app.period * self.scale * float(rng.uniform(0.85, 1.2)))
        ang = app.angle + float(rng.normal(0.0, 0.12))
        phase = float(rng.uniform(0.0, 2.0 * math.pi))
        ca, sa = math.cos(ang), math.sin(ang)
        u = xx * ca + yy * sa
        v = -xx * sa + yy * ca
        k = 2.0 * math.pi / period
        p = app.pattern
        if p == "stripes":
            t = 0.5 + 0.5 * np.tanh(2.5 * np.sin(k * u + phase))
        elif p == "checker":
            t = 0.5 + 0.5 * np.tanh(4.0 * np.sin(k * u + phase) * np.sin(k * v + phase * 0.7))
        elif p == "dots":
            t = (np.sin(k * u + phase) * np.sin(k * v + phase) > 0.35).astype(np.float32)
        elif p == "grain":
            t = block_noise(rng, h, w, period / 2.5)
        elif p == "waves":
            t = 0.5 + 0.5 * np.sin(k * (u + 0.3 * period * np.sin(k * 0.45 * v + phase)))
        elif p == "rings":
            cy = float(rng.uniform(yy[0, 0], yy[-1, 0] + 1))
            cx = float(rng.uniform(xx[0, 0], xx[0, -1] + 1))
            t = 0.5 + 0.5 * np.sin(k * np.hypot(yy - cy, xx - cx) + phase)
        elif p == "gradient":
            lo, hi = float(u.min()), float(u.max())
            t = (u - lo) / max(hi - lo, 1.0)
        else:  # flat: colour 1 with a faint blotchy shading
            t = 0.25 * block_noise(rng, h, w, period)
        t = t.astype(np.float32)[..., None]
        gain = float(rng.uniform(0.85, 1.15))
        shift = rng.normal(0.0, 6.0, size=3).astype(np.float32)
        c1 = np.asarray(app.color1, dtype=np.float32) * gain + shift
        c2 = np.asarray(app.color2, dtype=np.float32) * gain + shift
        return c1 * (1.0 - t) + c2 * t

    def paint(self, mask: np.ndarray, value: int, app: Appearance) -> np.ndarray:
        """Paint ``app`` under ``mask`` and write ``value`` into the label map.

        Returns the mask (convenient for chaining). An empty mask is a no-op.
        """
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return mask
        cols = np.flatnonzero(mask.any(axis=0))
        ys = slice(int(rows[0]), int(rows[-1]) + 1)
        xs = slice(int(cols[0]), int(cols[-1]) + 1)
        sub = mask[ys, xs]
        tex = self.texture(app, ys, xs)
        self.img[ys, xs][sub] = tex[sub]
        self.label[ys, xs][sub] = value
        return mask

    def paint_layer(self, layer: Image.Image, value: int, app: Appearance) -> np.ndarray:
        """:meth:`paint` with the mask of a drawn layer image."""
        return self.paint(self.mask_of(layer), value, app)

    def finish(self, noise_sigma: float | None = None) -> np.ndarray:
        """The final uint8 RGB image: illumination field, sensor noise, clipping."""
        rng = self.rng
        light = 0.85 + 0.3 * smooth_noise(rng, self.h, self.w, cells=3)
        img = self.img * light[..., None]
        sigma = float(rng.uniform(2.0, 6.0)) if noise_sigma is None else noise_sigma
        img += rng.normal(0.0, sigma, size=img.shape).astype(np.float32)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)
