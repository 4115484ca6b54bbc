"""Predict what a table's missing cells will cost from the finished cells of a results folder.

A missing cell is matched against every finished result in the folder (any table) by the keys
of :data:`LEVELS`, most specific first; the first level with matches gives the estimate, the
median of their ``cost`` (wall seconds, and device seconds: GPU seconds on CUDA, CPU seconds on a
CPU run). Results written before the ``cost`` record existed contribute their ``wall_time_s``.
Finished cells of the table count with their own cost.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite.cost import device_seconds
from suite.store import Store, read_json
from suite.tables import Cell

# (label, config keys) from the closest match to the loosest
LEVELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("same model, method, profile, dataset",
     ("role", "model", "method_name", "profile", "dataset", "iters", "batch_size")),
    ("same model, method, profile", ("role", "model", "method_name", "profile")),
    ("same model, role, profile, dataset", ("role", "model", "profile", "dataset")),
    ("same role, profile", ("role", "profile")),
)


@dataclass(frozen=True)
class Observed:
    """What one finished result cost, with the config keys it is matched on."""

    keys: dict[str, Any]
    wall_s: float
    device_s: float


@dataclass(frozen=True)
class Estimate:
    """One cell's cost: measured (done) or predicted (from ``n`` matches at ``basis``)."""

    cell: Cell
    state: str
    wall_s: float
    device_s: float
    basis: str
    n: int


def _keys(config: dict[str, Any]) -> dict[str, Any]:
    return {"role": config.get("role"), "model": config.get("model"),
            "method_name": config.get("method_name", "none"), "profile": config.get("profile"),
            "dataset": config.get("dataset"), "iters": config.get("iters"),
            "batch_size": config.get("batch_size")}


def observed(result: dict[str, Any]) -> Observed | None:
    """The cost of one ``result.json`` (None when it records no time)."""
    cost = result.get("cost") or {}
    wall = cost.get("wall_s", result.get("wall_time_s"))
    if wall is None or not isinstance(result.get("config"), dict):
        return None
    return Observed(_keys(result["config"]), float(wall), device_seconds(cost))


def finished(results_dir: Path) -> list[Observed]:
    """The cost of every finished result under ``results_dir`` (any table)."""
    out = []
    for path in sorted(Path(results_dir).glob("*/result.json")):
        res = read_json(path)
        rec = observed(res) if isinstance(res, dict) else None
        if rec is not None:
            out.append(rec)
    return out


def _median(values: Iterable[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(statistics.median(vals)) if vals else float("nan")


def predict(cell: Cell, pool: list[Observed]) -> Estimate:
    """The median cost of the closest finished results (:data:`LEVELS`), NaN when none."""
    want = _keys(cell.config)
    for label, names in LEVELS:
        match = [o for o in pool if all(o.keys.get(k) == want[k] for k in names)]
        if match:
            return Estimate(cell, "estimate", _median(o.wall_s for o in match),
                            _median(o.device_s for o in match), label, len(match))
    return Estimate(cell, "estimate", float("nan"), float("nan"), "no finished cell to compare", 0)


def estimate(cells: list[Cell], store: Store) -> list[Estimate]:
    """Each cell's cost: its own when done, else predicted from the folder's finished cells."""
    pool = finished(store.root)
    out = []
    for cell in cells:
        res = store.result(cell.id) if store.state(cell.id) == "done" else None
        rec = observed(res) if res else None
        if rec is not None:
            out.append(Estimate(cell, "done", rec.wall_s, rec.device_s, "measured", 1))
        else:
            out.append(predict(cell, pool))
    return out


def hours(seconds: float) -> str:
    """``1.25 h`` / ``12.3 min`` / ``45 s`` / ``?``."""
    if math.isnan(seconds):
        return "?"
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def summary_lines(estimates: list[Estimate]) -> list[str]:
    """One line per cell and the totals (done, still to run, all), for ``suite plan --estimate``."""
    lines = [f"  {'state':8s} {'wall':>9s} {'device':>9s}  cell (basis)"]
    for e in estimates:
        basis = "" if e.state == "done" else f" ({e.basis}, n={e.n})"
        lines.append(f"  {e.state:8s} {hours(e.wall_s):>9s} {hours(e.device_s):>9s}  "
                     f"{e.cell.label}{basis}")
    todo = [e for e in estimates if e.state != "done"]
    done = [e for e in estimates if e.state == "done"]
    unknown = sum(1 for e in todo if math.isnan(e.wall_s))

    def total(items: list[Estimate], attr: str) -> float:
        return sum(getattr(e, attr) for e in items if not math.isnan(getattr(e, attr)))

    lines.append(f"done: {len(done)} cells, {hours(total(done, 'wall_s'))} wall, "
                 f"{hours(total(done, 'device_s'))} device")
    lines.append(f"to run: {len(todo)} cells, estimated {hours(total(todo, 'wall_s'))} wall, "
                 f"{hours(total(todo, 'device_s'))} device (serial sum; device = GPU seconds on "
                 "CUDA, CPU seconds on CPU)"
                 + (f"; {unknown} cell(s) without a finished cell to compare" if unknown else ""))
    lines.append(f"table total: {hours(total(estimates, 'wall_s'))} wall, "
                 f"{hours(total(estimates, 'device_s'))} device")
    return lines
