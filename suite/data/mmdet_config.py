"""mmdet's shipped COCO base dataset configs, pointed at a data root and an input size.

:func:`mmdet_dataset_config` loads ``mmdet::_base_/datasets/coco_instance.py`` (boxes and
masks: Cascade Mask R-CNN) or ``coco_detection.py`` (boxes only: GFL, RetinaNet) and changes
only what depends on where the data lives and on the profile's input size; everything else
(pipelines, samplers, ``filter_cfg``, the ``CocoMetric``) stays mmdet's. A real COCO 2017 root
(``annotations/instances_{train,val}2017.json``, ``{train,val}2017/*.jpg``) and a generated
one (:func:`suite.data.ensure_dataset` ``("coco2017", ...)``) are treated alike. mmdet's
training ``filter_cfg`` stays too (``filter_empty_gt``, ``min_size=32``: images with a side under
32 px are left out of training). mmengine and mmdet are imported lazily.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any

from suite.data.loader_workers import set_loader_workers
from suite.errors import SpecError

#: mmdet config names of the two COCO base configs.
INSTANCE_CONFIG = "mmdet::_base_/datasets/coco_instance.py"
DETECTION_CONFIG = "mmdet::_base_/datasets/coco_detection.py"
_EVALUATORS = ("val_evaluator", "test_evaluator")


def _rewrite(node: Any, root: str, scale: tuple[int, int]) -> None:
    """Set every ``data_root``, ``backend_args`` and ``Resize`` scale under ``node``."""
    if isinstance(node, dict):
        if "data_root" in node:
            node["data_root"] = root
        if "backend_args" in node:
            node["backend_args"] = None
        if node.get("type") == "Resize" and "scale" in node:
            node["scale"] = scale
        for value in node.values():
            _rewrite(value, root, scale)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _rewrite(value, root, scale)


def mmdet_dataset_config(
    root: str | Path,
    input_size: tuple[int, int],
    num_workers: int = 0,
    with_mask: bool = True,
) -> Any:
    """mmdet's COCO base dataset config (an ``mmengine.Config``) for ``root`` and a size.

    Args:
        root: The COCO data root (holding ``annotations/`` and ``train2017/``, ``val2017/``),
            real or generated. It becomes every ``data_root``; the ``ann_file``s stay relative
            (``annotations/instances_*2017.json``) as in mmdet's config, and the evaluator's
            ``ann_file`` becomes ``<root>/annotations/instances_val2017.json``.
        input_size: The profile's input size ``(height, width)``. Every ``Resize`` gets
            ``scale=(width, height)`` and keeps mmdet's ``keep_ratio=True``: an image is scaled
            by the largest factor that fits its long side in ``max(width, height)`` and its
            short side in ``min(width, height)``. The paper's setting is mmdet's own
            ``scale=(1333, 800)``, i.e. ``input_size=(800, 1333)`` (a 640x480 COCO image
            becomes 1067x800); a generated dataset of ``(h, w)`` images with
            ``input_size=(h, w)`` is left at its size, and ``(2h, 2w)`` doubles it.
        num_workers: Workers of every dataloader (``persistent_workers`` and the datasets'
            ``serialize_data`` only when > 0: :mod:`suite.data.loader_workers`).
        with_mask: ``coco_instance.py`` (masks loaded, metric ``['bbox', 'segm']``) when true,
            else ``coco_detection.py`` (metric ``['bbox']``).

    Returns:
        The config with ``train_dataloader``, ``val_dataloader``, ``test_dataloader``,
        ``val_evaluator`` and ``test_evaluator`` (and mmdet's ``train_pipeline``,
        ``test_pipeline``, ``dataset_type``, ``data_root``, ``backend_args``);
        ``backend_args=None`` everywhere and ``format_only=False``.
    """
    from suite.tasks.library import library_config

    size = tuple(input_size)
    if len(size) != 2 or not all(isinstance(v, numbers.Integral) and v > 0 for v in size):
        raise SpecError(f"input_size must be two positive ints (height, width), got {input_size!r}")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise SpecError(f"num_workers must be a non-negative int, got {num_workers!r}")
    height, width = (int(v) for v in size)
    cfg = library_config(INSTANCE_CONFIG if with_mask else DETECTION_CONFIG)
    data_root = str(root)
    cfg.data_root = data_root
    for key in list(cfg.keys()):
        _rewrite(cfg[key], data_root, (width, height))
    set_loader_workers(cfg, num_workers)
    val_ann = cfg.val_dataloader.dataset.ann_file
    for key in _EVALUATORS:
        cfg[key]["ann_file"] = os.path.join(data_root, val_ann)
        cfg[key]["metric"] = ["bbox", "segm"] if with_mask else ["bbox"]
        cfg[key]["format_only"] = False
    return cfg
