"""Synthetic stand-ins for Pascal VOC 2012 (aug), Cityscapes, ADE20K, COCO-Stuff 10K and
MS-COCO 2017 (instances).

Each generator writes a small dataset in the real on-disk layout, so that mmsegmentation's
(for COCO 2017: mmdetection's) own dataset classes and standard pipelines load it unchanged::

    from suite.data import ensure_dataset, DATASETS
    root = ensure_dataset("voc2012", cache_dir=Path(...), seed=0, num_train=48, num_val=16)
    # root is the data_root of mmseg's base config (for VOC: .../VOCdevkit/VOC2012)
    root = ensure_dataset("coco2017", cache_dir=Path(...), seed=0, size=(128, 160))
    # root holds annotations/instances_{train,val}2017.json and {train,val}2017/*.jpg

Only numpy and PIL are needed to generate the segmentation datasets (COCO also uses OpenCV,
pycocotools and mmdet's class names); :func:`mmseg_dataset_config` and
:func:`mmdet_dataset_config` (lazy mmengine/mmseg/mmdet imports) return the libraries' shipped
base configs pointed at a data root and scaled down.
"""

from suite.data.generate import (
    DEFAULT_NUM_TRAIN,
    DEFAULT_NUM_VAL,
    GENERATOR_VERSION,
    dataset_dir,
    default_cache_dir,
    describe,
    ensure_dataset,
    generate_dataset,
    image_rng,
    voc_palette,
)
from suite.data.mmdet_config import mmdet_dataset_config
from suite.data.mmseg_config import base_config_path, default_sizes, mmseg_dataset_config
from suite.data.registry import DATASETS, IGNORE_INDEX, DatasetInfo, dataset_names, resolve_name

__all__ = [
    "DATASETS",
    "DEFAULT_NUM_TRAIN",
    "DEFAULT_NUM_VAL",
    "GENERATOR_VERSION",
    "IGNORE_INDEX",
    "DatasetInfo",
    "base_config_path",
    "dataset_dir",
    "dataset_names",
    "default_cache_dir",
    "default_sizes",
    "describe",
    "ensure_dataset",
    "generate_dataset",
    "image_rng",
    "mmdet_dataset_config",
    "mmseg_dataset_config",
    "resolve_name",
    "voc_palette",
]
