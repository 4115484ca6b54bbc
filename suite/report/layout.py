"""Lay our results into the paper's table: rows, columns, seeds statistics, Δ, diffs, flags, ranks.

:func:`build_layout` joins the reference skeleton (:mod:`suite.report.reference`) with a results
frame (:mod:`suite.report.frame`). The result, a :class:`Layout`, holds every number a renderer
prints; renderers only format it. Rules:

* one :class:`Cell` per (printed row, value column); several seeds of a cell give mean, sample
  std and n over the finished seeds;
* Δ is ours minus our own baseline (the student row of the block, or for Table II the baseline
  column of the same row), and the paper's Δ is computed the same way from the paper's numbers;
* diff is ours minus the paper; it is flagged when ``|diff| > tolerance_std * std`` for n >= 2
  seeds, else when ``|diff| > tolerance`` (points);
* the best value of each column (per block) ranks 1 and the second 2, among non-teacher rows,
  on the values as printed, for ours and the paper separately;
* a cell is marked collapsed when any of its finished seeds' results says so (the result's
  ``health.collapsed``: one class predicted almost everywhere, or features without variance);
* a result is placed by its block and row, and also in every other block that prints the same
  model trained without a teacher (or the same teacher) on the same dataset and has no result
  of its own there (:func:`_shared`): a planned cell two blocks share is listed once, under the
  first, and Table II's large models without KD are planned in blocks of their own;
* Params and FLOPs are the paper's network (width 1.0, the dataset's classes:
  :mod:`suite.report.full_width`), whatever the state of the row's runs; FPS is the mean over
  finished results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from suite.report.frame import FULL_WIDTH, Protocol, normalize, protocol
from suite.report.names import dataset_name, method_name, model_name
from suite.report.reference import RefBlock, RefColumn, RefRow, RefTable, ref_table

NAN = float("nan")
DECIMALS = {"miou": 2, "aacc": 2, "ap_box": 1, "ap_mask": 1, "params_m": 2, "flops_g": 1,
            "fps": 1}
OURS_DECIMALS = 2  # our means, stds, Δ and diffs (the paper prints AP with one decimal)
RANKED_KINDS = frozenset({"student", "method", "combination", "ablation"})
HAS_VALUE = frozenset({"done", "partial"})


@dataclass
class Cell:
    """One printed value: ours (seed statistics) beside the paper's, with Δ, diff and flags.

    ``status``: done (all seeds finished), partial (some), failed, running, missing (planned,
    not run), na (finished without this metric) or absent (no result expected in the store).
    """

    status: str = "absent"
    mean: float = NAN
    std: float = NAN
    n: int = 0
    n_expected: int = 0
    paper: float = NAN
    paper_reimpl: bool = False
    delta: float = NAN
    paper_delta: float = NAN
    diff: float = NAN
    tolerance: float = NAN
    flagged: bool = False
    rank: int = 0
    paper_rank: int = 0
    reimplementation: bool = False
    unverified: bool = False
    cell_ids: tuple[str, ...] = ()
    wandb_urls: tuple[str, ...] = ()
    collapsed: int = 0  # finished seeds whose result collapsed
    collapse_notes: tuple[str, ...] = ()  # ``seed 0: majority class ... since iter 25``

    @property
    def has_value(self) -> bool:
        """Whether at least one seed finished with this metric."""
        return self.status in HAS_VALUE


@dataclass
class LayoutRow:
    """A printed row: the reference row plus where rules and block headers go."""

    ref: RefRow
    section: str | None = None
    rule_before: bool = False
    extra: bool = False  # in our results but not in the paper

    @property
    def key(self) -> str:
        """The row key in the results (``row`` column)."""
        return self.ref.key

    @property
    def kind(self) -> str:
        """teacher, student, reference, method, combination or ablation."""
        return self.ref.kind

    @property
    def block(self) -> int:
        """Index of the row's block."""
        return self.ref.block


@dataclass
class Layout:
    """Everything a renderer prints for one table."""

    table: RefTable
    rows: list[LayoutRow]
    columns: tuple[RefColumn, ...]
    cells: dict[tuple[int, str], Cell]
    protocol: Protocol
    frame: pd.DataFrame
    tolerance: float
    tolerance_std: float
    unplaced: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    # row index -> the row its Δ is over (:func:`delta_bases`), filled by build_layout
    bases: dict[int, int] = field(default_factory=dict)
    _pending: dict[str, list[str]] | None = field(default=None, repr=False)
    _frame: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """``table1`` .. ``table5``."""
        return self.table.name

    @property
    def smoke(self) -> bool:
        """Whether any result (or planned cell) uses the smoke profile."""
        return self.protocol.smoke

    @property
    def metric_columns(self) -> list[RefColumn]:
        """The columns compared with the paper (not Params/FLOPs/FPS)."""
        return [c for c in self.columns if c.kind == "metric"]

    def cell(self, row: int, column: str) -> Cell:
        """The cell at a row index and column key (an empty one if none)."""
        found = self.cells.get((row, column))
        return found if found is not None else Cell()

    @property
    def results(self) -> pd.DataFrame:
        """The frame with each input row once (without the copies placed in other blocks)."""
        return self.frame[~self.frame["_shared"]]

    def block(self, index: int) -> RefBlock | None:
        """The reference block of that index."""
        return next((b for b in self.table.blocks if b.index == index), None)

    def cell_label(self, row: int, column: RefColumn) -> str:
        """``KD · Pascal VOC 2012`` (table and block context of one cell, for footnotes)."""
        lr = self.rows[row]
        parts = [lr.ref.label.replace("Teacher: ", "teacher ").replace("Student: ", "student ")]
        block = self.block(lr.block)
        if len(self.metric_columns) > 1:
            parts.append(column.group)
        if block is not None and block.title:
            parts.append(block.title)
        return " \u00b7 ".join(parts)

    def pending(self) -> dict[str, list[str]]:
        """Plain-text lists of what is not (fully) there: missing, partial, failed, running.

        Computed once per layout (every format prints the same footnotes).
        """
        if self._pending is None:
            self._pending = self._compute_pending()
        return self._pending

    def _compute_pending(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"missing": [], "partial": [], "failed": [], "running": [],
                                     "absent": []}
        for i, _ in enumerate(self.rows):
            for col in self.metric_columns:
                c = self.cell(i, col.key)
                label = self.cell_label(i, col)
                if c.status == "partial":
                    out["partial"].append(f"{label} ({c.n} of {c.n_expected} seeds)")
                elif c.status == "absent" and math.isnan(c.paper):
                    continue  # neither the paper nor our store has this cell
                elif c.status in out:
                    out[c.status].append(label)
        out["failed_reasons"] = self._seeds("failed", with_reason=True)
        out["running_seeds"] = self._seeds("running")
        return out

    def _seeds(self, status: str, with_reason: bool = False) -> list[str]:
        """``kd/voc2012 (seed 0, 1): reason`` for the result rows of one status."""
        rows = self.results[self.results["status"] == status]
        seeds: dict[tuple[str, str, str, str], list[str]] = {}
        for r in rows.itertuples():
            reason = (r.reason or "no reason recorded") if with_reason else ""
            seeds.setdefault((r.row, r.method, r.dataset, reason), []).append(str(r.seed))
        return [
            f"{'/'.join(dict.fromkeys(p for p in (row, method, ds) if p and p != 'none'))} "
            f"(seed {', '.join(s)})" + (f": {reason}" if reason else "")
            for (row, method, ds, reason), s in seeds.items()
        ]

    def collapsed_runs(self) -> list[str]:
        """``KD · Pascal VOC 2012 (seed 0): majority class 'background' on 99.6% of val pixels
        since iter 25`` for every finished, placed result that collapsed."""
        rows = self.frame[(self.frame["status"] == "done") & self.frame["collapsed"]
                          & (self.frame["_row"] >= 0)]
        rows = rows.drop_duplicates(["cell_id", "seed"])
        out = []
        for i, method, dataset, seed, text in zip(rows["_row"].tolist(), rows["method"].tolist(),
                                                  rows["dataset"].tolist(), rows["seed"].tolist(),
                                                  rows["collapse_note"].tolist()):
            lr = self.rows[int(i)]
            parts = [lr.ref.label.replace("Teacher: ", "teacher ").replace("Student: ", "student ")]
            if method not in ("none", lr.key):
                parts.append(method_name(method))
            if dataset:
                parts.append(dataset_name(dataset))
            label = " \u00b7 ".join(parts)
            out.append(f"{label} (seed {seed}): {text or 'no reason recorded'}")
        return out

    def collapse_counts(self) -> tuple[int, int]:
        """(collapsed, finished) results among the placed rows of this table."""
        done = self.frame[(self.frame["status"] == "done") & (self.frame["_row"] >= 0)]
        done = done.drop_duplicates(["cell_id", "seed"])
        return int(done["collapsed"].sum()), len(done)

    def to_frame(self) -> pd.DataFrame:
        """The reproduction view in long format: one row per printed cell (CSV/Parquet)."""
        if self._frame is None:
            self._frame = self._compute_frame()
        return self._frame.copy()

    def _compute_frame(self) -> pd.DataFrame:
        records = []
        for i, lr in enumerate(self.rows):
            block = self.block(lr.block)
            for col in self.columns:
                c = self.cell(i, col.key)
                dataset = col.dataset or (block.dataset if block else "") or ""
                records.append({
                    "table": self.name, "block": lr.block,
                    "section": lr.section or (block.title if block else "") or "",
                    "row": lr.key, "label": lr.ref.label, "kind": lr.kind,
                    "column": col.key, "group": col.group, "metric": col.metric,
                    "column_kind": col.kind, "dataset": dataset,
                    "method": col.method or ("none" if lr.kind in ("teacher", "student",
                                                                   "reference") else lr.key),
                    "status": c.status, "mean": c.mean, "std": c.std, "n": c.n,
                    "n_expected": c.n_expected, "delta": c.delta, "paper": c.paper,
                    "paper_reimpl": c.paper_reimpl, "paper_delta": c.paper_delta,
                    "diff": c.diff, "tolerance": c.tolerance, "flagged": c.flagged,
                    "rank": c.rank, "paper_rank": c.paper_rank,
                    "reimplementation": c.reimplementation, "unverified": c.unverified,
                    "collapsed": c.collapsed, "collapse_notes": "; ".join(c.collapse_notes),
                    "extra_row": lr.extra, "cell_ids": ";".join(c.cell_ids),
                    "wandb_urls": ";".join(c.wandb_urls), "smoke": self.smoke,
                    "profile": "/".join(self.protocol.profiles),
                    "checkpoint": "/".join(self.protocol.checkpoints),
                    "split": "/".join(self.protocol.splits),
                })
        return pd.DataFrame.from_records(records)


def build_layout(table: str, df: pd.DataFrame | None, tolerance: float = 0.5,
                 tolerance_std: float = 2.0, reference: RefTable | None = None) -> Layout:
    """Join the paper's skeleton of ``table`` with the results frame ``df`` (any state)."""
    ref = reference or ref_table(table)
    frame = normalize(df, ref.name)
    rows = _rows(ref, frame)
    index = {(r.block, r.key): i for i, r in enumerate(rows)}
    frame = frame.assign(_row=[index.get((b, k), -1)
                               for b, k in zip(frame["block"], frame["row"])],
                         _src=np.arange(len(frame)), _shared=False)
    status_counts = {s: int(v) for s, v in frame["status"].value_counts().items()}
    copies = _shared(ref, rows, frame)
    if len(copies):
        frame = pd.concat([frame, copies], ignore_index=True)
    cells: dict[tuple[int, str], Cell] = {}
    placed = np.zeros(len(frame), dtype=bool)
    for col in ref.columns:
        if col.kind == "metric":
            mask = _column_mask(frame, col)
            placed |= mask
            cells.update(_metric_cells(frame[mask], col))
    metric_cells = dict(cells)
    for col in ref.columns:
        if col.kind == "efficiency":
            cells.update(_efficiency_cells(frame, col, rows, metric_cells))
    for i, lr in enumerate(rows):
        for col in ref.columns:
            c = cells.setdefault((i, col.key), Cell())
            c.paper = lr.ref.paper.get(col.key, NAN)
            c.paper_reimpl = col.key in lr.ref.reimpl
    proto = protocol(frame)
    if not proto.splits:  # nothing recorded yet: state the paper's split(s)
        proto = replace(proto, splits=tuple(f"{s} (paper)" for s in dict.fromkeys(
            b.split for b in ref.blocks)))
    unplaced = len(set(frame["_src"].tolist()) - set(frame.loc[placed, "_src"].tolist()))
    layout = Layout(ref, rows, ref.columns, cells, proto, frame, tolerance,
                    tolerance_std, unplaced=unplaced, status_counts=status_counts)
    layout.bases = delta_bases(layout)
    _deltas(layout)
    _flags(layout)
    _ranks(layout)
    return layout


def _rows(ref: RefTable, frame: pd.DataFrame) -> list[LayoutRow]:
    """The reference rows per block, our extra rows appended, with sections and rules."""
    known = {(r.block, r.key) for r in ref.rows}
    extras: dict[int, list[RefRow]] = {}
    pairs = frame.loc[frame["row"] != "", ["block", "row", "method", "model", "teacher_model"]]
    pairs = pairs.drop_duplicates(["block", "row"])
    for block, key, method, model, teacher in zip(pairs["block"], pairs["row"], pairs["method"],
                                                  pairs["model"], pairs["teacher_model"]):
        if (block, key) in known or not any(b.index == block for b in ref.blocks):
            continue
        known.add((block, key))
        model_row = None
        if ref.name == "table2":
            kind, label = ("teacher", f"Teacher: {key}") if key == "teacher" else (
                "student", model_name(key))
        elif method == "none" and model:  # a teacher or student of a row's own models
            kind = "teacher" if teacher == model else "student"
            label, model_row = f"{kind.capitalize()}: {model_name(model)}", model
        else:
            kind = "combination" if "+" in key else "method"
            label = method_name(key)
        extras.setdefault(block, []).append(RefRow(block, key, kind, label, model_row))
    header_kinds = {"reference", "teacher"} | ({"student"} if ref.name != "table2" else set())
    out: list[LayoutRow] = []
    for block in ref.blocks:
        mine = [LayoutRow(r) for r in ref.rows if r.block == block.index]
        mine += [LayoutRow(r, extra=True) for r in extras.get(block.index, [])]
        if not mine:
            continue
        mine[0].section = block.title
        body = [i for i, r in enumerate(mine) if r.kind not in header_kinds]
        if body and body[0] > 0:
            mine[body[0]].rule_before = True
        lower = _lower_half_start([r.key for r in mine], [r.kind for r in mine])
        if lower is not None and lower > 0:
            mine[lower].rule_before = True
        out += mine
    return out


def _shared(ref: RefTable, rows: list[LayoutRow], frame: pd.DataFrame) -> pd.DataFrame:
    """Copies of results that printed rows of other blocks share (``_shared`` True).

    A result without a teacher (a student baseline, a large model without KD; ``method`` none
    and a ``teacher_model`` other than its own model) or a teacher's result is the same run
    wherever the paper prints that model on that dataset: it is copied to every row of another
    block with the same key, the block's dataset and, where the paper names it, the same model
    (for a teacher: the block's teacher), unless that row has a result of its own for the
    dataset. Distilled results are never copied: their options and teacher make them a block's.
    """
    plain = frame[frame["method"] == "none"]
    plain = plain.assign(_teacher=plain["teacher_model"] == plain["model"])
    by_key = dict(tuple(plain.groupby("row", sort=False)))  # one filter per row key, not per row
    own = set(zip(frame["_row"], frame["dataset"], frame["method"]))
    copies = []
    for i, lr in enumerate(rows):
        same = by_key.get(lr.key)
        if same is None:
            continue
        block = next(b for b in ref.blocks if b.index == lr.block)
        mask = same["_row"] != i
        if block.dataset is not None:
            mask &= same["dataset"] == block.dataset
        if lr.kind == "teacher":
            mask &= same["_teacher"] & (same["model"] == (block.teacher_model or ""))
        else:
            mask &= ~same["_teacher"]
            model = lr.ref.model or block.student_model
            if model:
                mask &= same["model"] == model
        found = same[mask].drop(columns="_teacher")
        found = found[[(i, d, "none") not in own for d in found["dataset"]]]
        if len(found):
            copies.append(found.assign(_row=i, block=lr.block, _shared=True))
    return pd.concat(copies, ignore_index=True) if copies else frame.iloc[0:0]


def _lower_half_start(keys: list[str], kinds: list[str]) -> int | None:
    """Index of the first row of the combinations part (a ``a+b`` row or its component ``a``).

    Ablation rows (Table I) are not combinations and never open a lower half.
    """
    for i, (key, kind) in enumerate(zip(keys, kinds)):
        if kind not in ("method", "combination"):
            continue
        if "+" in key or any(k.startswith(key + "+") for k in keys[i + 1:]):
            return i
    return None


def _column_mask(frame: pd.DataFrame, col: RefColumn) -> np.ndarray:
    """Which result rows feed ``col`` (placed rows of the right dataset and method)."""
    mask = np.array(frame["_row"] >= 0, dtype=bool)
    if col.dataset is not None:
        mask &= (frame["dataset"] == col.dataset).to_numpy()
    if col.method is not None:
        mask &= (frame["method"] == col.method).to_numpy()
    return mask


def _lists(keys: pd.Series, values: pd.Series) -> dict[int, list[str]]:
    """``{key: [values...]}`` in order (much faster than ``groupby().agg(list)``)."""
    out: dict[int, list[str]] = {}
    for k, v in zip(keys.tolist(), values.tolist()):
        out.setdefault(k, []).append(v)
    return out


def _metric_cells(sub: pd.DataFrame, col: RefColumn) -> dict[tuple[int, str], Cell]:
    """Seed statistics and status of every cell of one metric column."""
    if sub.empty:
        return {}
    metric = col.metric
    groups = sub.groupby("_row", sort=False)
    expected = groups.size()
    status = sub.groupby(["_row", "status"]).size().unstack(fill_value=0)
    done = sub[sub["status"] == "done"]
    ok = done[done[metric].notna()]
    stats = ok.groupby("_row")[metric].agg(["mean", "std", "count"])
    n_done = done.groupby("_row").size()
    flags = groups[["reimplementation", "unverified"]].any().to_dict("index")
    ids = _lists(sub["_row"], sub["cell_id"])
    online = sub[(sub["wandb_mode"] == "online") & (sub["wandb_url"] != "")]
    urls = _lists(online["_row"], online["wandb_url"])
    stat = stats.to_dict("index")
    status = status.to_dict("index")
    n_done = n_done.to_dict()
    collapsed = done[done["collapsed"]]
    notes: dict[int, list[str]] = {}
    for r, seed, text in zip(collapsed["_row"].tolist(), collapsed["seed"].tolist(),
                             collapsed["collapse_note"].tolist()):
        notes.setdefault(r, []).append(f"seed {seed}: {text or 'no reason recorded'}")
    out = {}
    for r, n_exp in expected.to_dict().items():
        cell = Cell(n_expected=int(n_exp), reimplementation=bool(flags[r]["reimplementation"]),
                    unverified=bool(flags[r]["unverified"]),
                    cell_ids=tuple(dict.fromkeys(i for i in ids[r] if i)),
                    wandb_urls=tuple(dict.fromkeys(urls.get(r, ()))),
                    collapsed=len(notes.get(r, ())), collapse_notes=tuple(notes.get(r, ())))
        counts = status[r]
        if r in stat:
            cell.mean = float(stat[r]["mean"])
            cell.n = int(stat[r]["count"])
            cell.std = float(stat[r]["std"]) if cell.n > 1 else NAN
            cell.status = "done" if cell.n >= n_exp else "partial"
        elif int(n_done.get(r, 0)):
            cell.status = "na"
        elif counts.get("failed", 0):
            cell.status = "failed"
        elif counts.get("running", 0):
            cell.status = "running"
        else:
            cell.status = "missing"
        out[(int(r), col.key)] = cell
    return out


def _efficiency_cells(frame: pd.DataFrame, col: RefColumn, rows: list[LayoutRow],
                      cells: dict[tuple[int, str], Cell]) -> dict[tuple[int, str], Cell]:
    """Params/FLOPs of each row: its network at full width (any state of its results); FPS:
    the mean over its finished results (any dataset/method)."""
    full = FULL_WIDTH.get(col.metric)
    if full is not None:
        values = frame[frame["_row"] >= 0].groupby("_row")[full].mean()
    else:
        done = frame[(frame["_row"] >= 0) & (frame["status"] == "done")]
        values = done.groupby("_row")[col.metric].mean()
    by_row: dict[int, list[str]] = {}
    for (r, _), c in cells.items():
        by_row.setdefault(r, []).append(c.status)
    out = {}
    for i in range(len(rows)):
        v = values.get(i, NAN)
        if v is not None and not math.isnan(v):
            out[(i, col.key)] = Cell(status="done", mean=float(v), n=1, n_expected=1)
        else:
            statuses = by_row.get(i, [])
            status = next((s for s in ("running", "failed", "missing") if s in statuses),
                          "na" if statuses else "absent")
            out[(i, col.key)] = Cell(status=status)
    return out


def block_students(rows: list[LayoutRow]) -> dict[int, int]:
    """Block index -> the index of its ``student`` row (the paper's baseline), where it has one."""
    return {r.block: i for i, r in reversed(list(enumerate(rows)))
            if r.kind == "student" and r.key == "student"}


def delta_bases(layout: Layout) -> dict[int, int]:
    """Row index -> the row index its Δ is over: the block's ``student`` row, or for a row run
    on a student of its own (:mod:`suite.blocks`) the block's row of that student trained
    without a teacher, when the block has one. Computed once per layout (``Layout.bases``)."""
    students = block_students(layout.rows)
    placed = layout.frame[(layout.frame["_row"] >= 0) & ~layout.frame["_shared"]
                          & (layout.frame["model"] != "")]
    models = dict(zip(placed["_row"].tolist(), placed["model"].tolist()))
    plain: dict[tuple[int, str], int] = {}
    for i, lr in enumerate(layout.rows):
        model = lr.ref.model or models.get(i)
        if lr.kind == "student" and model:
            plain.setdefault((lr.block, model), i)
    out = {}
    for i, lr in enumerate(layout.rows):
        if lr.kind in ("teacher", "reference") or (lr.kind == "student" and lr.key == "student"):
            continue
        own = plain.get((lr.block, models.get(i) or lr.ref.model or ""))
        if own == i:
            continue  # a baseline of its own (a row's own student without a teacher)
        base = own if own is not None else students.get(lr.block)
        if base is not None:
            out[i] = base
    return out


def _deltas(layout: Layout) -> None:
    """Δ over the baseline (:func:`delta_bases`) for ours; the paper's Δ over its own student
    row (the paper prints one baseline per block)."""
    students, bases = block_students(layout.rows), layout.bases
    for i, lr in enumerate(layout.rows):
        if lr.kind in ("teacher", "reference") or (lr.kind == "student" and lr.key == "student"):
            continue
        for col in layout.metric_columns:
            if col.delta_from is None:
                continue
            if col.delta_from == "student":
                if i not in bases:
                    continue
                base_row, paper_row, base_col = bases[i], students.get(lr.block), col.key
            else:
                base_row = paper_row = i
                base_col = col.delta_from
            c = layout.cell(i, col.key)
            if base_row is not None:
                b = layout.cell(base_row, base_col)
                if c.has_value and b.has_value:
                    c.delta = c.mean - b.mean
            if paper_row is not None:  # NaN propagates when either is missing
                c.paper_delta = c.paper - layout.cell(paper_row, base_col).paper


def _flags(layout: Layout) -> None:
    """Diff to the paper and the tolerance check, per metric cell."""
    for (_, key), c in layout.cells.items():
        if layout.table.column(key).kind != "metric" or not c.has_value:
            continue
        if math.isnan(c.paper):
            continue
        c.diff = c.mean - c.paper
        c.tolerance = (layout.tolerance_std * c.std if c.n >= 2 and not math.isnan(c.std)
                       else layout.tolerance)
        c.flagged = abs(c.diff) > c.tolerance + 1e-9


def _ranks(layout: Layout) -> None:
    """Bold (rank 1) and underline (rank 2) per column and block, ours and paper separately."""
    for col in layout.metric_columns:
        digits = DECIMALS.get(col.metric, 2)
        for block in layout.table.blocks:
            idx = [i for i, r in enumerate(layout.rows)
                   if r.block == block.index and r.kind in RANKED_KINDS]
            ours = {i: round(layout.cell(i, col.key).mean, max(digits, OURS_DECIMALS)) for i in idx
                    if layout.cell(i, col.key).has_value}
            paper = {i: round(layout.cell(i, col.key).paper, digits) for i in idx
                     if not math.isnan(layout.cell(i, col.key).paper)}
            for values, attr in ((ours, "rank"), (paper, "paper_rank")):
                order = sorted(set(values.values()), reverse=True)[:2]
                for i, v in values.items():
                    if v in order:
                        setattr(layout.cell(i, col.key), attr, order.index(v) + 1)


def block_dataset_label(layout: Layout, block: int) -> str:
    """Dataset name of a block (for captions and plots)."""
    b = layout.block(block)
    return dataset_name(b.dataset) if b and b.dataset else ""
