"""Metadata of the benchmark datasets, as mmsegmentation 1.2.2 and mmdetection 3.3.0 know them.

Each :class:`DatasetInfo` names the library's dataset class and its shipped base config
(``<library>/.mim/configs/_base_/datasets/<base_config>``), the number of classes, the splits
the synthetic generator writes, which split the paper evaluates on, and for segmentation
whether mmseg reduces the zero label (label ``0`` on disk is "other"/"unlabeled" and becomes
``255``). The four segmentation datasets (``task="segmentation"``) are read by mmseg; MS-COCO
2017 instances (``task="detection"``) by mmdet, whose vocabulary its fields then use.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = 255


@dataclass(frozen=True)
class DatasetInfo:
    """What the suite needs to know about one dataset.

    The field names say "mmseg" because the segmentation datasets came first; for a
    ``task="detection"`` dataset they hold the same things in mmdet's terms (noted below).

    Attributes:
        name: Key in :data:`DATASETS`.
        mmseg_type: Name of the library's dataset class (``type=`` in a config): mmseg's for
            segmentation, mmdet's (``CocoDataset``) for detection.
        base_config: File name of the library's shipped base dataset config (mmdet: the
            instance-segmentation one, ``coco_instance.py``).
        num_classes: Number of evaluated classes (after ``reduce_zero_label``).
        splits: Split names the generator writes, in the dataset's own vocabulary.
        train_splits: Splits that make up the training set of the paper's setting.
        eval_split: Split the paper reports on.
        reduce_zero_label: Whether mmseg maps on-disk label 0 to 255 and shifts the rest down
            (always ``False`` for detection: there are no label maps).
        mmseg_data_root: ``data_root`` in the library's base config (what ours replaces).
        root_subdir: Path of that data root inside a generated dataset directory.
        default_size: Default image size ``(height, width)`` of the generator.
        img_suffix: Image suffix the dataset class expects.
        seg_map_suffix: Label-map suffix mmseg's dataset class expects (``""`` for detection:
            masks are polygons/RLE inside the annotation json).
        data_prefixes: Per split, the ``data_prefix`` dict of the library's config (mmdet:
            ``{"img": "<split>/"}``).
        ann_files: Per split, the ``ann_file`` (relative to the data root), if any (mmdet: the
            COCO json).
        ignore_index: Label value ignored by the segmentation losses and metrics.
        task: ``"segmentation"`` (mmseg) or ``"detection"`` (mmdet).
    """

    name: str
    mmseg_type: str
    base_config: str
    num_classes: int
    splits: tuple[str, ...]
    train_splits: tuple[str, ...]
    eval_split: str
    reduce_zero_label: bool
    mmseg_data_root: str
    root_subdir: str
    default_size: tuple[int, int]
    img_suffix: str
    seg_map_suffix: str
    data_prefixes: dict[str, dict[str, str]]
    ann_files: dict[str, str]
    ignore_index: int = IGNORE_INDEX
    task: str = "segmentation"


DATASETS: dict[str, DatasetInfo] = {
    "voc2012": DatasetInfo(
        name="voc2012",
        mmseg_type="PascalVOCDataset",
        base_config="pascal_voc12_aug.py",
        num_classes=21,
        splits=("train", "aug", "val"),
        train_splits=("train", "aug"),
        eval_split="val",
        reduce_zero_label=False,
        mmseg_data_root="data/VOCdevkit/VOC2012",
        root_subdir="VOCdevkit/VOC2012",
        default_size=(96, 96),
        img_suffix=".jpg",
        seg_map_suffix=".png",
        data_prefixes={
            "train": {"img_path": "JPEGImages", "seg_map_path": "SegmentationClass"},
            "aug": {"img_path": "JPEGImages", "seg_map_path": "SegmentationClassAug"},
            "val": {"img_path": "JPEGImages", "seg_map_path": "SegmentationClass"},
        },
        ann_files={
            "train": "ImageSets/Segmentation/train.txt",
            "aug": "ImageSets/Segmentation/aug.txt",
            "val": "ImageSets/Segmentation/val.txt",
        },
    ),
    "cityscapes": DatasetInfo(
        name="cityscapes",
        mmseg_type="CityscapesDataset",
        base_config="cityscapes.py",
        num_classes=19,
        splits=("train", "val"),
        train_splits=("train",),
        eval_split="val",
        reduce_zero_label=False,
        mmseg_data_root="data/cityscapes/",
        root_subdir="",
        default_size=(64, 128),
        img_suffix="_leftImg8bit.png",
        seg_map_suffix="_gtFine_labelTrainIds.png",
        data_prefixes={
            "train": {"img_path": "leftImg8bit/train", "seg_map_path": "gtFine/train"},
            "val": {"img_path": "leftImg8bit/val", "seg_map_path": "gtFine/val"},
        },
        ann_files={},
    ),
    "ade20k": DatasetInfo(
        name="ade20k",
        mmseg_type="ADE20KDataset",
        base_config="ade20k.py",
        num_classes=150,
        splits=("training", "validation"),
        train_splits=("training",),
        eval_split="validation",
        reduce_zero_label=True,
        mmseg_data_root="data/ade/ADEChallengeData2016",
        root_subdir="ADEChallengeData2016",
        default_size=(96, 96),
        img_suffix=".jpg",
        seg_map_suffix=".png",
        data_prefixes={
            "training": {
                "img_path": "images/training",
                "seg_map_path": "annotations/training",
            },
            "validation": {
                "img_path": "images/validation",
                "seg_map_path": "annotations/validation",
            },
        },
        ann_files={},
    ),
    "coco_stuff10k": DatasetInfo(
        name="coco_stuff10k",
        mmseg_type="COCOStuffDataset",
        base_config="coco-stuff10k.py",
        num_classes=171,
        splits=("train2014", "test2014"),
        train_splits=("train2014",),
        eval_split="test2014",
        reduce_zero_label=True,
        mmseg_data_root="data/coco_stuff10k",
        root_subdir="",
        default_size=(96, 96),
        img_suffix=".jpg",
        seg_map_suffix="_labelTrainIds.png",
        data_prefixes={
            "train2014": {
                "img_path": "images/train2014",
                "seg_map_path": "annotations/train2014",
            },
            "test2014": {
                "img_path": "images/test2014",
                "seg_map_path": "annotations/test2014",
            },
        },
        ann_files={},
    ),
    "coco2017": DatasetInfo(
        name="coco2017",
        mmseg_type="CocoDataset",
        base_config="coco_instance.py",
        num_classes=80,
        splits=("train2017", "val2017"),
        train_splits=("train2017",),
        eval_split="val2017",
        reduce_zero_label=False,
        mmseg_data_root="data/coco/",
        root_subdir="",
        default_size=(128, 160),
        img_suffix=".jpg",
        seg_map_suffix="",
        data_prefixes={
            "train2017": {"img": "train2017/"},
            "val2017": {"img": "val2017/"},
        },
        ann_files={
            "train2017": "annotations/instances_train2017.json",
            "val2017": "annotations/instances_val2017.json",
        },
        task="detection",
    ),
}

ALIASES: dict[str, str] = {
    "voc": "voc2012",
    "pascal_voc": "voc2012",
    "pascal_voc12": "voc2012",
    "pascal_voc12_aug": "voc2012",
    "voc12aug": "voc2012",
    "ade": "ade20k",
    "coco-stuff10k": "coco_stuff10k",
    "coco_stuff": "coco_stuff10k",
    "cocostuff10k": "coco_stuff10k",
    "coco": "coco2017",
    "coco_2017": "coco2017",
    "mscoco": "coco2017",
}


def resolve_name(name: str) -> str:
    """Return the canonical key of :data:`DATASETS` for ``name`` (accepts a few aliases)."""
    key = name.lower().strip()
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        known = ", ".join(sorted(DATASETS))
        raise KeyError(f"unknown dataset {name!r}; known: {known}")
    return key


def dataset_names(task: str | None = None) -> list[str]:
    """Sorted keys of :data:`DATASETS`, only those of ``task`` when given."""
    return sorted(k for k, v in DATASETS.items() if task is None or v.task == task)
