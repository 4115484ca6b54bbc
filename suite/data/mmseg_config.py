"""mmseg's shipped base dataset configs, pointed at a (synthetic) data root and scaled down.

:func:`mmseg_dataset_config` loads ``mmseg/.mim/configs/_base_/datasets/<base_config>`` with
``mmengine.Config.fromfile`` and rewrites every ``data_root`` and the size arguments of the
pipelines (``RandomResize``/``Resize`` ``scale``, ``RandomCrop`` ``crop_size``, ``Pad`` ``size``)
so that the standard pipelines run on the small synthetic images. mmengine and mmseg are
imported lazily (the generator itself only needs numpy and PIL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from suite.data.generate import _find_marker
from suite.data.loader_workers import set_loader_workers
from suite.data.registry import DATASETS, resolve_name


def base_config_path(name: str) -> Path:
    """Path of mmseg's shipped base dataset config of dataset ``name``."""
    import mmseg

    info = DATASETS[resolve_name(name)]
    path = Path(mmseg.__file__).parent / ".mim" / "configs" / "_base_" / "datasets"
    path = path / info.base_config
    if not path.is_file():
        raise FileNotFoundError(f"mmseg base config not found: {path}")
    return path


def default_sizes(name: str, size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(scale, crop_size)`` that mirror mmseg's settings for images of ``size`` (h, w).

    mmseg resizes VOC/ADE/COCO-Stuff images to a 512 short side and crops 512x512; Cityscapes
    keeps 2048x1024 and crops 512x1024. The same ratios applied to the synthetic size give
    ``scale=(4h, h)``, ``crop=(h, h)`` and for Cityscapes ``scale=(w, h)``, ``crop=(h/2, w/2)``.
    ``scale`` is mmcv's ``(w, h)``-style pair, ``crop_size`` mmseg's ``(h, w)``.
    """
    h, w = size
    if resolve_name(name) == "cityscapes":
        return (w, h), (h // 2, w // 2)
    short = min(h, w)
    return (4 * short, short), (short, short)


def _rewrite(node: Any, data_root: str, scale: tuple[int, int] | None,
             crop: tuple[int, int] | None) -> None:
    if isinstance(node, dict):
        if "data_root" in node:
            node["data_root"] = data_root
        kind = node.get("type")
        if scale is not None and kind in ("RandomResize", "Resize") and "scale" in node:
            node["scale"] = scale
        if crop is not None and kind == "RandomCrop":
            node["crop_size"] = crop
        if crop is not None and kind == "Pad" and "size" in node:
            node["size"] = crop
        for value in node.values():
            _rewrite(value, data_root, scale, crop)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _rewrite(value, data_root, scale, crop)


def _base_scale(cfg: Any) -> tuple[int, int]:
    """The resize scale of mmseg's training pipeline (the same as its test pipeline's)."""
    for step in cfg.train_pipeline:
        if step["type"] in ("RandomResize", "Resize") and "scale" in step:
            return tuple(step["scale"])
    raise ValueError(f"no resize scale in {cfg.filename}")


def mmseg_dataset_config(
    name: str,
    data_root: Path | str,
    scale: tuple[int, int] | None = None,
    crop_size: tuple[int, int] | None = None,
    num_workers: int | None = None,
) -> Any:
    """mmseg's base dataset config of ``name`` (an ``mmengine.Config``) for ``data_root``.

    With ``crop_size`` alone, every resize ``scale`` is mmseg's scaled by the same factor as the
    crop (crop 64 on VOC, whose crop is 512 under a (2048, 512) scale, gives (256, 64)): the
    paper protocol at a smaller size. With neither, both default to :func:`default_sizes` of the
    generated image size when ``data_root`` holds a generated dataset (its ``.complete``
    marker), else stay mmseg's.
    ``num_workers`` (if given) is set on every dataloader, with ``persistent_workers`` and the
    datasets' ``serialize_data`` off when it is 0 (:mod:`suite.data.loader_workers`).
    """
    from mmengine.config import Config

    cfg = Config.fromfile(str(base_config_path(name)))
    root = str(data_root)
    found = _find_marker(Path(data_root))
    if crop_size is not None and scale is None:
        factor = crop_size[0] / tuple(cfg.get("crop_size", (512, 512)))[0]
        scale = tuple(int(round(s * factor)) for s in _base_scale(cfg))
    elif found is not None and (scale is None or crop_size is None):
        size = tuple(found[1]["size"])
        d_scale, d_crop = default_sizes(name, (int(size[0]), int(size[1])))
        scale = d_scale if scale is None else scale
        crop_size = d_crop if crop_size is None else crop_size
    cfg.data_root = root
    if crop_size is not None:
        cfg.crop_size = tuple(crop_size)
    for key in list(cfg.keys()):
        _rewrite(cfg[key], root, None if scale is None else tuple(scale),
                 None if crop_size is None else tuple(crop_size))
    if num_workers is not None:
        set_loader_workers(cfg, num_workers)
    return cfg
