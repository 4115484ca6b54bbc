"""Synthetic datasets: on-disk layouts, determinism, caching and scene statistics (numpy/PIL)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from suite.data import (
    DATASETS,
    dataset_dir,
    dataset_names,
    describe,
    ensure_dataset,
    generate_dataset,
    voc_palette,
)
from suite.data import generate as gen
from suite.data.__main__ import main as cli_main
from suite.data.scenes import CITYSCAPES_LABEL_IDS

SEGMENTATION = dataset_names("segmentation")  # coco2017 (detection): test_data_coco.py
NUM_TRAIN, NUM_VAL = 24, 8


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    cache = tmp_path_factory.mktemp("synthetic")
    return {
        name: ensure_dataset(name, cache_dir=cache, seed=0, num_train=NUM_TRAIN, num_val=NUM_VAL)
        for name in SEGMENTATION
    }


def _load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _runs(lab: np.ndarray, axis: int) -> np.ndarray:
    """Per pixel, the length of the run of equal values containing it along ``axis``."""
    a = lab if axis == 1 else lab.T
    start = np.ones(a.shape, dtype=bool)
    start[:, 1:] = a[:, 1:] != a[:, :-1]
    rid = np.cumsum(start.ravel()) - 1
    out = np.bincount(rid)[rid].reshape(a.shape)
    return out if axis == 1 else out.T


def thin_pixels(lab: np.ndarray, exclude: tuple[int, ...]) -> int:
    """Pixels of bars at most 3 px thick and at least 6 px long (horizontal or vertical)."""
    lab = lab.astype(np.int64)
    tv = _runs(lab, 0) <= 3  # vertically thin here
    th = _runs(lab, 1) <= 3
    thin = (tv & (_runs(lab * 2 + tv, 1) >= 6)) | (th & (_runs(lab * 2 + th, 0) >= 6))
    for value in exclude:
        thin &= lab != value
    return int(thin.sum())


# ----------------------------------------------------------------------------- layouts
def test_voc_layout(roots: dict[str, Path]) -> None:
    root = roots["voc2012"]
    assert root.parts[-2:] == ("VOCdevkit", "VOC2012")
    sets = root / "ImageSets" / "Segmentation"
    ids = {s: (sets / f"{s}.txt").read_text().split() for s in ("train", "val", "aug")}
    assert [len(ids[s]) for s in ("train", "aug", "val")] == [NUM_TRAIN, NUM_TRAIN // 2, NUM_VAL]
    assert not set(ids["train"]) & set(ids["val"]) and not set(ids["aug"]) & set(ids["train"])
    assert (sets / "trainaug.txt").read_text().split() == ids["train"] + ids["aug"]
    for i in ids["train"] + ids["aug"] + ids["val"]:
        assert re.fullmatch(r"20(0[7-9]|1[0-2])_\d{6}", i)
        assert (root / "JPEGImages" / f"{i}.jpg").is_file()
    seg, aug = root / "SegmentationClass", root / "SegmentationClassAug"
    assert {p.stem for p in seg.glob("*.png")} == set(ids["train"] + ids["val"])
    assert {p.stem for p in aug.glob("*.png")} == set(ids["train"] + ids["aug"])
    im = Image.open(root / "JPEGImages" / f"{ids['train'][0]}.jpg")
    assert im.format == "JPEG" and im.mode == "RGB" and im.size == (96, 96)


def test_voc_palette_pngs_decode_to_indices(roots: dict[str, Path]) -> None:
    root = roots["voc2012"]
    pal = np.asarray(voc_palette(), dtype=np.uint8).reshape(256, 3)
    assert pal[:3].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    assert pal[255].tolist() == [224, 224, 192]
    for i in (root / "ImageSets" / "Segmentation" / "train.txt").read_text().split()[:8]:
        p_img = Image.open(root / "SegmentationClass" / f"{i}.png")
        a_img = Image.open(root / "SegmentationClassAug" / f"{i}.png")
        assert p_img.mode == "P" and a_img.mode == "L"
        idx, aug = np.asarray(p_img), np.asarray(a_img)
        # Colours are the VOC palette entries of the indices.
        assert np.array_equal(np.asarray(p_img.convert("RGB")), pal[idx])
        assert set(np.unique(idx)) <= set(range(21)) | {255}
        assert set(np.unique(aug)) <= set(range(21))
        # Same labels except the void border, which sits on background next to objects.
        border = idx == 255
        assert border.any() and np.array_equal(idx[~border], aug[~border])
        assert (aug[border] == 0).all()


def test_cityscapes_layout(roots: dict[str, Path]) -> None:
    root = roots["cityscapes"]
    lut = np.full(256, 255, dtype=np.int64)
    lut[list(CITYSCAPES_LABEL_IDS)] = np.arange(19)
    for split, n in (("train", NUM_TRAIN), ("val", NUM_VAL)):
        imgs = sorted((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        assert len(imgs) == n
        cities = {p.parent.name for p in imgs}
        assert cities <= ({"aachen", "bochum", "bremen"} if split == "train"
                          else {"frankfurt", "lindau", "munster"})
        for p in imgs:
            m = re.fullmatch(r"([a-z]+)_(\d{6})_(\d{6})_leftImg8bit\.png", p.name)
            assert m and m.group(1) == p.parent.name
            stem = p.name[: -len("_leftImg8bit.png")]
            gt = root / "gtFine" / split / p.parent.name
            train_ids = _load(gt / f"{stem}_gtFine_labelTrainIds.png")
            label_ids = _load(gt / f"{stem}_gtFine_labelIds.png")
            assert train_ids.shape == label_ids.shape == (64, 128)
            assert set(np.unique(train_ids)) <= set(range(19)) | {255}
            assert np.array_equal(lut[label_ids], train_ids)  # consistent id maps
            assert set(np.unique(label_ids[train_ids == 255])) <= {1}  # ego vehicle
        assert Image.open(imgs[0]).size == (128, 64)  # 2:1


def test_ade20k_layout(roots: dict[str, Path]) -> None:
    root = roots["ade20k"]
    assert root.name == "ADEChallengeData2016"
    for split, tag, n in (("training", "train", NUM_TRAIN), ("validation", "val", NUM_VAL)):
        imgs = sorted((root / "images" / split).iterdir())
        assert [p.name for p in imgs] == [f"ADE_{tag}_{i:08d}.jpg" for i in range(1, n + 1)]
        anns = sorted((root / "annotations" / split).iterdir())
        assert [p.name for p in anns] == [f"ADE_{tag}_{i:08d}.png" for i in range(1, n + 1)]
        values = np.unique(np.concatenate([_load(p).ravel() for p in anns]))
        assert values.min() >= 0 and values.max() <= 150
    zero = [(_load(p) == 0).any() for p in (root / "annotations" / "training").iterdir()]
    assert any(zero)  # "other" occurs


def test_coco_stuff_layout(roots: dict[str, Path]) -> None:
    root = roots["coco_stuff10k"]
    lists = {s: (root / "imageLists" / f"{s}.txt").read_text().split() for s in ("train", "test")}
    for split, key, n in (("train2014", "train", NUM_TRAIN), ("test2014", "test", NUM_VAL)):
        imgs = sorted(p.name for p in (root / "images" / split).iterdir())
        anns = sorted(p.name for p in (root / "annotations" / split).iterdir())
        assert len(imgs) == n and imgs == sorted(f"{s}.jpg" for s in lists[key])
        assert anns == sorted(f"{s}_labelTrainIds.png" for s in lists[key])
        assert all(re.fullmatch(r"COCO_train2014_\d{12}\.jpg", i) for i in imgs)
        for a in anns:
            assert _load(root / "annotations" / split / a).max() <= 171
    assert not set(lists["train"]) & set(lists["test"])


# ----------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("name", SEGMENTATION)
def test_deterministic_per_seed(name: str, tmp_path: Path) -> None:
    kw = {"num_train": 3, "num_val": 2}
    a = _files(generate_dataset(name, tmp_path / "a", seed=1, **kw))
    b = _files(generate_dataset(name, tmp_path / "b", seed=1, **kw))
    c = _files(generate_dataset(name, tmp_path / "c", seed=2, **kw))
    assert a == b
    assert a.keys() == c.keys()
    images = [k for k in a if not k.endswith(".txt")]
    assert all(a[k] != c[k] for k in images)


# ----------------------------------------------------------------------------- cache
def test_cache_returns_without_regenerating(tmp_path: Path) -> None:
    kw = {"cache_dir": tmp_path, "seed": 3, "num_train": 2, "num_val": 1}
    root = ensure_dataset("ade20k", **kw)
    d = dataset_dir("ade20k", **kw)
    assert root == d / "ADEChallengeData2016" and (d / ".complete").is_file()
    files = [p for p in root.rglob("*") if p.is_file()]
    before = {p: p.stat().st_mtime_ns for p in files + [d / ".complete"]}
    assert ensure_dataset("ade20k", **kw) == root
    assert {p: p.stat().st_mtime_ns for p in before} == before
    marker = json.loads((d / ".complete").read_text())
    assert marker["seed"] == 3 and marker["counts"] == {"training": 2, "validation": 1}
    # Other parameters -> another directory; nothing temporary left behind.
    other = ensure_dataset("ade20k", cache_dir=tmp_path, seed=3, num_train=2, num_val=2)
    assert other != root
    assert sorted(p.name.split("-")[0] for p in tmp_path.iterdir()) == ["ade20k", "ade20k"]


_RACE = (
    "import sys; from suite.data import ensure_dataset; "
    "print(ensure_dataset('voc2012', cache_dir=sys.argv[1], seed=5, num_train=6, num_val=2))"
)


def test_concurrent_generation_is_atomic(tmp_path: Path) -> None:
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [repo] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    procs = [
        subprocess.Popen([sys.executable, "-c", _RACE, str(tmp_path)], stdout=subprocess.PIPE,
                         text=True, env=env)
        for _ in range(3)
    ]
    results = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(results)) == 1
    entries = sorted(os.listdir(tmp_path))
    assert len(entries) == 1 and entries[0].startswith("voc2012-")
    info = describe(results[0])
    assert info["splits"] == {
        "train": {"images": 6, "labels": 6},
        "aug": {"images": 3, "labels": 3},
        "val": {"images": 2, "labels": 2},
    }


def test_losing_a_race_discards_the_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process finishes first: our rename fails, we return its tree, drop ours."""
    kw = {"cache_dir": tmp_path, "seed": 7, "num_train": 2, "num_val": 1}
    final = dataset_dir("cityscapes", **kw)
    writer = gen._WRITERS["cityscapes"]

    def write_then_lose(out: Path, *args: object) -> Path:
        root = writer(out, *args)  # type: ignore[arg-type]
        writer(final, *args)  # type: ignore[arg-type]
        (final / gen.MARKER).write_text("{}")  # the winner's marker
        return root

    monkeypatch.setitem(gen._WRITERS, "cityscapes", write_then_lose)
    assert ensure_dataset("cityscapes", **kw) == final
    assert os.listdir(tmp_path) == [final.name]  # no temporary directory left
    assert (final / gen.MARKER).read_text() == "{}"  # the winner's tree is untouched


# ----------------------------------------------------------------------------- scenes
_EXCLUDE = {"voc2012": (255,), "cityscapes": (255,), "ade20k": (0,), "coco_stuff10k": (0,)}


def _label_maps(name: str, root: Path) -> list[np.ndarray]:
    if name == "voc2012":
        return [_load(p) for p in sorted((root / "SegmentationClassAug").glob("*.png"))]
    if name == "cityscapes":
        return [_load(p) for p in sorted(root.rglob("*_gtFine_labelTrainIds.png"))]
    return [_load(p) for p in sorted((root / "annotations").rglob("*.png"))]


@pytest.mark.parametrize("name", SEGMENTATION)
def test_scenes_have_several_classes_and_thin_parts(name: str, roots: dict[str, Path]) -> None:
    maps = _label_maps(name, roots[name])
    assert len(maps) >= NUM_TRAIN
    exclude = _EXCLUDE[name]
    classes = [len(set(np.unique(m).tolist()) - set(exclude)) for m in maps]
    assert np.mean(classes) >= 3.0
    thin = [thin_pixels(m, exclude) for m in maps]
    assert np.mean([t >= 5 for t in thin]) >= 0.5, thin
    # Some region of an object class is at most 3 px wide (poles, legs, frames ...).
    assert max(thin) >= 20


def test_class_appearance_is_characteristic(roots: dict[str, Path]) -> None:
    """Mean colours of a class agree across images far better than across classes."""
    root = roots["cityscapes"]
    means: dict[int, list[np.ndarray]] = {}
    for p in sorted(root.rglob("*_leftImg8bit.png")):
        img = _load(p).astype(np.float64)
        gt = root / "gtFine" / p.parent.parent.name / p.parent.name
        lab = _load(gt / p.name.replace("_leftImg8bit.png", "_gtFine_labelTrainIds.png"))
        for c in (0, 1, 2, 10):  # road, sidewalk, building, sky: big regions
            if (lab == c).sum() > 50:
                means.setdefault(c, []).append(img[lab == c].mean(axis=0))
    centers = {c: np.mean(v, axis=0) for c, v in means.items()}
    within = np.mean([np.linalg.norm(m - centers[c]) for c, v in means.items() for m in v])
    between = np.mean([np.linalg.norm(centers[a] - centers[b])
                       for a in centers for b in centers if a < b])
    assert between > 2.0 * within


# ----------------------------------------------------------------------------- API / CLI
def test_metadata() -> None:
    assert set(SEGMENTATION) == {"voc2012", "cityscapes", "ade20k", "coco_stuff10k"}
    assert set(DATASETS) == set(SEGMENTATION) | {"coco2017"}
    assert {k: v.num_classes for k, v in DATASETS.items()} == {
        "voc2012": 21, "cityscapes": 19, "ade20k": 150, "coco_stuff10k": 171, "coco2017": 80}
    assert {k: v.eval_split for k, v in DATASETS.items()} == {
        "voc2012": "val", "cityscapes": "val", "ade20k": "validation",
        "coco_stuff10k": "test2014", "coco2017": "val2017"}
    assert {k for k, v in DATASETS.items() if v.reduce_zero_label} == {"ade20k", "coco_stuff10k"}
    assert DATASETS["cityscapes"].default_size == (64, 128)


def test_describe_and_cli(roots: dict[str, Path]) -> None:
    d = describe(roots["coco_stuff10k"])
    assert d["dataset"] == "coco_stuff10k" and d["params"]["seed"] == 0
    assert d["splits"]["test2014"] == {"images": NUM_VAL, "labels": NUM_VAL}
    assert describe(roots["voc2012"].parent.parent)["dataset"] == "voc2012"  # the cache dir
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert cli_main(["describe", str(roots["cityscapes"])]) == 0
    assert json.loads(buf.getvalue())["splits"]["val"]["images"] == NUM_VAL


def test_generation_is_fast(tmp_path: Path) -> None:
    import time

    t0 = time.perf_counter()
    generate_dataset("voc2012", tmp_path, seed=0, num_train=40, num_val=4, num_aug=20)
    assert time.perf_counter() - t0 < 5.0
