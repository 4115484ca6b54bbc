"""Writers of the synthetic datasets in their real on-disk layouts, and the cache.

Layouts (``<dir>`` is ``<cache_dir>/<dataset>-<hash>``; the *data root* is what mmseg's
``data_root`` must point to):

* ``voc2012`` -- data root ``<dir>/VOCdevkit/VOC2012``: ``JPEGImages/<id>.jpg`` for every id;
  ``SegmentationClass/<id>.png`` (mode "P", VOC palette, 255 = void border) for train and val;
  ``SegmentationClassAug/<id>.png`` (mode "L" class indices, the SBD-converted format mmseg's
  ``voc_aug.py`` writes) for train and aug; ``ImageSets/Segmentation/{train,val,aug,trainval,
  trainaug}.txt``. Ids look like VOC's (``2008_000123``).
* ``cityscapes`` -- data root ``<dir>``: ``leftImg8bit/<split>/<city>/<city>_<seq>_000019_
  leftImg8bit.png`` and ``gtFine/<split>/<city>/..._gtFine_labelTrainIds.png`` (0-18, 255) and
  ``..._gtFine_labelIds.png`` (Cityscapes label ids; the ego vehicle is id 1 / trainId 255).
* ``ade20k`` -- data root ``<dir>/ADEChallengeData2016``: ``images/{training,validation}/
  ADE_{train,val}_%08d.jpg`` and ``annotations/.../*.png`` with 0 = other, 1..150 = classes.
* ``coco_stuff10k`` -- data root ``<dir>``: ``images/{train2014,test2014}/COCO_train2014_%012d
  .jpg``, ``annotations/{train2014,test2014}/..._labelTrainIds.png`` (0 = unlabeled, 1..171, as
  mmseg's ``coco_stuff10k.py`` converter writes them) and ``imageLists/{train,test,all}.txt``.
* ``coco2017`` -- data root ``<dir>`` (mmdet's ``data/coco/``): ``annotations/instances_
  {train2017,val2017}.json`` (COCO's instances format, see :mod:`suite.data.coco`) and
  ``{train2017,val2017}/<12-digit image id>.jpg``.

:func:`ensure_dataset` generates a dataset once per parameter set into a temporary directory
and renames it into place (atomic; a concurrent loser discards its copy); a ``.complete``
marker (JSON) records the parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from suite.data import scenes
from suite.data.registry import DATASETS, DatasetInfo, resolve_name

#: Bump when the generated content changes; it is part of the cache key.
GENERATOR_VERSION = 1
MARKER = ".complete"
DEFAULT_NUM_TRAIN = 48
DEFAULT_NUM_VAL = 16
JPEG_QUALITY = 90

CITYSCAPES_TRAIN_CITIES: tuple[str, ...] = ("aachen", "bochum", "bremen")
CITYSCAPES_VAL_CITIES: tuple[str, ...] = ("frankfurt", "lindau", "munster")


def default_cache_dir() -> Path:
    """``$SUITE_DATA_CACHE`` if set, else ``~/.cache/suite/synthetic``."""
    env = os.environ.get("SUITE_DATA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "suite" / "synthetic"


def image_rng(dataset: str, split: str, index: int, seed: int) -> np.random.Generator:
    """The generator of one image, seeded from ``(dataset, split, index, seed)``."""
    digest = hashlib.sha256(f"{dataset}|{split}|{index}|{seed}".encode()).digest()
    return np.random.default_rng(np.random.SeedSequence(int.from_bytes(digest[:16], "little")))


def voc_palette() -> list[int]:
    """The 256-colour Pascal VOC palette, flattened ``[r0, g0, b0, r1, ...]``."""
    pal: list[int] = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


_VOC_PALETTE = voc_palette()


def _save_jpg(path: Path, img: np.ndarray) -> None:
    Image.fromarray(img).save(path, "JPEG", quality=JPEG_QUALITY)


def _save_png(path: Path, arr: np.ndarray, palette: list[int] | None = None) -> None:
    im = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))
    if palette is not None:
        im.putpalette(palette)  # an "L" image becomes "P" with the same indices
    im.save(path, "PNG")


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


# --------------------------------------------------------------------------- writers
def _write_voc(out: Path, seed: int, counts: dict[str, int], size: tuple[int, int]) -> Path:
    root = out / "VOCdevkit" / "VOC2012"
    jpg, seg, aug = root / "JPEGImages", root / "SegmentationClass", root / "SegmentationClassAug"
    sets = root / "ImageSets" / "Segmentation"
    for d in (jpg, seg, aug, sets):
        d.mkdir(parents=True, exist_ok=True)
    h, w = size
    ids: dict[str, list[str]] = {}
    k = 0
    for split in ("train", "aug", "val"):
        ids[split] = []
        for i in range(counts[split]):
            name = f"{2007 + k % 6}_{k:06d}"
            k += 1
            img, label = scenes.voc_scene(h, w, image_rng("voc2012", split, i, seed))
            _save_jpg(jpg / f"{name}.jpg", img)
            if split in ("train", "val"):
                _save_png(seg / f"{name}.png", scenes.voc_border(label), _VOC_PALETTE)
            if split in ("train", "aug"):
                _save_png(aug / f"{name}.png", label)
            ids[split].append(name)
    _write_lines(sets / "train.txt", ids["train"])
    _write_lines(sets / "val.txt", ids["val"])
    _write_lines(sets / "aug.txt", ids["aug"])
    _write_lines(sets / "trainval.txt", ids["train"] + ids["val"])
    _write_lines(sets / "trainaug.txt", ids["train"] + ids["aug"])
    return root


def _write_cityscapes(out: Path, seed: int, counts: dict[str, int],
                      size: tuple[int, int]) -> Path:
    h, w = size
    train_lut = np.arange(256, dtype=np.uint8)
    train_lut[scenes.EGO_VEHICLE] = 255
    id_lut = np.zeros(256, dtype=np.uint8)
    id_lut[: len(scenes.CITYSCAPES_LABEL_IDS)] = scenes.CITYSCAPES_LABEL_IDS
    id_lut[scenes.EGO_VEHICLE] = 1
    for split, cities in (("train", CITYSCAPES_TRAIN_CITIES), ("val", CITYSCAPES_VAL_CITIES)):
        for i in range(counts[split]):
            city = cities[i % len(cities)]
            stem = f"{city}_{i // len(cities):06d}_000019"
            img_dir = out / "leftImg8bit" / split / city
            gt_dir = out / "gtFine" / split / city
            img_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            img, label = scenes.cityscapes_scene(h, w, image_rng("cityscapes", split, i, seed))
            Image.fromarray(img).save(img_dir / f"{stem}_leftImg8bit.png", "PNG", compress_level=1)
            _save_png(gt_dir / f"{stem}_gtFine_labelTrainIds.png", train_lut[label])
            _save_png(gt_dir / f"{stem}_gtFine_labelIds.png", id_lut[label])
    return out


def _write_ade(out: Path, seed: int, counts: dict[str, int], size: tuple[int, int]) -> Path:
    root = out / "ADEChallengeData2016"
    h, w = size
    for split, tag in (("training", "train"), ("validation", "val")):
        img_dir, ann_dir = root / "images" / split, root / "annotations" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        for i in range(counts[split]):
            stem = f"ADE_{tag}_{i + 1:08d}"
            img, label = scenes.ade20k_scene(h, w, image_rng("ade20k", split, i, seed))
            _save_jpg(img_dir / f"{stem}.jpg", img)
            _save_png(ann_dir / f"{stem}.png", label)
    return root


def _write_coco_stuff(out: Path, seed: int, counts: dict[str, int],
                      size: tuple[int, int]) -> Path:
    h, w = size
    lists: dict[str, list[str]] = {}
    offset = 0
    for split, list_name in (("train2014", "train"), ("test2014", "test")):
        img_dir, ann_dir = out / "images" / split, out / "annotations" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        lists[list_name] = []
        for i in range(counts[split]):
            stem = f"COCO_train2014_{offset + i + 1:012d}"
            img, label = scenes.coco_stuff_scene(h, w, image_rng("coco_stuff10k", split, i, seed))
            _save_jpg(img_dir / f"{stem}.jpg", img)
            _save_png(ann_dir / f"{stem}_labelTrainIds.png", label)
            lists[list_name].append(stem)
        offset += counts[split]
    (out / "imageLists").mkdir(exist_ok=True)
    _write_lines(out / "imageLists" / "train.txt", lists["train"])
    _write_lines(out / "imageLists" / "test.txt", lists["test"])
    _write_lines(out / "imageLists" / "all.txt", lists["train"] + lists["test"])
    return out


def _write_coco(out: Path, seed: int, counts: dict[str, int], size: tuple[int, int]) -> Path:
    from suite.data import coco

    h, w = size
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    categories = coco.coco_categories()
    for split in DATASETS["coco2017"].splits:
        img_dir = out / split
        img_dir.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for i in range(counts[split]):
            image_id = coco.SPLIT_ID_OFFSET[split] + i + 1
            img, instances, objects = coco.coco_scene(h, w, image_rng("coco2017", split, i, seed))
            _save_jpg(img_dir / coco.image_file_name(image_id), img)
            images.append(coco.image_record(image_id, h, w))
            annotations += coco.image_annotations(image_id, instances, objects)
        doc = {**coco.coco_header(), "images": images, "annotations": annotations,
               "categories": categories}
        (out / "annotations" / f"instances_{split}.json").write_text(
            json.dumps(doc, separators=(",", ":")))
    return out


_WRITERS: dict[str, Callable[[Path, int, dict[str, int], tuple[int, int]], Path]] = {
    "voc2012": _write_voc,
    "cityscapes": _write_cityscapes,
    "ade20k": _write_ade,
    "coco_stuff10k": _write_coco_stuff,
    "coco2017": _write_coco,
}

#: Per-dataset generator versions, in the cache key of that dataset only (bump on change).
DATASET_VERSIONS: dict[str, int] = {"coco2017": 1}


# --------------------------------------------------------------------------- parameters
def _params(name: str, seed: int, num_train: int | None, num_val: int | None,
            size: tuple[int, int] | None, num_aug: int | None) -> dict[str, Any]:
    info = DATASETS[name]
    n_train = DEFAULT_NUM_TRAIN if num_train is None else int(num_train)
    n_val = DEFAULT_NUM_VAL if num_val is None else int(num_val)
    hw = info.default_size if size is None else (int(size[0]), int(size[1]))
    if n_train < 0 or n_val < 0 or min(hw) < 16:
        raise ValueError(f"bad sizes: num_train={n_train} num_val={n_val} size={hw} (min 16 px)")
    counts = {info.train_splits[0]: n_train, info.eval_split: n_val}
    if name == "voc2012":
        counts["aug"] = n_train // 2 if num_aug is None else int(num_aug)
    params = {
        "dataset": name,
        "seed": int(seed),
        "size": list(hw),
        "counts": {s: counts[s] for s in info.splits},
        "version": GENERATOR_VERSION,
    }
    if name in DATASET_VERSIONS:
        params["dataset_version"] = DATASET_VERSIONS[name]
    return params


def params_hash(params: dict[str, Any]) -> str:
    """Short, stable hash of a parameter dict (the cache directory suffix)."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def data_root_of(info: DatasetInfo, dataset_dir: Path) -> Path:
    """The mmseg ``data_root`` inside a generated dataset directory."""
    return dataset_dir / info.root_subdir if info.root_subdir else dataset_dir


def generate_dataset(
    name: str,
    out_dir: Path,
    seed: int = 0,
    num_train: int | None = None,
    num_val: int | None = None,
    size: tuple[int, int] | None = None,
    num_aug: int | None = None,
) -> Path:
    """Write a dataset into ``out_dir`` (no caching, no marker); returns its data root.

    Args:
        name: A key of :data:`DATASETS` (or an alias).
        out_dir: Directory to write into (created).
        seed: Global seed; each image's generator is seeded from (dataset, split, index, seed).
        num_train: Images of the training split (VOC: ``train.txt``); default 48.
        num_val: Images of the evaluation split (VOC/Cityscapes val, ADE validation,
            COCO-Stuff test, COCO val2017); default 16.
        size: ``(height, width)``; default :attr:`DatasetInfo.default_size`.
        num_aug: VOC only: extra SBD-style training images in ``aug.txt``; default
            ``num_train // 2``.
    """
    key = resolve_name(name)
    p = _params(key, seed, num_train, num_val, size, num_aug)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return _WRITERS[key](out_dir, p["seed"], p["counts"], (p["size"][0], p["size"][1]))


def dataset_dir(
    name: str,
    cache_dir: Path | str | None = None,
    seed: int = 0,
    num_train: int | None = None,
    num_val: int | None = None,
    size: tuple[int, int] | None = None,
    num_aug: int | None = None,
) -> Path:
    """The cache directory ``<cache_dir>/<dataset>-<hash>`` of a parameter set (not created)."""
    key = resolve_name(name)
    p = _params(key, seed, num_train, num_val, size, num_aug)
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / f"{key}-{params_hash(p)}"


def ensure_dataset(
    name: str,
    cache_dir: Path | str | None = None,
    seed: int = 0,
    num_train: int | None = None,
    num_val: int | None = None,
    size: tuple[int, int] | None = None,
    num_aug: int | None = None,
) -> Path:
    """Generate a dataset once and return the ``data_root`` to give mmseg's (mmdet's) config.

    The dataset lives in ``<cache_dir>/<dataset>-<hash of parameters>/``. It is generated into
    a temporary sibling directory and renamed into place, so concurrent callers never see a
    partial tree; a later call finds the ``.complete`` marker and returns at once. See
    :func:`generate_dataset` for the arguments; ``cache_dir`` defaults to
    :func:`default_cache_dir`.
    """
    key = resolve_name(name)
    info = DATASETS[key]
    p = _params(key, seed, num_train, num_val, size, num_aug)
    final = dataset_dir(key, cache_dir, seed, num_train, num_val, size, num_aug)
    if (final / MARKER).is_file():
        return data_root_of(info, final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _WRITERS[key](tmp, p["seed"], p["counts"], (p["size"][0], p["size"][1]))
        (tmp / MARKER).write_text(json.dumps(p, sort_keys=True, indent=1) + "\n")
        for attempt in range(2):
            try:
                os.rename(tmp, final)
                break
            except OSError:
                if (final / MARKER).is_file():  # another process won the race
                    break
                if attempt:
                    raise
                # A directory without marker is not ours (renames are atomic): move it aside.
                stale = final.parent / f".stale-{final.name}-{uuid.uuid4().hex[:8]}"
                os.rename(final, stale)
                shutil.rmtree(stale, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return data_root_of(info, final)


# --------------------------------------------------------------------------- describe
def _find_marker(root: Path) -> tuple[Path, dict[str, Any]] | None:
    for d in (root, root.parent, root.parent.parent):
        m = d / MARKER
        if m.is_file():
            return d, json.loads(m.read_text())
    return None


def _detect(root: Path) -> tuple[str, Path]:
    """Which dataset a directory holds, and its data root."""
    candidates = [root, root / "VOCdevkit" / "VOC2012", root / "ADEChallengeData2016"]
    for r in candidates:
        if any((r / ann).is_file() for ann in DATASETS["coco2017"].ann_files.values()):
            return "coco2017", r
        if (r / "JPEGImages").is_dir() and (r / "ImageSets" / "Segmentation").is_dir():
            return "voc2012", r
        if (r / "leftImg8bit").is_dir() and (r / "gtFine").is_dir():
            return "cityscapes", r
        if (r / "images" / "training").is_dir() or (r / "images" / "validation").is_dir():
            return "ade20k", r
        if (r / "images" / "train2014").is_dir() or (r / "images" / "test2014").is_dir():
            return "coco_stuff10k", r
    raise FileNotFoundError(f"no known dataset layout under {root}")


def _count_coco(data_root: Path, info: DatasetInfo, split: str) -> dict[str, int]:
    """Image files of a COCO split, and images/annotations its json lists."""
    img_dir = data_root / info.data_prefixes[split]["img"]
    n_img = sum(1 for _ in img_dir.glob(f"*{info.img_suffix}")) if img_dir.is_dir() else 0
    ann = data_root / info.ann_files[split]
    doc = json.loads(ann.read_text()) if ann.is_file() else {}
    return {"images": n_img, "labels": len(doc.get("images", [])),
            "annotations": len(doc.get("annotations", []))}


def _count_seg(data_root: Path, info: DatasetInfo, split: str) -> dict[str, int]:
    """Images and label maps of a segmentation split (for VOC: of the ids its list names)."""
    prefix = info.data_prefixes[split]
    img_dir = data_root / prefix["img_path"]
    seg_dir = data_root / prefix["seg_map_path"]
    if split in info.ann_files:
        ann = data_root / info.ann_files[split]
        ids = ann.read_text().split() if ann.is_file() else []
        n_img = sum((img_dir / f"{i}{info.img_suffix}").is_file() for i in ids)
        n_seg = sum((seg_dir / f"{i}{info.seg_map_suffix}").is_file() for i in ids)
    else:
        n_img = sum(1 for _ in img_dir.rglob(f"*{info.img_suffix}")) if img_dir.is_dir() else 0
        n_seg = (sum(1 for _ in seg_dir.rglob(f"*{info.seg_map_suffix}"))
                 if seg_dir.is_dir() else 0)
    return {"images": n_img, "labels": n_seg}


def describe(root: Path | str) -> dict[str, Any]:
    """Summarise a dataset tree: its kind, data root, and per split images/label maps.

    ``root`` may be the data root :func:`ensure_dataset` returned or the cache directory.
    Works on real datasets too (counts files; for VOC, ids of the ``ImageSets`` lists). For
    COCO, ``labels`` counts the images its annotation json lists and ``annotations`` its
    annotations.
    """
    name, data_root = _detect(Path(root))
    info = DATASETS[name]
    count = _count_coco if info.task == "detection" else _count_seg
    out: dict[str, Any] = {
        "dataset": name,
        "data_root": str(data_root),
        "mmseg_type": info.mmseg_type,
        "base_config": info.base_config,
        "num_classes": info.num_classes,
        "eval_split": info.eval_split,
        "splits": {split: count(data_root, info, split) for split in info.splits},
    }
    found = _find_marker(data_root)
    if found is not None:
        out["params"] = found[1]
    return out
