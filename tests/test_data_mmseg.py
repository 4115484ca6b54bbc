"""mmseg's own dataset classes and shipped pipelines load the synthetic datasets unchanged."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("mmseg")
torch = pytest.importorskip("torch")

from mmengine.config import Config  # noqa: E402
from mmseg import datasets as mmseg_datasets  # noqa: E402
from mmseg.utils import register_all_modules  # noqa: E402

from suite.data import (  # noqa: E402
    DATASETS,
    base_config_path,
    dataset_names,
    ensure_dataset,
    mmseg_dataset_config,
)

SEGMENTATION = dataset_names("segmentation")  # coco2017 (detection): test_data_coco.py
NUM_TRAIN, NUM_VAL = 8, 4


@pytest.fixture(scope="module", autouse=True)
def _mmseg_scope() -> None:
    register_all_modules(init_default_scope=True)


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    cache = tmp_path_factory.mktemp("synthetic-mmseg")
    return {
        name: ensure_dataset(name, cache_dir=cache, seed=0, num_train=NUM_TRAIN, num_val=NUM_VAL)
        for name in SEGMENTATION
    }


def _build(ds_cfg: Any) -> Any:
    kwargs = dict(ds_cfg)
    cls = getattr(mmseg_datasets, kwargs.pop("type"))
    return cls(**kwargs)


def _train_cfgs(cfg: Config) -> list[Any]:
    ds = cfg.train_dataloader.dataset
    return list(ds.datasets) if ds.type == "ConcatDataset" else [ds]


def _check_item(item: dict[str, Any], num_classes: int) -> np.ndarray:
    x = item["inputs"]
    assert isinstance(x, torch.Tensor) and x.dtype == torch.uint8
    assert x.ndim == 3 and x.shape[0] == 3
    gt = item["data_samples"].gt_sem_seg.data
    assert gt.shape == (1, *x.shape[1:])
    values = set(gt.unique().tolist())
    assert values <= set(range(num_classes)) | {255}, values
    return gt[0].numpy()


@pytest.mark.parametrize("name", SEGMENTATION)
def test_registry_matches_shipped_config(name: str) -> None:
    info = DATASETS[name]
    cfg = Config.fromfile(str(base_config_path(name)))
    assert cfg.dataset_type == info.mmseg_type
    assert cfg.data_root == info.mmseg_data_root
    train = _train_cfgs(cfg)
    assert len(train) == len(info.train_splits)
    for split, ds in zip(info.train_splits, train):
        assert dict(ds.data_prefix) == info.data_prefixes[split]
        assert ds.get("ann_file") == info.ann_files.get(split)
    val = cfg.val_dataloader.dataset
    assert dict(val.data_prefix) == info.data_prefixes[info.eval_split]
    assert val.get("ann_file") == info.ann_files.get(info.eval_split)
    load = next(t for t in cfg.test_pipeline if t["type"] == "LoadAnnotations")
    assert bool(load.get("reduce_zero_label", False)) == info.reduce_zero_label
    cls = getattr(mmseg_datasets, info.mmseg_type)
    assert len(cls.METAINFO["classes"]) == info.num_classes
    params = inspect.signature(cls.__init__).parameters
    assert params["img_suffix"].default == info.img_suffix
    assert params["seg_map_suffix"].default == info.seg_map_suffix


@pytest.mark.parametrize("name", SEGMENTATION)
def test_mmseg_dataset_loads_items(name: str, roots: dict[str, Path]) -> None:
    info = DATASETS[name]
    cfg = mmseg_dataset_config(name, roots[name], num_workers=0)
    crop = tuple(cfg.crop_size)
    for split, ds_cfg in zip(info.train_splits, _train_cfgs(cfg)):
        ds = _build(ds_cfg)
        assert len(ds) == (NUM_TRAIN // 2 if split == "aug" else NUM_TRAIN)
        for i in (0, len(ds) - 1):
            gt = _check_item(ds[i], info.num_classes)
            assert gt.shape[0] <= crop[0] and gt.shape[1] <= crop[1]
    val = _build(cfg.val_dataloader.dataset)
    assert len(val) == NUM_VAL
    gt = _check_item(val[0], info.num_classes)
    assert gt.shape == info.default_size


@pytest.mark.parametrize("name", SEGMENTATION)
def test_val_labels_match_files(name: str, roots: dict[str, Path]) -> None:
    """The test pipeline's ground truth is the file's label map (ADE/COCO: zero reduced)."""
    info = DATASETS[name]
    cfg = mmseg_dataset_config(name, roots[name], num_workers=0)
    val = _build(cfg.val_dataloader.dataset)
    saw_zero = False
    for i in range(len(val)):
        raw = np.asarray(Image.open(val.get_data_info(i)["seg_map_path"])).astype(np.int64)
        gt = _check_item(val[i], info.num_classes)
        if info.reduce_zero_label:
            expected = raw - 1
            expected[raw == 0] = 255
            saw_zero |= bool((raw == 0).any())
        else:
            expected = raw
        assert np.array_equal(gt, expected)
    if name == "ade20k":
        assert saw_zero  # 0 ("other") occurs and maps to 255
    if name == "voc2012":
        assert (gt == 255).any()  # the VOC void border survives loading


def test_voc_aug_concat_dataloader(roots: dict[str, Path]) -> None:
    """The voc12aug config's ConcatDataset (train + aug) batches through mmengine."""
    from mmengine.runner import Runner

    cfg = mmseg_dataset_config("voc2012", roots["voc2012"], num_workers=0)
    cfg.train_dataloader.batch_size = 4
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    assert len(loader.dataset) == NUM_TRAIN + NUM_TRAIN // 2
    batch = next(iter(loader))
    assert len(batch["inputs"]) == 4
    assert all(tuple(x.shape) == (3, 96, 96) for x in batch["inputs"])  # cropped and padded


@pytest.mark.parametrize("workers", [0, 2])
def test_datasets_serialise_their_annotations_only_for_worker_processes(workers, roots) -> None:
    """mmengine's ``serialize_data`` (a gc.collect() and a shared buffer) only with workers;
    the VOC config's ConcatDataset passes it to both datasets it wraps."""
    from mmengine.runner import Runner

    cfg = mmseg_dataset_config("voc2012", roots["voc2012"], num_workers=workers)
    assert cfg.train_dataloader.persistent_workers == (workers > 0)
    leaves = [*_train_cfgs(cfg), cfg.val_dataloader.dataset, cfg.test_dataloader.dataset]
    assert len(leaves) == 4 and all(d.serialize_data == (workers > 0) for d in leaves)
    assert "serialize_data" not in cfg.train_dataloader.dataset  # the wrapper takes none
    if workers == 0:
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        assert not any(d.serialize_data for d in loader.dataset.datasets)


@pytest.mark.parametrize(("name", "crop", "scale"), [("voc2012", (64, 64), (256, 64)),
                                                      ("cityscapes", (64, 128), (256, 128))])
def test_a_crop_alone_scales_every_resize_in_proportion(name, crop, scale, roots) -> None:
    """The paper protocol at a smaller size: crop 512 under scale (2048, 512) becomes crop 64
    under (256, 64); Cityscapes' 512x1024 crop under (2048, 1024) becomes 64x128 under (256, 128)."""
    cfg = mmseg_dataset_config(name, roots[name], crop_size=crop, num_workers=0)
    steps = [s for key in ("train_pipeline", "test_pipeline") for s in cfg[key]]
    assert {tuple(s["scale"]) for s in steps if s["type"] in ("RandomResize", "Resize")} == {scale}
    assert [tuple(s["crop_size"]) for s in steps if s["type"] == "RandomCrop"] == [crop]
    train = cfg.train_dataloader.dataset
    datasets = train.get("datasets", [train])
    assert all(d["data_root"] == str(roots[name]) for d in datasets)
