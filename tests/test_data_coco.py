"""Synthetic COCO 2017 instances: COCO's json format, visible-part annotations, caching, and
mmdet's own CocoDataset, pipelines and CocoMetric on it."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("mmdet")
pytest.importorskip("pycocotools")
torch = pytest.importorskip("torch")

from mmdet.datasets.coco import CocoDataset  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402

from suite.data import (  # noqa: E402
    DATASETS,
    dataset_dir,
    describe,
    ensure_dataset,
    generate_dataset,
    image_rng,
    mmdet_dataset_config,
    resolve_name,
)
from suite.data.__main__ import main as cli_main  # noqa: E402
from suite.data.coco import COCO_CATEGORY_IDS, coco_scene  # noqa: E402
from suite.errors import SpecError  # noqa: E402
from suite.tasks.library import library_config  # noqa: E402

SIZE = (64, 80)  # (h, w)
NUM_TRAIN, NUM_VAL = 10, 8
#: COCO 2017's category ids: 1..90 without these ten.
COCO_GAPS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("synthetic-coco")
    return ensure_dataset("coco2017", cache_dir=cache, seed=0, num_train=NUM_TRAIN,
                          num_val=NUM_VAL, size=SIZE)


@pytest.fixture(scope="module")
def apis(root: Path) -> dict[str, COCO]:
    with redirect_stdout(io.StringIO()):  # pycocotools prints progress
        return {s: COCO(str(root / "annotations" / f"instances_{s}.json"))
                for s in ("train2017", "val2017")}


@pytest.fixture(scope="module")
def mmdet_scope() -> None:
    from mmdet.utils import register_all_modules

    register_all_modules(init_default_scope=True)


def _all_anns(apis: dict[str, COCO]) -> list[tuple[COCO, dict[str, Any]]]:
    return [(api, a) for api in apis.values() for a in api.dataset["annotations"]]


# ----------------------------------------------------------------------------- registry
def test_registry_matches_mmdet_shipped_config() -> None:
    info = DATASETS["coco2017"]
    assert info.task == "detection" and info.num_classes == 80
    assert info.splits == ("train2017", "val2017") and info.eval_split == "val2017"
    assert all(resolve_name(a) == "coco2017" for a in ("coco", "COCO_2017", "mscoco"))
    assert DATASETS["voc2012"].task == "segmentation"  # the default of the older entries
    cfg = library_config(f"mmdet::_base_/datasets/{info.base_config}")
    assert cfg.dataset_type == info.mmseg_type and cfg.data_root == info.mmseg_data_root
    for key, split in (("train_dataloader", "train2017"), ("val_dataloader", "val2017")):
        ds = cfg[key].dataset
        assert dict(ds.data_prefix) == info.data_prefixes[split]
        assert ds.ann_file == info.ann_files[split]


# ----------------------------------------------------------------------------- json format
def test_layout_and_json_format(root: Path, apis: dict[str, COCO]) -> None:
    visible = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    assert visible == ["annotations", "train2017", "val2017"]
    for split, n in (("train2017", NUM_TRAIN), ("val2017", NUM_VAL)):
        doc = apis[split].dataset
        assert set(doc) == {"info", "licenses", "images", "annotations", "categories"}
        assert len(doc["images"]) == n
        files = sorted(p.name for p in (root / split).iterdir())
        assert files == sorted(im["file_name"] for im in doc["images"])
        for im in doc["images"]:
            assert im["file_name"] == f"{im['id']:012d}.jpg"
            assert (im["height"], im["width"]) == SIZE
        for a in doc["annotations"]:
            assert {"id", "image_id", "category_id", "bbox", "area", "segmentation",
                    "iscrowd"} <= set(a)
            assert all(isinstance(v, float) for v in a["bbox"]) and isinstance(a["area"], float)
    ids = [im["id"] for api in apis.values() for im in api.dataset["images"]]
    ann_ids = [a["id"] for _, a in _all_anns(apis)]
    assert len(set(ids)) == len(ids) and len(set(ann_ids)) == len(ann_ids)


def test_categories_are_cocos_with_gaps_and_mmdet_names(apis: dict[str, COCO]) -> None:
    cats = apis["val2017"].dataset["categories"]
    ids = [c["id"] for c in cats]
    assert len(cats) == 80 and ids == sorted(ids)
    assert set(range(1, 91)) - set(ids) == COCO_GAPS and list(COCO_CATEGORY_IDS) == ids
    assert [c["name"] for c in cats] == list(CocoDataset.METAINFO["classes"])
    by_id = {c["id"]: c for c in cats}
    assert by_id[13]["name"] == "stop sign" and by_id[90]["name"] == "toothbrush"
    assert by_id[1]["supercategory"] == "person" and by_id[88]["supercategory"] == "indoor"
    assert by_id[67]["name"] == "dining table" and by_id[67]["supercategory"] == "furniture"
    assert apis["train2017"].dataset["categories"] == cats


def test_polygons_rle_and_crowds(apis: dict[str, COCO]) -> None:
    anns = [a for _, a in _all_anns(apis)]
    poly = [a for a in anns if isinstance(a["segmentation"], list)]
    rle = [a for a in anns if isinstance(a["segmentation"], dict)]
    crowd = [a for a in anns if a["iscrowd"] == 1]
    assert len(poly) + len(rle) == len(anns) and len(poly) > len(anns) / 2
    assert rle and crowd and all(a["iscrowd"] in (0, 1) for a in anns)
    assert all(isinstance(a["segmentation"], dict) for a in crowd)  # crowds are RLE, as COCO's
    for a in rle:
        assert isinstance(a["segmentation"]["counts"], str)
        assert a["segmentation"]["size"] == list(SIZE)
    for a in poly:
        assert all(len(p) >= 6 and len(p) % 2 == 0 for p in a["segmentation"])


def test_bbox_and_area_are_the_masks(apis: dict[str, COCO]) -> None:
    for api, a in _all_anns(apis):
        m = api.annToMask(a).astype(bool)
        ys, xs = np.nonzero(m)
        assert a["area"] == m.sum() > 0
        extent = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert a["bbox"] == [float(v) for v in extent]


def test_annotations_are_the_visible_parts(apis: dict[str, COCO]) -> None:
    """Each mask is exactly what the scene left visible of its object; masks do not overlap."""
    api = apis["val2017"]
    for i, image_id in enumerate(sorted(api.getImgIds())):
        _, instances, objects = coco_scene(*SIZE, image_rng("coco2017", "val2017", i, 0))
        anns = sorted(api.loadAnns(api.getAnnIds(imgIds=image_id)), key=lambda a: a["id"])
        assert len(anns) == len(objects)
        union = np.zeros(SIZE, dtype=int)
        for a, obj in zip(anns, objects):
            m = api.annToMask(a).astype(bool)
            assert np.array_equal(m, instances == obj.value)
            assert a["category_id"] == COCO_CATEGORY_IDS[obj.label]
            assert a["iscrowd"] == int(obj.iscrowd)
            union += m
        assert union.max() <= 1


def _overlap(a: list[float], b: list[float]) -> bool:
    return (min(a[0] + a[2], b[0] + b[2]) > max(a[0], b[0])
            and min(a[1] + a[3], b[1] + b[3]) > max(a[1], b[1]))


def test_objects_occlude_and_vary_in_size(apis: dict[str, COCO]) -> None:
    overlapping = 0
    for api in apis.values():
        for image_id in api.getImgIds():
            boxes = [a["bbox"] for a in api.loadAnns(api.getAnnIds(imgIds=image_id))]
            overlapping += sum(_overlap(p, q) for i, p in enumerate(boxes) for q in boxes[:i])
    assert overlapping >= 5
    areas = np.array([a["area"] for _, a in _all_anns(apis)]) / (SIZE[0] * SIZE[1])
    assert areas.min() < 0.01 and areas.max() > 0.1
    per_image = [len(api.getAnnIds(imgIds=i)) for api in apis.values() for i in api.getImgIds()]
    assert np.mean(per_image) >= 3
    labels = {a["category_id"] for _, a in _all_anns(apis)}
    assert len(labels) >= 15


# ----------------------------------------------------------------------------- cache
def test_deterministic_per_seed(tmp_path: Path) -> None:
    kw = {"num_train": 3, "num_val": 2, "size": SIZE}

    def files(r: Path) -> dict[str, bytes]:
        return {str(p.relative_to(r)): p.read_bytes() for p in sorted(r.rglob("*")) if p.is_file()}

    a = files(generate_dataset("coco2017", tmp_path / "a", seed=1, **kw))
    b = files(generate_dataset("coco2017", tmp_path / "b", seed=1, **kw))
    c = files(generate_dataset("coco2017", tmp_path / "c", seed=2, **kw))
    assert a == b and a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a)


def test_cached_generation_is_not_rewritten(tmp_path: Path) -> None:
    kw = {"cache_dir": tmp_path, "seed": 0, "num_train": 2, "num_val": 1, "size": SIZE}
    r = ensure_dataset("coco", **kw)
    d = dataset_dir("coco2017", **kw)
    assert r == d and (d / ".complete").is_file()
    files = [p for p in d.rglob("*") if p.is_file()]
    before = {p: p.stat().st_mtime_ns for p in files}
    assert ensure_dataset("coco2017", **kw) == r
    assert {p: p.stat().st_mtime_ns for p in files} == before
    marker = json.loads((d / ".complete").read_text())
    assert marker["counts"] == {"train2017": 2, "val2017": 1} and marker["dataset_version"] == 1
    out = describe(d)
    assert out["dataset"] == "coco2017" and out["data_root"] == str(r)
    assert out["splits"]["train2017"]["images"] == out["splits"]["train2017"]["labels"] == 2
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert cli_main(["list"]) == 0
    assert json.loads(buf.getvalue())["coco2017"]["task"] == "detection"


# ----------------------------------------------------------------------------- mmdet
def test_config_is_mmdets_pointed_at_the_root() -> None:
    cfg = mmdet_dataset_config("/data/coco", (800, 1333), num_workers=2)  # the paper's setting
    shipped = library_config("mmdet::_base_/datasets/coco_instance.py")
    for key in ("train_pipeline", "test_pipeline"):
        assert cfg[key] == shipped[key]  # scale (1333, 800), keep_ratio: mmdet's own
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        ds = cfg[key].dataset
        assert ds.data_root == "/data/coco" and ds.ann_file == shipped[key].dataset.ann_file
        assert cfg[key].num_workers == 2 and cfg[key].persistent_workers and ds.serialize_data
    for key in ("val_evaluator", "test_evaluator"):
        ev = cfg[key]
        assert ev.type == "CocoMetric" and ev.metric == ["bbox", "segm"] and not ev.format_only
        assert ev.ann_file == "/data/coco/annotations/instances_val2017.json"
    det = mmdet_dataset_config("/data/coco", (96, 120), with_mask=False)
    assert det.val_evaluator.metric == ["bbox"] and det.train_dataloader.num_workers == 0
    assert not det.train_dataloader.persistent_workers
    assert not det.train_dataloader.dataset.serialize_data  # no workers: nothing to share
    resize = [s for s in det.train_pipeline + det.test_pipeline if s["type"] == "Resize"]
    assert [(tuple(s["scale"]), s["keep_ratio"]) for s in resize] == [((120, 96), True)] * 2
    load = next(s for s in det.train_pipeline if s["type"] == "LoadAnnotations")
    assert not load.get("with_mask", False)
    with pytest.raises(SpecError, match="input_size"):
        mmdet_dataset_config("/data/coco", (0, 100))


def test_mmdet_dataset_and_pipeline(root: Path, mmdet_scope: None) -> None:
    from mmdet.registry import DATASETS as MMDET_DATASETS
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks

    size = (2 * SIZE[0], 2 * SIZE[1])
    cfg = mmdet_dataset_config(root, size)
    train = MMDET_DATASETS.build(cfg.train_dataloader.dataset)
    val = MMDET_DATASETS.build(cfg.val_dataloader.dataset)
    assert len(val) == NUM_VAL and 0 < len(train) <= NUM_TRAIN
    assert val.cat_ids == list(COCO_CATEGORY_IDS)
    assert val.cat2label[13] == 11 and val.cat2label[90] == 79
    # mmdet's test pipeline loads the annotations after Resize: ground truth stays at the
    # original size, for the metric; the training pipeline resizes it with the image.
    for ds, gt_size in ((train, size), (val, SIZE)):
        item = ds[0]
        assert tuple(item["inputs"].shape) == (3, *size)
        sample = item["data_samples"]
        assert isinstance(sample, DetDataSample)
        gt = sample.gt_instances
        n = len(gt)
        assert n > 0 and tuple(gt.bboxes.shape) == (n, 4) and tuple(gt.labels.shape) == (n,)
        assert gt.labels.min() >= 0 and gt.labels.max() < 80
        assert isinstance(gt.masks, BitmapMasks) and gt.masks.masks.shape == (n, *gt_size)
    boxes = MMDET_DATASETS.build(mmdet_dataset_config(root, size, with_mask=False)
                                 .val_dataloader.dataset)[0]["data_samples"].gt_instances
    assert "masks" not in boxes and len(boxes) > 0


def _evaluate(root: Path, shift: float) -> dict[str, float]:
    """CocoMetric on the val split, ground truth as predictions (boxes shifted by ``shift``
    widths)."""
    from mmdet.registry import DATASETS as MMDET_DATASETS
    from mmdet.registry import METRICS
    from mmengine.structures import InstanceData

    cfg = mmdet_dataset_config(root, SIZE)  # no rescaling: predictions in image coordinates
    val = MMDET_DATASETS.build(cfg.val_dataloader.dataset)
    metric = METRICS.build(cfg.val_evaluator)
    metric.dataset_meta = val.metainfo
    for i in range(len(val)):
        sample = val[i]["data_samples"]
        assert sample.scale_factor == (1.0, 1.0)
        gt = sample.gt_instances
        boxes = gt.bboxes.tensor.clone()
        dx = (boxes[:, 2] - boxes[:, 0]) * shift
        boxes[:, 0] += dx
        boxes[:, 2] += dx
        pred = InstanceData(bboxes=boxes, labels=gt.labels, scores=torch.ones(len(gt)),
                            masks=torch.from_numpy(gt.masks.to_ndarray()).bool())
        sample.pred_instances = pred
        metric.process({}, [sample.to_dict()])
    with redirect_stdout(io.StringIO()):
        return metric.evaluate(len(val))


def test_coco_metric_scores_ground_truth_perfectly_and_shifted_boxes_low(
        root: Path, mmdet_scope: None) -> None:
    exact = _evaluate(root, 0.0)
    assert exact["coco/bbox_mAP"] >= 0.99 and exact["coco/segm_mAP"] >= 0.99
    shifted = _evaluate(root, 0.6)
    assert shifted["coco/bbox_mAP"] < 0.3
    assert shifted["coco/segm_mAP"] >= 0.99  # masks unchanged: only the boxes are wrong
