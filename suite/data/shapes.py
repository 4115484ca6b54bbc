"""Shape families of the synthetic objects, drawn with PIL onto a mask layer.

A family is a function ``(draw, cx, cy, s, aspect, thin, rng) -> None`` that draws one object
centred near ``(cx, cy)`` with half-extent about ``s`` pixels, with ``fill=255``. ``aspect`` is a
class-specific width/height ratio and ``thin`` a line width of 1-3 px (at the default sizes)
for thin parts: poles, legs, spokes, masts, handles, stems, fence bars. Several families are
compositions (a table top on thin legs, two wheel rings joined by a thin frame, a figure with
thin arms), so that one class region has both a bulky and a thin part.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from PIL import ImageDraw

Point = tuple[float, float]
Family = Callable[
    [ImageDraw.ImageDraw, float, float, float, float, int, np.random.Generator], None
]

FILL = 255


def _rot(cx: float, cy: float, pts: Sequence[Point], angle: float) -> list[Point]:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def _ellipse(d: ImageDraw.ImageDraw, cx: float, cy: float, rx: float, ry: float) -> None:
    rx, ry = max(rx, 0.8), max(ry, 0.8)
    d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=FILL)


def _rect(d: ImageDraw.ImageDraw, x0: float, y0: float, x1: float, y1: float) -> None:
    d.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=FILL)


def _line(d: ImageDraw.ImageDraw, pts: Sequence[Point], width: int) -> None:
    d.line([(float(x), float(y)) for x, y in pts], fill=FILL, width=max(1, int(width)))


def _wh(s: float, aspect: float) -> tuple[float, float]:
    r = math.sqrt(max(aspect, 0.1))
    return s * r, s / r


def blob(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
         rng: np.random.Generator) -> None:
    """An irregular rotated ellipse (animals, rocks, bushes, food)."""
    rx, ry = _wh(s, aspect)
    n = 20
    ang = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    wob = 1.0 + 0.12 * np.sin(2 * ang + rng.uniform(0, 6.3)) + rng.normal(0.0, 0.05, n)
    pts = [(rx * w * math.cos(a), ry * w * math.sin(a)) for a, w in zip(ang, wob)]
    d.polygon(_rot(cx, cy, pts, float(rng.uniform(-0.6, 0.6))), fill=FILL)


def box(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
        rng: np.random.Generator) -> None:
    """A slightly rotated rectangle (sofas, cabinets, signs, books)."""
    rx, ry = _wh(s, aspect)
    pts = [(-rx, -ry), (rx, -ry), (rx, ry), (-rx, ry)]
    d.polygon(_rot(cx, cy, pts, float(rng.uniform(-0.25, 0.25))), fill=FILL)


def poly(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
         rng: np.random.Generator) -> None:
    """A convex-ish polygon with 3-6 corners."""
    rx, ry = _wh(s, aspect)
    n = int(rng.integers(3, 7))
    ang = np.sort(rng.uniform(0.0, 2.0 * math.pi, n))
    rad = rng.uniform(0.75, 1.1, n)
    d.polygon([(cx + rx * r * math.cos(a), cy + ry * r * math.sin(a)) for a, r in zip(ang, rad)],
              fill=FILL)


def disc(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
         rng: np.random.Generator) -> None:
    """A filled ellipse (balls, plates, clocks, signs)."""
    rx, ry = _wh(s * 0.8, aspect)
    _ellipse(d, cx, cy, rx, ry)


def ring(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
         rng: np.random.Generator) -> None:
    """An elliptic ring of width 2-4 px (tyres, hoops, rackets)."""
    rx, ry = _wh(s * 0.85, aspect)
    d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], outline=FILL, width=max(2, thin + 1))


def pole(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
         rng: np.random.Generator) -> None:
    """A thin vertical pole with a lamp/head on top (streetlights, lamps, flags)."""
    top = cy - s
    _line(d, [(cx, cy + s), (cx, top)], thin)
    hw = max(2.0, s * 0.25 * math.sqrt(aspect))
    if rng.random() < 0.5:
        _ellipse(d, cx, top, hw, hw * 0.7)
    else:
        _rect(d, cx, top, cx + 2.5 * hw, top + 1.6 * hw)


def legs(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
         rng: np.random.Generator) -> None:
    """A slab on 2-4 thin legs, optionally with a backrest (tables, chairs, benches)."""
    hw = s * math.sqrt(aspect)
    slab = max(2.0, s * 0.18)
    top_y = cy - s * 0.15
    _rect(d, cx - hw, top_y, cx + hw, top_y + slab)
    n = int(rng.integers(2, 5))
    for x in np.linspace(cx - hw * 0.9, cx + hw * 0.9, n):
        _line(d, [(x, top_y + slab), (x + rng.uniform(-1, 1), cy + s)], thin)
    if rng.random() < 0.5:  # backrest
        side = cx - hw if rng.random() < 0.5 else cx + hw
        _line(d, [(side, top_y), (side, cy - s)], max(thin, 2))


def wheels(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
           rng: np.random.Generator) -> None:
    """Two wheel rings joined by a thin frame and handlebar (bicycles, motorbikes)."""
    r = s * 0.42
    dx = s * 0.75 * math.sqrt(aspect)
    wy = cy + s * 0.45
    for x in (cx - dx, cx + dx):
        d.ellipse([x - r, wy - r, x + r, wy + r], outline=FILL, width=max(1, thin))
    seat = (cx - dx * 0.3, cy - s * 0.25)
    bar = (cx + dx * 0.6, cy - s * 0.45)
    _line(d, [(cx - dx, wy), seat, (cx + dx * 0.2, wy), (cx - dx, wy)], thin)
    _line(d, [(cx + dx * 0.2, wy), bar, (cx + dx, wy)], thin)
    _line(d, [seat, bar], thin)
    if aspect > 1.2:  # a motorbike: a bulky tank between the wheels
        _ellipse(d, cx, cy, dx * 0.45, s * 0.22)


def figure(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
           rng: np.random.Generator) -> None:
    """A person: head, torso, legs and thin arms."""
    hw = s * 0.22 * math.sqrt(aspect)
    _ellipse(d, cx, cy - s * 0.78, hw, hw * 1.05)
    _ellipse(d, cx, cy - s * 0.2, hw * 1.15, s * 0.42)
    leg_w = max(thin, 2)
    _line(d, [(cx - hw * 0.5, cy + s * 0.1), (cx - hw * rng.uniform(0.4, 1.4), cy + s)], leg_w)
    _line(d, [(cx + hw * 0.5, cy + s * 0.1), (cx + hw * rng.uniform(0.4, 1.4), cy + s)], leg_w)
    for sign in (-1.0, 1.0):
        hand = (cx + sign * hw * rng.uniform(1.8, 3.0), cy - s * rng.uniform(-0.2, 0.7))
        _line(d, [(cx + sign * hw * 0.8, cy - s * 0.5), hand], thin)


def mast(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
         rng: np.random.Generator) -> None:
    """A hull with a thin mast and an optional sail (boats, ships)."""
    hw = s * math.sqrt(aspect)
    deck = cy + s * 0.25
    d.polygon([(cx - hw, deck), (cx + hw, deck), (cx + hw * 0.7, cy + s * 0.6),
               (cx - hw * 0.7, cy + s * 0.6)], fill=FILL)
    mx = cx + rng.uniform(-0.3, 0.3) * hw
    _line(d, [(mx, deck), (mx, cy - s)], thin)
    if rng.random() < 0.6:
        d.polygon([(mx + 1, cy - s * 0.85), (mx + 1, deck - 2), (mx + hw * 0.7, deck - 2)],
                  fill=FILL)


def plane(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
          rng: np.random.Generator) -> None:
    """A fuselage with swept wings and a tail fin (aeroplanes, kites of metal)."""
    ang = float(rng.uniform(-0.3, 0.3))
    fl = s * math.sqrt(aspect)
    fus = [(fl * math.cos(a), s * 0.17 * math.sin(a))
           for a in np.linspace(0, 2 * math.pi, 16, endpoint=False)]
    d.polygon(_rot(cx, cy, fus, ang), fill=FILL)
    wing = [(-0.1 * fl, 0.0), (0.25 * fl, 0.0), (-0.35 * fl, 0.85 * s), (-0.5 * fl, 0.85 * s)]
    d.polygon(_rot(cx, cy, wing, ang), fill=FILL)
    wing2 = [(x, -y * 0.6) for x, y in wing]
    d.polygon(_rot(cx, cy, wing2, ang), fill=FILL)
    tail = [(-0.8 * fl, 0.0), (-0.95 * fl, -0.55 * s), (-0.75 * fl, -0.55 * s), (-0.6 * fl, 0.0)]
    d.polygon(_rot(cx, cy, tail, ang), fill=FILL)


def handle(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
           rng: np.random.Generator) -> None:
    """A body with a thin arc handle (cups, bags, baskets, pots)."""
    rx, ry = _wh(s * 0.75, aspect)
    if rng.random() < 0.5:
        _rect(d, cx - rx, cy - ry * 0.6, cx + rx, cy + ry)
    else:
        _ellipse(d, cx, cy + ry * 0.2, rx, ry * 0.8)
    if rng.random() < 0.5:  # handle on top
        d.arc([cx - rx * 0.6, cy - ry * 1.5, cx + rx * 0.6, cy - ry * 0.2], 180, 360,
              fill=FILL, width=thin)
    else:  # handle on the side
        side = 1.0 if rng.random() < 0.5 else -1.0
        x0 = cx + side * rx
        d.arc([x0 - rx * 0.5, cy - ry * 0.4, x0 + rx * 0.5, cy + ry * 0.6],
              -90 if side > 0 else 90, 90 if side > 0 else 270, fill=FILL, width=thin)


def plant(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
          rng: np.random.Generator) -> None:
    """A pot with thin stems ending in small leaves (potted plants, flowers)."""
    pw = s * 0.35 * math.sqrt(aspect)
    top = cy + s * 0.35
    d.polygon([(cx - pw, top), (cx + pw, top), (cx + pw * 0.7, cy + s), (cx - pw * 0.7, cy + s)],
              fill=FILL)
    for _ in range(int(rng.integers(3, 6))):
        ex = cx + rng.uniform(-0.9, 0.9) * s * math.sqrt(aspect)
        ey = cy - rng.uniform(0.3, 1.0) * s
        _line(d, [(cx + rng.uniform(-0.5, 0.5) * pw, top), (ex, ey)], thin)
        lr = max(1.5, s * rng.uniform(0.08, 0.16))
        _ellipse(d, ex, ey, lr * 1.4, lr)


def fence(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
          rng: np.random.Generator) -> None:
    """Thin vertical bars joined by 1-2 rails (fences, railings, bannisters)."""
    hw = s * max(aspect, 1.0)
    hh = s * 0.6
    n = int(rng.integers(3, 8))
    for x in np.linspace(cx - hw, cx + hw, n):
        _line(d, [(x, cy - hh), (x, cy + hh)], thin)
    for y in (cy - hh * 0.7, cy + hh * 0.3)[: int(rng.integers(1, 3))]:
        _line(d, [(cx - hw, y), (cx + hw, y)], thin)


def quadruped(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
              rng: np.random.Generator) -> None:
    """Body, head, four legs and a thin tail (cats, dogs, horses, cows, sheep)."""
    bw = s * 0.7 * math.sqrt(aspect)
    bh = s * 0.32
    by = cy - s * 0.1
    _ellipse(d, cx, by, bw, bh)
    face = 1.0 if rng.random() < 0.5 else -1.0
    hx, hy = cx + face * bw * 1.05, by - bh * 1.2
    _line(d, [(cx + face * bw * 0.7, by), (hx, hy)], max(2, int(bh * 0.7)))
    _ellipse(d, hx, hy, s * 0.2, s * 0.16)
    lw = max(thin, 2)
    for x in (cx - bw * 0.7, cx - bw * 0.45, cx + bw * 0.45, cx + bw * 0.7):
        _line(d, [(x, by + bh * 0.5), (x + rng.uniform(-2, 2), cy + s)], lw)
    tx = cx - face * bw
    _line(d, [(tx, by), (tx - face * s * 0.3, by + rng.uniform(-0.4, 0.4) * s)], thin)


def bird(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
         rng: np.random.Generator) -> None:
    """A small body with head, beak, tail and thin legs."""
    bw, bh = s * 0.55 * math.sqrt(aspect), s * 0.33
    _ellipse(d, cx, cy, bw, bh)
    face = 1.0 if rng.random() < 0.5 else -1.0
    hx, hy = cx + face * bw * 0.85, cy - bh * 1.1
    _ellipse(d, hx, hy, s * 0.2, s * 0.2)
    d.polygon([(hx + face * s * 0.15, hy - 2), (hx + face * s * 0.45, hy),
               (hx + face * s * 0.15, hy + 2)], fill=FILL)
    d.polygon([(cx - face * bw * 0.8, cy), (cx - face * bw * 1.6, cy - bh),
               (cx - face * bw * 1.6, cy + bh * 0.3)], fill=FILL)
    for x in (cx - bw * 0.25, cx + bw * 0.25):
        _line(d, [(x, cy + bh * 0.8), (x, cy + s)], thin)


def screen(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
           rng: np.random.Generator) -> None:
    """A panel on a thin stand (monitors, televisions, signboards)."""
    hw = s * 0.8 * math.sqrt(aspect)
    top, bottom = cy - s * 0.8, cy + s * 0.35
    _rect(d, cx - hw, top, cx + hw, bottom)
    _line(d, [(cx, bottom), (cx, cy + s * 0.85)], thin)
    _rect(d, cx - hw * 0.4, cy + s * 0.85, cx + hw * 0.4, cy + s)


def vehicle(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
            rng: np.random.Generator) -> None:
    """A body, a cabin and two wheels (cars, buses, trucks, trains)."""
    hw = s * math.sqrt(aspect)
    _rect(d, cx - hw, cy - s * 0.2, cx + hw, cy + s * 0.45)
    off = rng.uniform(-0.3, 0.3) * hw
    _rect(d, cx - hw * 0.55 + off, cy - s * 0.62, cx + hw * 0.55 + off, cy - s * 0.2)
    r = s * 0.24
    for x in (cx - hw * 0.62, cx + hw * 0.62):
        _ellipse(d, x, cy + s * 0.5, r, r)


def bottle(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
           rng: np.random.Generator) -> None:
    """A narrow body with a thinner neck (bottles, vases, columns)."""
    hw = s * 0.32 * math.sqrt(aspect)
    _rect(d, cx - hw, cy - s * 0.25, cx + hw, cy + s)
    _ellipse(d, cx, cy - s * 0.25, hw, hw * 0.6)
    nw = max(1.0, hw * 0.35)
    _rect(d, cx - nw, cy - s, cx + nw, cy - s * 0.25)


def cross(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
          rng: np.random.Generator) -> None:
    """Two crossing bars, rotated (signs, windows, crosses)."""
    w = max(2.0, s * 0.18)
    ang = float(rng.uniform(-0.5, 0.5))
    a = s * math.sqrt(aspect)
    for pts in ([(-a, -w), (a, -w), (a, w), (-a, w)], [(-w, -s), (w, -s), (w, s), (-w, s)]):
        d.polygon(_rot(cx, cy, pts, ang), fill=FILL)


def stick(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
          rng: np.random.Generator) -> None:
    """A long thin tilted object with a small head (bats, skis, knives, toothbrushes)."""
    ang = float(rng.uniform(0.0, math.pi))
    dx, dy = math.cos(ang) * s * 1.1, math.sin(ang) * s * 1.1
    _line(d, [(cx - dx, cy - dy), (cx + dx, cy + dy)], thin)
    _ellipse(d, cx + dx, cy + dy, max(1.5, s * 0.15 * aspect), max(1.5, s * 0.1))


def kite(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
         rng: np.random.Generator) -> None:
    """A diamond on a thin string (kites) or a canopy on a thin shaft (umbrellas)."""
    hw = s * 0.6 * math.sqrt(aspect)
    if rng.random() < 0.5:
        d.polygon([(cx, cy - s), (cx + hw, cy - s * 0.4), (cx, cy + s * 0.1),
                   (cx - hw, cy - s * 0.4)], fill=FILL)
        _line(d, [(cx, cy + s * 0.1), (cx + rng.uniform(-1, 1) * s, cy + s)], thin)
    else:
        d.pieslice([cx - hw * 1.4, cy - s, cx + hw * 1.4, cy + s * 0.1], 180, 360, fill=FILL)
        _line(d, [(cx, cy - s * 0.45), (cx, cy + s)], thin)


def grid(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
         rng: np.random.Generator) -> None:
    """A lattice of thin lines (nets, cages, grates)."""
    hw, hh = _wh(s, aspect)
    step = max(4.0, s * rng.uniform(0.3, 0.5))
    for x in np.arange(cx - hw, cx + hw + 0.1, step):
        _line(d, [(x, cy - hh), (x, cy + hh)], thin)
    for y in np.arange(cy - hh, cy + hh + 0.1, step):
        _line(d, [(cx - hw, y), (cx + hw, y)], thin)


def tree(d: ImageDraw.ImageDraw, cx: float, cy: float, s: float, aspect: float, thin: int,
         rng: np.random.Generator) -> None:
    """A trunk with a crown (trees) or with thin fronds (palms)."""
    trunk_w = max(thin, int(round(s * 0.12)))
    top = cy - s * 0.45
    _line(d, [(cx, cy + s), (cx + rng.uniform(-2, 2), top)], trunk_w)
    if aspect < 1.0:  # palm: thin fronds
        for a in np.linspace(-2.6, -0.5, 5):
            _line(d, [(cx, top), (cx + math.cos(a) * s * 0.8, top + math.sin(a) * s * 0.5)], thin)
    else:
        cw = s * 0.65 * math.sqrt(aspect)
        blob(d, cx, top - s * 0.2, cw, 1.2, thin, rng)


FAMILIES: dict[str, Family] = {
    "blob": blob,
    "box": box,
    "poly": poly,
    "disc": disc,
    "ring": ring,
    "pole": pole,
    "legs": legs,
    "wheels": wheels,
    "figure": figure,
    "mast": mast,
    "plane": plane,
    "handle": handle,
    "plant": plant,
    "fence": fence,
    "quadruped": quadruped,
    "bird": bird,
    "screen": screen,
    "vehicle": vehicle,
    "bottle": bottle,
    "cross": cross,
    "stick": stick,
    "kite": kite,
    "grid": grid,
    "tree": tree,
}

#: Families whose objects always contain a part at most ~3 px wide at the default sizes.
THIN_FAMILIES: frozenset[str] = frozenset(
    {"pole", "legs", "wheels", "figure", "mast", "handle", "plant", "fence", "bird", "screen",
     "stick", "kite", "grid", "quadruped"}
)

#: Families cycled through for classes without a hand-picked family.
GENERIC_FAMILIES: tuple[str, ...] = (
    "blob", "box", "poly", "handle", "disc", "bottle", "ring", "screen", "cross", "vehicle",
)
