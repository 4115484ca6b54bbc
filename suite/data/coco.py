"""Synthetic MS-COCO 2017 instances: scenes and annotations in COCO's own json format.

:func:`coco_scene` composes one image: a textured background (one or two regions and some
unannotated clutter) and 2-8 objects of the 80 COCO classes, of sizes from a few pixels to
most of the image, often placed against the previous object so that they touch and overlap,
and in about a third of the images a *crowd* (5-10 small objects of one class, annotated as
one ``iscrowd=1`` region, as COCO annotates groups). Objects are painted in order, so later
ones occlude earlier ones; an object's annotation is its *visible* part (as in COCO), and an
object with less than :data:`MIN_VISIBLE_FRACTION` of its pixels (or fewer than
:data:`MIN_PIXELS`) visible is not annotated. Each class has COCO-Stuff's look of that thing
class (the first 80 COCO-Stuff classes are COCO's, in the same order): a shape family
(persons with thin arms, bicycles of rings and thin frames, tables on thin legs ...) and a
characteristic colour/texture, so a detector can learn the classes.

:func:`encode_instance` turns a visible mask into COCO's ``segmentation``/``area``/``bbox``: a
polygon list (pixel-corner outlines of the connected parts, exact: decoding it with
pycocotools gives the mask back) for ordinary objects, and an RLE (``pycocotools.mask.encode``,
``counts`` as str) for crowd regions and for the few objects a polygon list cannot represent
(a visible part with a hole, where a later object lies inside an earlier one). ``area`` is the
mask's pixel count and ``bbox`` its extent ``[x, y, w, h]`` (``pycocotools.mask.area`` and
``toBbox`` of the encoded mask).

Category ids are COCO's (1..90 with its gaps, :data:`COCO_CATEGORY_IDS`) and names mmdet's
``CocoDataset.METAINFO['classes']`` in the same order, which is how mmdet maps ids to labels
(sorted ids, label ``i`` = ``i``-th category).

Note on scale: COCO's evaluation splits objects by absolute area (small < 32**2 <= medium <
96**2 < large pixels). At the default 128x160 size nearly all objects count as small or
medium; the relative sizes follow COCO, the absolute thresholds do not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from suite.data.scenes import (
    COCO_STUFF_SPEC,
    ClassStyle,
    _fill_below,
    _other_region,
    _wavy_boundary,
    draw_object,
)
from suite.data.textures import Canvas, random_appearance

#: COCO's 80 category ids (1..90 without 12, 26, 29, 30, 45, 66, 68, 69, 71, 83).
COCO_CATEGORY_IDS: tuple[int, ...] = (
    tuple(range(1, 12)) + tuple(range(13, 26)) + (27, 28) + tuple(range(31, 45))
    + tuple(range(46, 66)) + (67, 70) + tuple(range(72, 83)) + tuple(range(84, 91))
)

#: COCO's supercategory of each category, in id order (runs of equal supercategories).
COCO_SUPERCATEGORIES: tuple[str, ...] = tuple(
    name
    for name, run in (
        ("person", 1), ("vehicle", 8), ("outdoor", 5), ("animal", 10), ("accessory", 5),
        ("sports", 10), ("kitchen", 7), ("food", 10), ("furniture", 6), ("electronic", 6),
        ("appliance", 5), ("indoor", 7),
    )
    for _ in range(run)
)

#: First image id of each split (ids are unique across the two splits, as COCO's are).
SPLIT_ID_OFFSET: dict[str, int] = {"train2017": 0, "val2017": 900_000}
#: Annotation id = image id * this + index of the annotation in its image (globally unique).
ANN_IDS_PER_IMAGE = 1000

MIN_PIXELS = 4
MIN_VISIBLE_FRACTION = 0.2
CROWD_PROBABILITY = 0.35
TOUCH_PROBABILITY = 0.55
#: Half-extent of an object, as a fraction of the short image side (log-uniform).
SIZE_RANGE: tuple[float, float] = (0.035, 0.45)
#: Share of the ``person`` class among sampled objects (COCO: about 30 % of instances).
PERSON_SHARE = 0.3

#: The look of each of the 80 classes (label ``i``; the ``value`` is replaced per instance).
THING_STYLES: tuple[ClassStyle, ...] = tuple(COCO_STUFF_SPEC.styles[:80])


def _class_weights() -> np.ndarray:
    """Sampling frequency of the 80 classes: person ~30 %, a mild long tail for the rest."""
    rest = 1.0 / (np.arange(1, 80, dtype=np.float64) + 5.0) ** 0.5
    rest *= (1.0 - PERSON_SHARE) / rest.sum()
    return np.concatenate([[PERSON_SHARE], rest])


_CLASS_WEIGHTS = _class_weights()


@lru_cache(maxsize=1)
def coco_class_names() -> tuple[str, ...]:
    """The 80 class names of mmdet's ``CocoDataset.METAINFO`` (imports mmdet)."""
    from mmdet.datasets.coco import CocoDataset

    names = tuple(CocoDataset.METAINFO["classes"])
    if len(names) != len(COCO_CATEGORY_IDS):
        raise ValueError(f"mmdet's CocoDataset has {len(names)} classes, expected 80")
    return names


def coco_categories() -> list[dict[str, Any]]:
    """COCO's ``categories`` list: ``supercategory``, ``id``, ``name``, sorted by id."""
    return [
        {"supercategory": sup, "id": cid, "name": name}
        for sup, cid, name in zip(COCO_SUPERCATEGORIES, COCO_CATEGORY_IDS, coco_class_names())
    ]


def coco_header() -> dict[str, Any]:
    """The ``info`` and ``licenses`` entries of the annotation files."""
    return {
        "info": {
            "description": "Synthetic stand-in for COCO 2017 instances",
            "url": "",
            "version": "1.0",
            "year": 2017,
            "contributor": "suite",
            "date_created": "2017/09/01",
        },
        "licenses": [{"url": "", "id": 1, "name": "Synthetic image, no restriction"}],
    }


def image_file_name(image_id: int) -> str:
    """COCO 2017's file name of an image id: 12 digits, ``.jpg``."""
    return f"{image_id:012d}.jpg"


# --------------------------------------------------------------------------- scenes
@dataclass(frozen=True)
class SceneObject:
    """One annotated object of a scene.

    Attributes:
        label: Class index 0..79 (mmdet's label; category id ``COCO_CATEGORY_IDS[label]``).
        value: Its value in the scene's instance map (its visible pixels).
        iscrowd: Whether it is a crowd region (several objects annotated as one).
    """

    label: int
    value: int
    iscrowd: bool


def _sample_class(rng: np.random.Generator) -> int:
    return int(rng.choice(len(_CLASS_WEIGHTS), p=_CLASS_WEIGHTS))


def _draw(cv: Canvas, label: int, value: int, cx: float, cy: float, s: float) -> np.ndarray:
    return draw_object(cv, replace(THING_STYLES[label], value=value), cx, cy, s)


def _crowd(cv: Canvas, value: int) -> tuple[int, np.ndarray]:
    """A group of 5-10 small objects of one class painted with one instance value."""
    rng = cv.rng
    label = 0 if rng.random() < 0.6 else _sample_class(rng)
    m = min(cv.h, cv.w)
    cx = float(rng.uniform(0.2, 0.8)) * cv.w
    cy = float(rng.uniform(0.25, 0.75)) * cv.h
    spread = float(rng.uniform(0.1, 0.2)) * m
    base = float(rng.uniform(0.035, 0.06)) * m
    full = np.zeros((cv.h, cv.w), dtype=bool)
    for _ in range(int(rng.integers(5, 11))):
        x = cx + float(rng.normal(0.0, spread))
        y = cy + float(rng.normal(0.0, spread * 0.5))
        full |= _draw(cv, label, value, x, y, base * float(rng.uniform(0.8, 1.25)))
    return label, full


def coco_scene(
    h: int, w: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[SceneObject]]:
    """One COCO-like image.

    Returns:
        ``(image, instances, objects)``: the ``uint8`` RGB image ``(h, w, 3)``; the ``uint8``
        instance map ``(h, w)`` whose value ``k`` marks the visible pixels of the object
        painted with value ``k`` (0: background and clutter); the annotated objects in
        painting order (objects hidden too much are left out, their pixels stay).
    """
    cv = Canvas(h, w, rng)
    cv.paint(np.ones((h, w), dtype=bool), 0, random_appearance(rng, max_saturation=0.35))
    if rng.random() < 0.6:  # a second background region (wall/floor, sky/ground ...)
        ys = _wavy_boundary(rng, w, rng.uniform(0.35, 0.75) * h, rng.uniform(0.0, 0.08) * h)
        _fill_below(cv, ys, 0, random_appearance(rng, max_saturation=0.35))
    for _ in range(int(rng.integers(0, 3))):  # unannotated clutter
        _other_region(cv, 0)
    drawn: list[tuple[int, bool, np.ndarray]] = []  # (label, crowd, full mask); value = index+1
    if rng.random() < CROWD_PROBABILITY:
        label, full = _crowd(cv, len(drawn) + 1)
        drawn.append((label, True, full))
    m = min(h, w)
    lo, hi = math.log(SIZE_RANGE[0]), math.log(SIZE_RANGE[1])
    prev: tuple[float, float, float] | None = None
    for _ in range(int(rng.integers(2, 9))):
        label = _sample_class(rng)
        s = math.exp(float(rng.uniform(lo, hi))) * m
        if prev is not None and rng.random() < TOUCH_PROBABILITY:
            px, py, ps = prev
            side = 1.0 if rng.random() < 0.5 else -1.0
            cx = px + side * (ps + s) * float(rng.uniform(0.4, 0.85))
            cy = py + float(rng.uniform(-0.4, 0.4)) * (ps + s)
        else:
            cx = float(rng.uniform(0.05, 0.95)) * w
            cy = float(rng.uniform(0.08, 0.95)) * h
        cx, cy = float(np.clip(cx, 0.0, w)), float(np.clip(cy, 0.0, h))  # may leave the frame
        drawn.append((label, False, _draw(cv, label, len(drawn) + 1, cx, cy, s)))
        prev = (cx, cy, s)
    objects = []
    for index, (label, crowd, full) in enumerate(drawn):
        value = index + 1
        visible = int(np.count_nonzero(cv.label == value))
        if visible >= max(MIN_PIXELS, MIN_VISIBLE_FRACTION * int(full.sum())):
            objects.append(SceneObject(label, value, crowd))
    return cv.finish(), cv.label.copy(), objects


# --------------------------------------------------------------------------- annotations
def mask_polygons(mask: np.ndarray) -> list[list[float]]:
    """COCO polygons ``[x0, y0, x1, y1, ...]`` tracing the pixel-corner outline of each part.

    Holes are not represented (COCO polygons have none). The mask is doubled in size so that
    OpenCV's contour through boundary pixel centres falls on pixel corners of the original.
    """
    import cv2

    up = np.repeat(np.repeat(mask.astype(np.uint8), 2, axis=0), 2, axis=1)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for contour in contours:
        pts = (contour.reshape(-1, 2) + 1) // 2
        keep = np.ones(len(pts), dtype=bool)
        keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)
        pts = pts[keep]
        if len(pts) > 1 and np.array_equal(pts[0], pts[-1]):
            pts = pts[:-1]
        if len(pts) >= 3:
            polys.append([float(v) for v in pts.reshape(-1)])
    return polys


def encode_instance(mask: np.ndarray, crowd: bool) -> tuple[Any, float, list[float]]:
    """``(segmentation, area, bbox)`` of a visible mask as COCO stores them.

    Polygons unless ``crowd`` or the polygons do not decode to exactly ``mask``; else a
    compressed RLE with ``counts`` as str. ``area`` and ``bbox`` come from the encoded mask.
    """
    from pycocotools import mask as mask_utils

    h, w = mask.shape
    if not crowd:
        polys = mask_polygons(mask)
        if polys:
            rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
            if np.array_equal(mask_utils.decode(rle).astype(bool), mask):
                bbox = [float(v) for v in mask_utils.toBbox(rle)]
                return polys, float(mask_utils.area(rle)), bbox
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    seg = {"size": [int(h), int(w)], "counts": rle["counts"].decode("ascii")}
    return seg, float(mask_utils.area(rle)), [float(v) for v in mask_utils.toBbox(rle)]


def image_annotations(image_id: int, instances: np.ndarray,
                      objects: list[SceneObject]) -> list[dict[str, Any]]:
    """The ``annotations`` entries of one image (ids ``image_id * 1000 + 1, ...``)."""
    anns = []
    for k, obj in enumerate(objects):
        seg, area, bbox = encode_instance(instances == obj.value, obj.iscrowd)
        anns.append({
            "segmentation": seg,
            "area": area,
            "iscrowd": int(obj.iscrowd),
            "image_id": image_id,
            "bbox": bbox,
            "category_id": COCO_CATEGORY_IDS[obj.label],
            "id": image_id * ANN_IDS_PER_IMAGE + k + 1,
        })
    return anns


def image_record(image_id: int, h: int, w: int) -> dict[str, Any]:
    """The ``images`` entry of one image."""
    return {
        "license": 1,
        "file_name": image_file_name(image_id),
        "height": int(h),
        "width": int(w),
        "date_captured": "2017-01-01 00:00:00",
        "id": image_id,
    }
