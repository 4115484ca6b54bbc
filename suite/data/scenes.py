"""Scene composers: one image and its label map per call, for each dataset's flavour.

* :func:`voc_scene`: a cluttered, textured background (class 0, possibly two regions and
  background "clutter" shapes that are also class 0) with 2-4 touching/occluding objects of
  the 20 VOC classes, each class with its own shape family (bicycles with thin frames, chairs
  and tables on thin legs, boats with thin masts, persons with thin arms, ...).
* :func:`cityscapes_scene`: a street in perspective: sky, building facades and trees, a
  sidewalk, a road, terrain strips, fences, thin poles carrying signs and traffic lights,
  vehicles, persons and riders on bikes sorted far-to-near, and an ego-vehicle hood (ignored).
* :func:`stuff_scene`: ADE20K / COCO-Stuff style indoor or outdoor scenes: a top stuff class
  (wall/sky), an optional ceiling band or skyline silhouette, a bottom stuff class (floor,
  road, grass, water ...) with a wavy boundary, sometimes a second ground class, an optional
  unlabeled ("other") region, and 2-5 things sampled with a long-tailed class frequency.

Every composer takes a seeded :class:`numpy.random.Generator` and returns ``(image, label)``:
``uint8`` arrays of shape ``(h, w, 3)`` and ``(h, w)`` holding the *on-disk* label values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from suite.data.shapes import FAMILIES, GENERIC_FAMILIES, THIN_FAMILIES
from suite.data.textures import Appearance, Canvas, class_appearance, random_appearance

_FAMILY_ASPECT: dict[str, tuple[float, float]] = {
    "vehicle": (1.4, 2.8),
    "fence": (1.3, 2.4),
    "legs": (0.8, 1.7),
    "bottle": (0.6, 1.1),
    "pole": (0.8, 1.2),
    "plane": (1.2, 2.0),
    "mast": (0.9, 1.6),
}


@dataclass(frozen=True)
class ClassStyle:
    """How one class looks: on-disk label value, appearance, shape family, aspect ratio."""

    value: int
    app: Appearance
    family: str
    aspect: float

    @property
    def thin(self) -> bool:
        """Whether objects of this class always have a thin part."""
        return self.family in THIN_FAMILIES


def make_styles(
    num_classes: int,
    value_offset: int,
    families: dict[int, str],
    hue_offset: float,
    aspects: dict[int, float] | None = None,
) -> list[ClassStyle]:
    """Styles of classes ``0..num_classes-1`` (label value = class index + ``value_offset``)."""
    aspects = aspects or {}
    styles = []
    for c in range(num_classes):
        fam = families.get(c, GENERIC_FAMILIES[(c * 7) % len(GENERIC_FAMILIES)])
        lo, hi = _FAMILY_ASPECT.get(fam, (0.6, 1.6))
        frac = (c * 0.7548776662466927 + 0.3) % 1.0
        aspect = aspects.get(c, lo + (hi - lo) * frac)
        styles.append(ClassStyle(c + value_offset, class_appearance(c, hue_offset), fam, aspect))
    return styles


def draw_object(canvas: Canvas, style: ClassStyle, cx: float, cy: float, s: float,
                family: str | None = None) -> np.ndarray:
    """Draw one object of ``style`` and paint it; returns its mask (before later occlusion)."""
    layer, draw = canvas.new_layer()
    fam = FAMILIES[family or style.family]
    fam(draw, cx, cy, s, style.aspect, canvas.thin_width(), canvas.rng)
    return canvas.paint_layer(layer, style.value, style.app)


def _wavy_boundary(rng: np.random.Generator, w: int, y0: float, amp: float) -> list[float]:
    xs = np.linspace(0.0, w, 9)
    phase = rng.uniform(0, 2 * math.pi)
    lam = rng.uniform(0.6, 1.6) * w
    ys = y0 + amp * np.sin(2 * math.pi * xs / lam + phase) + rng.normal(0.0, amp * 0.3, xs.size)
    return [float(y) for y in ys]


def _fill_below(canvas: Canvas, ys: list[float], value: int, app: Appearance) -> np.ndarray:
    layer, draw = canvas.new_layer()
    xs = np.linspace(0.0, canvas.w, len(ys))
    pts = [(float(x), y) for x, y in zip(xs, ys)] + [(canvas.w + 1.0, canvas.h + 1.0),
                                                     (-1.0, canvas.h + 1.0)]
    draw.polygon(pts, fill=255)
    return canvas.paint_layer(layer, value, app)


def _fill_above(canvas: Canvas, ys: list[float], value: int, app: Appearance) -> np.ndarray:
    layer, draw = canvas.new_layer()
    xs = np.linspace(0.0, canvas.w, len(ys))
    pts = [(float(x), y) for x, y in zip(xs, ys)] + [(canvas.w + 1.0, -1.0), (-1.0, -1.0)]
    draw.polygon(pts, fill=255)
    return canvas.paint_layer(layer, value, app)


def _skyline(canvas: Canvas, y_base: float, value: int, app: Appearance) -> np.ndarray:
    """A silhouette along the horizon: building steps or smooth bumps (mountains, trees)."""
    rng, w, h = canvas.rng, canvas.w, canvas.h
    layer, draw = canvas.new_layer()
    pts: list[tuple[float, float]] = [(-1.0, y_base)]
    x = -1.0
    steps = rng.random() < 0.5
    while x < w:
        top = y_base - rng.uniform(0.08, 0.35) * h
        nx = x + rng.uniform(0.08, 0.25) * w
        if steps:
            pts += [(x, top), (nx, top)]
        else:
            pts += [((x + nx) / 2.0, top)]
        x = nx
    pts += [(w + 1.0, y_base), (w + 1.0, y_base + 2.0), (-1.0, y_base + 2.0)]
    draw.polygon(pts, fill=255)
    return canvas.paint_layer(layer, value, app)


def _other_region(canvas: Canvas, value: int) -> None:
    """An unlabeled region of arbitrary look (ADE "other", COCO-Stuff "unlabeled")."""
    rng = canvas.rng
    layer, draw = canvas.new_layer()
    s = rng.uniform(0.08, 0.2) * min(canvas.h, canvas.w)
    fam = FAMILIES["poly" if rng.random() < 0.5 else "box"]
    fam(draw, rng.uniform(0, canvas.w), rng.uniform(0, canvas.h), s, rng.uniform(0.5, 2.0), 2, rng)
    canvas.paint_layer(layer, value, random_appearance(rng))


def _place_things(
    canvas: Canvas,
    styles: list[ClassStyle],
    n: int,
    y_range: tuple[float, float],
    s_range: tuple[float, float],
    touch_p: float = 0.55,
    thin_p: float = 0.85,
    distinct: bool = True,
    weights: np.ndarray | None = None,
) -> None:
    """Place ``n`` objects (painter's order), often touching/occluding the previous one.

    With probability ``thin_p`` one of them is of a class with a thin part.
    """
    rng = canvas.rng
    if not styles:
        return
    p = None if weights is None else weights / weights.sum()
    idx = rng.choice(len(styles), size=n, replace=not distinct or n > len(styles), p=p)
    chosen = [styles[i] for i in idx]
    thin_styles = [st for st in styles if st.thin]
    if thin_styles and not any(st.thin for st in chosen) and rng.random() < thin_p:
        chosen[int(rng.integers(n))] = thin_styles[int(rng.integers(len(thin_styles)))]
    m = min(canvas.h, canvas.w)
    prev: tuple[float, float, float] | None = None
    for st in chosen:
        s = float(rng.uniform(*s_range)) * m
        if prev is not None and rng.random() < touch_p:
            px, py, ps = prev
            side = 1.0 if rng.random() < 0.5 else -1.0
            cx = px + side * (ps + s) * float(rng.uniform(0.45, 0.9))
            cy = py + float(rng.uniform(-0.3, 0.3)) * s
        else:
            cx = float(rng.uniform(0.12, 0.88)) * canvas.w
            cy = float(rng.uniform(*y_range)) * canvas.h
        cx = float(np.clip(cx, 0.05 * canvas.w, 0.95 * canvas.w))
        cy = float(np.clip(cy, 0.1 * canvas.h, 0.92 * canvas.h))
        draw_object(canvas, st, cx, cy, s)
        prev = (cx, cy, s)


# --------------------------------------------------------------------------- Pascal VOC
VOC_FAMILIES: dict[int, str] = {
    1: "plane", 2: "wheels", 3: "bird", 4: "mast", 5: "bottle", 6: "vehicle", 7: "vehicle",
    8: "quadruped", 9: "legs", 10: "quadruped", 11: "legs", 12: "quadruped", 13: "quadruped",
    14: "wheels", 15: "figure", 16: "plant", 17: "blob", 18: "box", 19: "vehicle", 20: "screen",
}
VOC_ASPECTS: dict[int, float] = {2: 1.0, 6: 2.4, 7: 1.6, 8: 0.8, 10: 1.5, 11: 1.7, 12: 1.0,
                                 13: 1.8, 14: 1.6, 18: 2.2, 19: 3.2}
VOC_STYLES = make_styles(21, 0, VOC_FAMILIES, hue_offset=0.05, aspects=VOC_ASPECTS)


def voc_scene(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A VOC-like image: textured class-0 background, 2-4 objects. No 255 border here."""
    cv = Canvas(h, w, rng)
    full = np.ones((h, w), dtype=bool)
    cv.paint(full, 0, random_appearance(rng, max_saturation=0.35))
    if rng.random() < 0.6:  # a second background region (wall/floor, sky/ground ...)
        ys = _wavy_boundary(rng, w, rng.uniform(0.35, 0.75) * h, rng.uniform(0.0, 0.08) * h)
        _fill_below(cv, ys, 0, random_appearance(rng, max_saturation=0.35))
    for _ in range(int(rng.integers(0, 3))):  # background clutter, still class 0
        _other_region(cv, 0)
    n = int(rng.choice([2, 3, 3, 4]))
    _place_things(cv, VOC_STYLES[1:], n, (0.3, 0.75), (0.14, 0.3))
    return cv.finish(), cv.label


def voc_border(label: np.ndarray, ignore: int = 255) -> np.ndarray:
    """VOC's ``SegmentationClass`` convention: a 1 px void (255) border around objects.

    Only background pixels next to an object become 255, so thin object parts survive.
    """
    obj = label != 0
    near = np.zeros_like(obj)
    near[1:, :] |= obj[:-1, :]
    near[:-1, :] |= obj[1:, :]
    near[:, 1:] |= obj[:, :-1]
    near[:, :-1] |= obj[:, 1:]
    out = label.copy()
    out[near & ~obj] = ignore
    return out


# --------------------------------------------------------------------------- Cityscapes
(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TLIGHT, TSIGN, VEGETATION, TERRAIN, SKY,
 PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE) = range(19)
#: Internal label value of the ego vehicle (trainId 255, labelId 1).
EGO_VEHICLE = 254
#: Cityscapes labelId of each trainId (``CITYSCAPES_LABEL_IDS[train_id]``).
CITYSCAPES_LABEL_IDS: tuple[int, ...] = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26,
                                         27, 28, 31, 32, 33)
CITYSCAPES_FAMILIES: dict[int, str] = {
    FENCE: "fence", POLE: "pole", TLIGHT: "box", TSIGN: "disc", VEGETATION: "tree",
    PERSON: "figure", RIDER: "figure", CAR: "vehicle", TRUCK: "vehicle", BUS: "vehicle",
    TRAIN: "vehicle", MOTORCYCLE: "wheels", BICYCLE: "wheels",
}
CITYSCAPES_ASPECTS: dict[int, float] = {CAR: 1.6, TRUCK: 2.0, BUS: 2.8, TRAIN: 4.0,
                                        MOTORCYCLE: 1.6, BICYCLE: 1.0, TLIGHT: 0.35,
                                        VEGETATION: 1.3, PERSON: 0.9, RIDER: 1.1}
CITYSCAPES_STYLES = make_styles(19, 0, CITYSCAPES_FAMILIES, hue_offset=0.31,
                                aspects=CITYSCAPES_ASPECTS)


def cityscapes_scene(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A street scene; label values are trainIds 0-18 and :data:`EGO_VEHICLE`."""
    cv = Canvas(h, w, rng)
    st = CITYSCAPES_STYLES
    yh = float(rng.uniform(0.36, 0.5)) * h  # horizon
    xv = float(rng.uniform(0.35, 0.65)) * w  # vanishing point
    cv.paint(np.ones((h, w), dtype=bool), SKY, st[SKY].app)
    below = np.zeros((h, w), dtype=bool)
    below[int(yh):, :] = True
    cv.paint(below, SIDEWALK, st[SIDEWALK].app)
    # Facades on both sides, converging to the vanishing point.
    for side in (-1.0, 1.0):
        if rng.random() < 0.15:
            continue
        edge = 0.0 if side < 0 else float(w)
        inner = xv + side * rng.uniform(0.05, 0.15) * w
        top_e = rng.uniform(-0.1, 0.2) * h
        bot_e = rng.uniform(0.62, 0.8) * h
        layer, draw = cv.new_layer()
        draw.polygon([(edge, top_e), (inner, yh - rng.uniform(0.08, 0.2) * h), (inner, yh + 1),
                      (edge, bot_e)], fill=255)
        value = WALL if rng.random() < 0.15 else BUILDING
        cv.paint_layer(layer, value, st[value].app)
        if rng.random() < 0.5:  # terrain strip along the facade foot
            layer, draw = cv.new_layer()
            draw.polygon([(edge, bot_e - 1), (inner, yh + 1), (inner, yh + 2),
                          (edge, bot_e + rng.uniform(0.04, 0.1) * h)], fill=255)
            cv.paint_layer(layer, TERRAIN, st[TERRAIN].app)
    # Road: a trapezoid from the vanishing point.
    lo = rng.uniform(-0.1, 0.2) * w
    hi = rng.uniform(0.8, 1.1) * w
    layer, draw = cv.new_layer()
    draw.polygon([(xv - 1.5, yh), (xv + 1.5, yh), (hi, h + 1.0), (lo, h + 1.0)], fill=255)
    cv.paint_layer(layer, ROAD, st[ROAD].app)

    def ground_scale(y: float) -> float:
        return max(0.08, (y - yh) / max(h - yh, 1.0))

    def sidewalk_x(y: float) -> float:
        t = ground_scale(y)
        left = xv + (lo - xv) * t
        right = xv + (hi - xv) * t
        if rng.random() < 0.5:
            return float(rng.uniform(0.0, max(left - 1.0, 1.0)))
        return float(rng.uniform(min(right + 1.0, w - 1.0), w))

    def road_x(y: float) -> float:
        t = ground_scale(y)
        return float(rng.uniform(xv + (lo - xv) * t * 0.8, xv + (hi - xv) * t * 0.8))

    objects: list[tuple[float, int, float, float, float]] = []  # (ground y, cls, cx, s, aux)
    for _ in range(int(rng.integers(0, 3))):  # trees (trunk + crown) on the sidewalk
        yg = float(rng.uniform(yh + 0.15 * (h - yh), h * 0.9))
        objects.append((yg, VEGETATION, sidewalk_x(yg), 0.35 * h * ground_scale(yg) + 4, 0.0))
    if rng.random() < 0.5:
        yg = float(rng.uniform(yh + 0.2 * (h - yh), h * 0.85))
        objects.append((yg, FENCE, sidewalk_x(yg), 0.12 * w * ground_scale(yg) + 3, 0.0))
    for _ in range(int(rng.integers(1, 4))):  # poles, most carrying a sign or a light
        yg = float(rng.uniform(yh + 0.1 * (h - yh), h * 0.95))
        aux = float(rng.choice([0.0, TSIGN, TSIGN, TLIGHT]))
        objects.append((yg, POLE, sidewalk_x(yg), 0.45 * h * ground_scale(yg) + 5, aux))
    for _ in range(int(rng.integers(1, 4))):
        yg = float(rng.uniform(yh + 0.15 * (h - yh), h))
        cls = int(rng.choice([CAR, CAR, CAR, CAR, TRUCK, BUS, TRAIN]))
        objects.append((yg, cls, road_x(yg), 0.3 * h * ground_scale(yg) + 3, 0.0))
    for _ in range(int(rng.integers(0, 3))):
        yg = float(rng.uniform(yh + 0.15 * (h - yh), h))
        objects.append((yg, PERSON, sidewalk_x(yg), 0.3 * h * ground_scale(yg) + 3, 0.0))
    if rng.random() < 0.5:
        yg = float(rng.uniform(yh + 0.2 * (h - yh), h))
        cls = BICYCLE if rng.random() < 0.6 else MOTORCYCLE
        objects.append((yg, cls, road_x(yg), 0.25 * h * ground_scale(yg) + 3, float(RIDER)))
    objects.sort(key=lambda o: o[0])  # far to near: painter's order
    for yg, cls, cx, s, aux in objects:
        if cls == POLE:
            draw_object(cv, st[POLE], cx, yg - s, s)
            if aux:
                a = int(aux)
                hs = max(2.0, s * 0.18)
                draw_object(cv, st[a], cx + (hs if a == TSIGN else 0.0), yg - 2 * s, hs)
        elif cls in (BICYCLE, MOTORCYCLE):
            draw_object(cv, st[cls], cx, yg - s, s)
            if aux:
                draw_object(cv, st[RIDER], cx, yg - 2.0 * s, s * 0.9)
        elif cls == VEGETATION:
            draw_object(cv, st[cls], cx, yg - s, s)
        else:
            draw_object(cv, st[cls], cx, yg - s * 0.7, s)
    if rng.random() < 0.7:  # the ego vehicle's hood (void)
        top = float(rng.uniform(0.88, 0.96)) * h
        layer, draw = cv.new_layer()
        draw.ellipse([-0.2 * w, top, 1.2 * w, top + 0.4 * h], fill=255)
        cv.paint_layer(layer, EGO_VEHICLE, Appearance((40, 40, 45), (70, 70, 80), "flat", 8.0, 0))
    return cv.finish(), cv.label


# --------------------------------------------------------------------------- ADE / COCO-Stuff
@dataclass(frozen=True)
class StuffSceneSpec:
    """Class pools (class indices, 0-based) of an ADE20K / COCO-Stuff style scene."""

    name: str
    num_classes: int
    families: dict[int, str]
    indoor_top: tuple[int, ...]
    indoor_ceiling: tuple[int, ...]
    indoor_bottom: tuple[int, ...]
    outdoor_top: tuple[int, ...]
    outdoor_middle: tuple[int, ...]
    outdoor_bottom: tuple[int, ...]
    zipf: float  # long-tail exponent of the thing frequencies (classes in index order)
    hue_offset: float
    styles: list[ClassStyle] = field(default_factory=list, compare=False)
    things: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        styles = make_styles(self.num_classes, 1, self.families, self.hue_offset)
        object.__setattr__(self, "styles", styles)
        stuff = set(self.indoor_top + self.indoor_ceiling + self.indoor_bottom + self.outdoor_top
                    + self.outdoor_middle + self.outdoor_bottom)
        things = tuple(c for c in range(self.num_classes) if c not in stuff)
        object.__setattr__(self, "things", things)


ADE_SPEC = StuffSceneSpec(
    name="ade20k",
    num_classes=150,
    families={
        4: "tree", 8: "box", 12: "figure", 14: "box", 15: "legs", 17: "plant", 19: "legs",
        20: "vehicle", 22: "box", 23: "box", 24: "box", 27: "box", 30: "box", 31: "legs",
        32: "fence", 33: "legs", 34: "blob", 35: "box", 36: "pole", 38: "fence", 39: "blob",
        42: "bottle", 43: "screen", 53: "grid", 56: "legs", 64: "legs", 66: "plant", 69: "legs",
        72: "tree", 74: "screen", 75: "legs", 76: "mast", 80: "vehicle", 82: "disc",
        83: "vehicle", 85: "pole", 87: "pole", 89: "screen", 90: "plane", 93: "pole",
        95: "fence", 98: "bottle", 102: "vehicle", 103: "mast", 110: "legs", 112: "handle",
        115: "handle", 116: "wheels", 119: "disc", 125: "handle", 126: "quadruped",
        127: "wheels", 135: "bottle", 136: "pole", 138: "bottle", 139: "cross", 142: "disc",
        143: "screen", 147: "bottle", 148: "ring", 149: "kite",
    },
    indoor_top=(0, 0, 0, 18),  # wall (mostly), curtain
    indoor_ceiling=(5,),  # ceiling
    indoor_bottom=(3, 3, 3, 28),  # floor, rug
    outdoor_top=(2,),  # sky
    outdoor_middle=(1, 16, 25, 48, 68, 84),  # building, mountain, house, skyscraper, hill, tower
    outdoor_bottom=(6, 9, 11, 13, 21, 26, 29, 46, 52, 60, 91, 94, 128),
    zipf=0.9,
    hue_offset=0.6,
)

COCO_STUFF_SPEC = StuffSceneSpec(
    name="coco_stuff10k",
    num_classes=171,
    families={
        0: "figure", 1: "wheels", 2: "vehicle", 3: "wheels", 4: "plane", 5: "vehicle",
        6: "vehicle", 7: "vehicle", 8: "mast", 9: "pole", 10: "bottle", 11: "pole", 12: "pole",
        13: "legs", 14: "bird", 15: "quadruped", 16: "quadruped", 17: "quadruped",
        18: "quadruped", 19: "quadruped", 20: "quadruped", 21: "quadruped", 22: "quadruped",
        23: "quadruped", 24: "handle", 25: "kite", 26: "handle", 27: "poly", 28: "handle",
        29: "disc", 30: "stick", 31: "box", 32: "disc", 33: "kite", 34: "stick", 35: "blob",
        36: "box", 37: "blob", 38: "ring", 39: "bottle", 40: "bottle", 41: "handle",
        42: "stick", 43: "stick", 44: "stick", 45: "disc", 46: "blob", 47: "disc", 48: "poly",
        49: "disc", 50: "blob", 51: "stick", 52: "blob", 53: "poly", 54: "ring", 55: "box",
        56: "legs", 57: "box", 58: "plant", 59: "box", 60: "legs", 61: "bottle", 62: "screen",
        63: "screen", 64: "blob", 65: "box", 66: "grid", 67: "box", 68: "box", 69: "box",
        70: "box", 71: "handle", 72: "box", 73: "box", 74: "ring", 75: "bottle", 76: "stick",
        77: "blob", 78: "handle", 79: "stick", 80: "box", 81: "blob", 82: "stick", 83: "poly",
        86: "box", 87: "grid", 88: "box", 92: "blob", 93: "blob", 95: "box", 96: "box",
        97: "box", 98: "legs", 100: "box", 101: "fence", 107: "plant", 109: "blob",
        110: "disc", 111: "box", 117: "blob", 118: "disc", 120: "poly", 121: "box",
        125: "poly", 126: "grid", 127: "box", 129: "blob", 130: "plant", 131: "poly",
        134: "fence", 138: "blob", 141: "blob", 144: "box", 149: "grid", 150: "blob",
        151: "stick", 152: "cross", 153: "legs", 154: "poly", 155: "blob", 156: "box",
        158: "blob", 167: "disc", 168: "box", 169: "box", 170: "stick",
    },
    indoor_top=(159, 160, 161, 161, 162, 163, 164, 165),  # wall-*
    indoor_ceiling=(90, 91),  # ceiling-other, ceiling-tile
    indoor_bottom=(89, 102, 103, 103, 104, 105, 106, 119, 140),  # carpet, floor-*, mat, rug
    outdoor_top=(145, 145, 94, 108),  # sky-other, clouds, fog
    outdoor_middle=(84, 85, 115, 116, 123, 139, 146, 157),  # building, bush, hill, house, ...
    outdoor_bottom=(99, 112, 113, 114, 122, 124, 128, 132, 133, 135, 136, 137, 142, 143, 147,
                    166),
    zipf=0.5,
    hue_offset=0.85,
)


def stuff_scene(spec: StuffSceneSpec, h: int, w: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An ADE20K / COCO-Stuff style scene; label 0 = other/unlabeled, class ``c`` = ``c+1``."""
    cv = Canvas(h, w, rng)
    st = spec.styles

    def pick(pool: tuple[int, ...]) -> ClassStyle:
        return st[pool[int(rng.integers(len(pool)))]]

    full = np.ones((h, w), dtype=bool)
    yh = float(rng.uniform(0.4, 0.68)) * h
    if rng.random() < 0.5:  # indoor
        top = pick(spec.indoor_top)
        cv.paint(full, top.value, top.app)
        if rng.random() < 0.45:
            ceil = pick(spec.indoor_ceiling)
            y0 = float(rng.uniform(0.08, 0.22)) * h
            _fill_above(cv, [y0 + rng.uniform(-0.05, 0.05) * h for _ in range(3)], ceil.value,
                        ceil.app)
        bottom = pick(spec.indoor_bottom)
        _fill_below(cv, _wavy_boundary(rng, w, yh, 0.02 * h), bottom.value, bottom.app)
    else:
        top = pick(spec.outdoor_top)
        cv.paint(full, top.value, top.app)
        if rng.random() < 0.6:
            mid = pick(spec.outdoor_middle)
            _skyline(cv, yh, mid.value, mid.app)
        bottom = pick(spec.outdoor_bottom)
        _fill_below(cv, _wavy_boundary(rng, w, yh, 0.06 * h), bottom.value, bottom.app)
        if rng.random() < 0.3:  # a second ground class (path on grass, water by sand, ...)
            patch = pick(spec.outdoor_bottom)
            _fill_below(cv, _wavy_boundary(rng, w, yh + rng.uniform(0.1, 0.3) * h, 0.08 * h),
                        patch.value, patch.app)
    if rng.random() < 0.4:
        _other_region(cv, 0)
    things = [st[c] for c in spec.things]
    weights = 1.0 / (np.arange(len(things), dtype=np.float64) + 5.0) ** spec.zipf
    n = int(rng.integers(2, 6))
    _place_things(cv, things, n, (0.35, 0.8), (0.1, 0.26), weights=weights)
    return cv.finish(), cv.label


def ade20k_scene(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An ADE20K scene (label 0 = other, classes 1..150)."""
    return stuff_scene(ADE_SPEC, h, w, rng)


def coco_stuff_scene(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A COCO-Stuff 10K scene (label 0 = unlabeled, classes 1..171)."""
    return stuff_scene(COCO_STUFF_SPEC, h, w, rng)
