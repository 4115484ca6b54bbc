"""The companion table of a reproduced table: mIoU, Boundary IoU and the connectivity error of
every row with Δ over the student, paired seed statistics, and what each row cost.

The paper reports mIoU only; its argument is about boundaries and connectivity (Figures 1, 5,
6). :func:`build_quality` lays our Boundary IoU (:mod:`suite.boundary_metrics`, Cheng et al.
2021) and Betti-0 connectivity error (Hu et al. 2019) beside our mIoU for the rows and dataset
columns of a :class:`~suite.report.layout.Layout`:

* a value is the mean over the finished seeds (± sample std for n ≥ 2) with Δ over the baseline
  of the main table (the block's student, or Table II's baseline column);
* where the row and its baseline both finished n ≥ 2 of the same seeds, Δ is the **paired**
  difference ``d̄ = (1/n) Σ_s (x_s − b_s)`` with standard error ``SE = sd(d) / √n``, and it is
  marked within noise (≈) when ``|d̄| ≤ 2 SE``;
* the cost of a row is the sum over its finished results in this table of the wall time and the
  device time (GPU seconds on CUDA, CPU seconds on a CPU run), and the table's total is the sum
  over all its finished results (a teacher shared with another table counts in both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from suite.report.layout import NAN, Layout, _column_mask
from suite.report.names import dataset_name, method_name
from suite.report.reference import RefColumn

MEASURES: tuple[tuple[str, str, int], ...] = (
    ("miou", "mIoU", 2),
    ("boundary_iou", "BIoU", 2),
    ("connectivity_error", "\u03b20 err", 3),
)
LOWER_IS_BETTER = frozenset({"connectivity_error"})
NOISE_SE = 2.0  # a paired difference within this many standard errors is noise
ROW_KINDS = frozenset({"teacher", "student", "method", "combination", "ablation"})


@dataclass
class Paired:
    """The paired difference to the baseline over the seeds both finished."""

    mean: float
    se: float
    n: int

    @property
    def within_noise(self) -> bool:
        """``|d̄| ≤ 2 SE`` (never for n < 2: no SE)."""
        return self.n >= 2 and not math.isnan(self.se) and abs(self.mean) <= NOISE_SE * self.se


@dataclass
class Value:
    """One measure of one row and column: seed statistics, Δ and the paired difference."""

    mean: float = NAN
    std: float = NAN
    n: int = 0
    delta: float = NAN
    paired: Paired | None = None
    seeds: dict[int, float] = field(default_factory=dict)

    @property
    def has_value(self) -> bool:
        """Whether a finished seed recorded this measure."""
        return self.n > 0


@dataclass
class Cost:
    """Wall and device seconds summed over a row's (or a table's) finished results."""

    wall_s: float = 0.0
    device_s: float = 0.0
    cells: int = 0
    devices: frozenset[str] = frozenset()


@dataclass
class QualityTable:
    """Everything the companion table prints."""

    groups: list[tuple[str, str]]  # (main column key, label)
    rows: list[int]  # indices into layout.rows
    labels: list[str]
    values: dict[tuple[int, str, str], Value]
    costs: dict[int, Cost]
    total: Cost
    any_paired: bool

    def value(self, row: int, group: str, measure: str) -> Value:
        """The value at (layout row, column key, measure), empty when absent."""
        return self.values.get((row, group, measure)) or Value()


def paired(values: dict[int, float], base: dict[int, float]) -> Paired | None:
    """``d̄`` and ``SE = sd(d)/√n`` over the seeds in both (None when fewer than one pair)."""
    seeds = sorted(set(values) & set(base))
    diffs = np.array([values[s] - base[s] for s in seeds], dtype=float)
    diffs = diffs[np.isfinite(diffs)]
    if not len(diffs):
        return None
    se = float(diffs.std(ddof=1) / math.sqrt(len(diffs))) if len(diffs) >= 2 else NAN
    return Paired(float(diffs.mean()), se, len(diffs))


def _seed_values(done: pd.DataFrame, measure: str) -> dict[int, dict[int, float]]:
    """``{layout row: {seed: value}}`` of one measure over finished results."""
    ok = done[done[measure].notna()]
    out: dict[int, dict[int, float]] = {}
    for r, seed, v in zip(ok["_row"].tolist(), ok["seed"].tolist(), ok[measure].tolist()):
        out.setdefault(int(r), {})[int(seed)] = float(v)
    return out


def _value(seeds: dict[int, float]) -> Value:
    vals = np.array(list(seeds.values()), dtype=float)
    if not len(vals):
        return Value()
    std = float(vals.std(ddof=1)) if len(vals) >= 2 else NAN
    return Value(float(vals.mean()), std, len(vals), seeds=dict(seeds))


def _baseline(layout: Layout, row: int, key: str) -> tuple[int, str] | None:
    """The (row, column) Δ is taken over, as in the main table (None for baselines)."""
    lr = layout.rows[row]
    col = layout.table.column(key)
    if col.delta_from is None or lr.kind in ("teacher", "reference"):
        return None
    if col.delta_from != "student":
        return row, col.delta_from
    if lr.kind == "student" and lr.key == "student":
        return None
    base = next((i for i, r in enumerate(layout.rows)
                 if r.block == lr.block and r.kind == "student" and r.key == "student"), None)
    return None if base is None else (base, key)


def _costs(done: pd.DataFrame) -> tuple[dict[int, Cost], Cost]:
    """Per-row and total cost of the finished, placed results (each cell and seed once)."""
    once = done.drop_duplicates(["cell_id", "seed"]) if len(done) else done
    wall = once["cost_wall_s"].where(once["cost_wall_s"].notna(), once["wall_time_s"])
    once = once.assign(_wall=wall.fillna(0.0), _dev=once["cost_device_s"].fillna(0.0))
    per_row = {}
    for r, sub in once.groupby("_row"):
        devices = frozenset(d for d in sub["cost_device"].tolist() if d)
        per_row[int(r)] = Cost(float(sub["_wall"].sum()), float(sub["_dev"].sum()), len(sub),
                               devices)
    devices = frozenset(d for d in once["cost_device"].tolist() if d)
    total = Cost(float(once["_wall"].sum()), float(once["_dev"].sum()), len(once), devices)
    return per_row, total


def build_quality(layout: Layout) -> QualityTable | None:
    """The companion table of ``layout``; None when the table has no mIoU column or no
    finished result."""
    frame = layout.frame
    cols = [c for c in layout.metric_columns if c.metric == "miou"]
    done = frame[(frame["status"] == "done") & (frame["_row"] >= 0)]
    if not cols or done.empty:
        return None
    values: dict[tuple[int, str, str], Value] = {}
    for col in cols:
        sub = done[_column_mask(done, col)]
        for measure, _, _ in MEASURES:
            for r, seeds in _seed_values(sub, measure).items():
                values[(r, col.key, measure)] = _value(seeds)
    any_paired = False
    for (r, key, measure), v in values.items():
        base = _baseline(layout, r, key)
        b = values.get((base[0], base[1], measure)) if base else None
        if b is None or not b.has_value:
            continue
        v.delta = v.mean - b.mean
        v.paired = paired(v.seeds, b.seeds)
        any_paired |= v.paired is not None and v.paired.n >= 2
    rows = sorted({r for r, _, _ in values if layout.rows[r].kind in ROW_KINDS})
    labels = [_label(layout, r) for r in rows]
    costs, total = _costs(done)
    groups = [(c.key, _group_label(layout, c)) for c in cols]
    return QualityTable(groups, rows, labels, values, costs, total, any_paired)


def _group_label(layout: Layout, col: RefColumn) -> str:
    """The dataset of a column (``Pascal VOC 2012``), or its method selector for Table II
    (``Baseline``, ``+BCD``)."""
    if col.method is not None:
        return col.group.replace(" mIoU", "")
    dataset = col.dataset or next((b.dataset for b in layout.table.blocks if b.dataset), None)
    return dataset_name(dataset) if dataset else col.group


def _label(layout: Layout, row: int) -> str:
    lr = layout.rows[row]
    return lr.ref.label if not lr.extra else method_name(lr.key)


# ----------------------------------------------------------------------------- text


def number(value: float, digits: int, minus: str = "\u2212", signed: bool = False) -> str:
    """``45.12`` / ``+1.20`` with ``minus`` for the sign; never ``-0.00``."""
    if round(value, digits) == 0:
        value = 0.0
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return text.replace("-", minus)


def value_text(v: Value, digits: int, pm: str = " \u00b1 ", minus: str = "\u2212",
               noise: str = " \u2248") -> str:
    """``45.12 ± 0.50 (+1.20 ± 0.31, n=3)`` (paired Δ ± SE), ``… (+0.10 ± 0.31 ≈)`` within
    noise, ``45.12 (+1.20)`` (Δ of the means), or ``—``."""
    if not v.has_value:
        return "\u2014"
    s = number(v.mean, digits, minus)
    if v.n >= 2 and not math.isnan(v.std):
        s += pm + number(v.std, digits, minus)
    p = v.paired
    if p is not None and p.n >= 2 and not math.isnan(p.se):
        mark = noise if p.within_noise else ""
        s += (f" ({number(p.mean, digits, minus, signed=True)}{pm}"
              f"{number(p.se, digits, minus)}{mark}, n={p.n})")
    elif not math.isnan(v.delta):
        s += f" ({number(v.delta, digits, minus, signed=True)})"
    return s


def duration(seconds: float) -> str:
    """``12 s`` / ``3.4 min`` / ``2.15 h``."""
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def cost_text(c: Cost | None) -> str:
    """``3.4 min (3 runs)`` of a row, ``—`` without a finished result."""
    if c is None or not c.cells:
        return "\u2014"
    return f"{duration(c.wall_s)} ({c.cells} run{'s' if c.cells != 1 else ''})"


def device_hours(total: Cost) -> str:
    """``0.42 CPU-hours`` / ``3.10 GPU-hours`` / ``… device-hours (CPU and GPU runs)``."""
    kind = {frozenset({"cpu"}): "CPU", frozenset({"cuda"}): "GPU"}.get(total.devices)
    hours = total.device_s / 3600
    if kind:
        return f"{hours:.2f} {kind}-hours"
    if not total.devices:
        return "device time not recorded"
    return f"{hours:.2f} device-hours (CPU and GPU runs)"


def quality_title(layout: Layout) -> str:
    """``Table III (ours): boundary quality, connectivity and cost``."""
    return f"Table {layout.table.roman} (ours): boundary quality, connectivity and cost"


def header(qt: QualityTable) -> list[tuple[str, str]]:
    """(group, sub-label) pairs: Method, then mIoU/BIoU/β0 err per column group, then Cost."""
    cols = [("", "Method")]
    for _, label in qt.groups:
        cols += [(label, name) for _, name, _ in MEASURES]
    return cols + [("", "Cost (wall)")]


def body(qt: QualityTable, pm: str = " \u00b1 ", minus: str = "\u2212",
         noise: str = " \u2248") -> list[list[str]]:
    """The rows' strings (label first, cost last), escaping left to the writer."""
    out = []
    for r, label in zip(qt.rows, qt.labels):
        line = [label]
        for key, _ in qt.groups:
            line += [value_text(qt.value(r, key, m), d, pm, minus, noise) for m, _, d in MEASURES]
        line.append(cost_text(qt.costs.get(r)))
        out.append(line)
    return out


def quality_caption(layout: Layout, qt: QualityTable) -> str:
    """What the companion table shows, how each measure is defined, and the table's cost."""
    paired_text = (
        "\u0394 \u00b1 SE: paired difference to the baseline over the seeds both finished (same "
        f"seed) with its standard error; \u2248: within noise (|\u0394| \u2264 {NOISE_SE:g} SE). "
        if qt.any_paired else
        "Single seed: \u0394 is the difference of the values; run n \u2265 2 seeds for paired "
        "differences with standard errors. ")
    return (
        f"Table {layout.table.roman}, boundary quality, connectivity and cost: our runs only "
        "(the paper reports mIoU alone). mIoU and BIoU in % (higher is better); BIoU = Boundary IoU (Cheng "
        "et al., CVPR 2021): IoU over the pixels within d = 2% of the image diagonal of each "
        "mask's contour, per class, mean over classes. \u03b20 err = Betti-0 error (Hu et al., "
        "NeurIPS 2019): |connected components of the prediction \u2212 of the ground truth| per "
        "class and image, mean over images with the class, then over classes (lower is "
        "better). Values: mean \u00b1 sample std over seeds (+\u0394 over the baseline). "
        + paired_text + total_text(qt.total))


def total_text(total: Cost) -> str:
    """``This table took 1.23 h wall and 2.05 CPU-hours over 63 finished runs.``"""
    return (f"This table took {duration(total.wall_s)} wall and {device_hours(total)} over "
            f"{total.cells} finished run(s) (serial sum; device time is GPU seconds on CUDA, "
            "CPU seconds of all threads on a CPU run).")
