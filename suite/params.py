"""Params (and FLOPs) of the paper's networks: a model at width 1.0 with a dataset's classes.

A cell trains at its profile's width (a quarter on the smoke profile), so the ``params_m`` of
its result describes the network it trained, not the one the paper counts. The reports' Params
and FLOPs columns show the paper's network instead: the model's own config at width 1.0 with the
dataset's class count, built on the ``meta`` device (no memory, no initialisation; on the CPU
where a module needs real values while it is constructed, as MiT's drop-path schedule does) and
counted. Counting follows :func:`suite.train.complexity`: every parameter (auxiliary heads
included, as ``result.json``'s ``params_m``; ``deployed_m`` leaves them out), and FLOPs from
mmengine's analysis of one inference forward at :data:`PAPER_INPUT` (one fused multiply-add
counts as one FLOP; batch 1).

Parameter counts are cheap (about 0.1 s a model once the libraries are imported) and computed
on demand. FLOPs need a real forward pass at 512 x 512 (about 30 s on one core for COCO-Stuff's
three networks, DeepLabV3+-R101 most of it), so they are measured only when asked
(``flops=True``; ``python -m suite.params TABLE --flops DATASET``). Both are kept in
``<SUITE_CACHE>/full_width.json``, keyed by model, class count, input size and a fingerprint of
the code and library versions that define the networks (:func:`fingerprint`).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from suite.store import atomic_write_json, cache_dir, read_json

PAPER_INPUT: tuple[int, int] = (512, 512)  # the paper's input size for FLOPs (VOC, COCO-Stuff)
CACHE_NAME = "full_width.json"
# what defines a network: the families, the re-implemented nets and the task adapters
SOURCES = ("families", "nets", "tasks")
LIBRARIES = ("mmengine", "mmcv", "mmseg", "mmdet")


@lru_cache(maxsize=1)
def fingerprint() -> str:
    """Hash of the sources that define the networks and of the OpenMMLab library versions."""
    from importlib.metadata import PackageNotFoundError, version

    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for folder in SOURCES:
        for path in sorted((root / folder).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    for lib in LIBRARIES:
        try:
            digest.update(f"{lib}={version(lib)}".encode())
        except PackageNotFoundError:
            digest.update(f"{lib}=absent".encode())
    return digest.hexdigest()[:16]


def _key(model: str, num_classes: int) -> str:
    return f"{model}|{num_classes}|{PAPER_INPUT[0]}x{PAPER_INPUT[1]}|{fingerprint()}"


def _cache_path() -> Path:
    return cache_dir() / CACHE_NAME


def _build(model: str, num_classes: int, device: str) -> Any:
    """The model's network at width 1.0, built on ``device`` (``meta`` or ``cpu``)."""
    import torch
    from mmengine.registry import MODELS, DefaultScope

    from suite.families import family_of
    from suite.tasks import get_task

    task = get_task(getattr(family_of(model), "task", "segmentation"))
    task.load_modules()  # the library's registries and the suite's own modules
    cfg = task.model_config(model, num_classes, 1.0, "BN", PAPER_INPUT)
    with DefaultScope.overwrite_default_scope(task.scope), torch.device(device):
        return MODELS.build(cfg)


def count_params(net: Any) -> dict[str, float]:
    """``params_m`` (every parameter) and ``deployed_m`` (without ``auxiliary_head``), millions."""
    total = sum(p.numel() for p in net.parameters())
    aux = sum(p.numel() for n, p in net.named_parameters() if n.startswith("auxiliary_head."))
    return {"params_m": round(total / 1e6, 4), "deployed_m": round((total - aux) / 1e6, 4)}


def measure(model: str, num_classes: int, flops: bool = False) -> dict[str, float]:
    """Params of ``model`` at width 1.0 with ``num_classes`` classes; with ``flops``, also the
    FLOPs (G) of one forward at :data:`PAPER_INPUT` (``flops_g``) and the input size."""
    try:
        net = None if flops else _build(model, num_classes, "meta")
    except (RuntimeError, TypeError, NotImplementedError):
        net = None  # a module that needs real values at construction: build on the CPU
    if net is None:
        net = _build(model, num_classes, "cpu")
    out: dict[str, Any] = count_params(net)
    if flops:
        from suite.train import complexity

        out["flops_g"] = complexity(net, list(PAPER_INPUT))["flops_g"]
        out["flops_input"] = list(PAPER_INPUT)
    return out


def full_width(model: str, dataset: str, flops: bool = False,
               compute: bool = True) -> dict[str, Any]:
    """The cached counts of ``model`` at width 1.0 with ``dataset``'s classes.

    Missing params are measured when ``compute`` (cheap); FLOPs only when ``flops`` is asked,
    else they are whatever the cache holds (``flops_g`` absent when never measured).
    """
    from suite.data import DATASETS

    classes = DATASETS[dataset].num_classes
    key = _key(model, classes)
    cached = (read_json(_cache_path()) or {}).get(key, {})
    if ("params_m" in cached and (not flops or "flops_g" in cached)) or not compute:
        return dict(cached)
    record = {**cached, **measure(model, classes, flops=flops)}
    try:
        atomic_write_json(_cache_path(), {**(read_json(_cache_path()) or {}), key: record})
    except OSError:
        pass  # a read-only cache only costs time
    return record


def table_pairs(table: str) -> list[tuple[str, str]]:
    """Every (model, dataset) a table spec plans, teachers included, in plan order."""
    from suite.blocks import table_blocks
    from suite.tables import load_table

    return list(dict.fromkeys((m, d) for b in table_blocks(load_table(table))
                              for d in b.datasets for m in b.models))


def measure_table(table: str, flops_datasets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """``full_width`` of every (model, dataset) of ``table``; FLOPs on ``flops_datasets``."""
    return [{"model": m, "dataset": d, **full_width(m, d, flops=d in flops_datasets)}
            for m, d in table_pairs(table)]


def markdown(rows: list[dict[str, Any]]) -> str:
    """The measurements as a Markdown table."""

    def num(value: Any, digits: int) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    lines = ["| model | dataset | params (M) | deployed (M) | FLOPs (G) |", "|---|---|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['dataset']} | {num(r.get('params_m'), 2)} | "
              f"{num(r.get('deployed_m'), 2)} | {num(r.get('flops_g'), 1)} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m suite.params TABLE [--flops DATASET,...]``: measure, cache and print."""
    parser = argparse.ArgumentParser(prog="python -m suite.params", description=__doc__.split("\n")[0])
    parser.add_argument("table")
    parser.add_argument("--flops", default="",
                        help="datasets whose networks' FLOPs to measure at 512x512 (comma list)")
    args = parser.parse_args(argv)
    flops = tuple(d.strip() for d in args.flops.split(",") if d.strip())
    print(markdown(measure_table(args.table, flops)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
