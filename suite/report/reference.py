"""The paper's tables as printed: rows, columns, grouping and reported numbers.

Reads ``reports/reference/paper_tables.yaml`` (the transcription of the paper) and turns each
table into a :class:`RefTable`: the row and column skeleton every renderer lays out, whether or
not any cell has run. Nothing here knows about our results.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from suite.report.names import dataset_name, method_name, model_name

TABLES: tuple[str, ...] = ("table1", "table2", "table3", "table4", "table5")
ROMAN = {"table1": "I", "table2": "II", "table3": "III", "table4": "IV", "table5": "V"}
REFERENCE_ENV = "SUITE_PAPER_TABLES"
DEFAULT_REFERENCE = Path(__file__).resolve().parents[2] / "reports" / "reference" / "paper_tables.yaml"
EFFICIENCY = ("params_m", "flops_g", "fps")


@dataclass(frozen=True)
class RefColumn:
    """One printed value column.

    ``metric`` columns are compared with the paper (ours / paper / diff, Δ, flags);
    ``efficiency`` columns (Params/FLOPs/FPS) only show ours beside the paper's.
    ``dataset`` None means the block's dataset; ``method`` None means the row's own method
    (Table II selects the baseline / BCD column by method instead).
    ``delta_from`` names the baseline of the printed +Δ: ``"student"`` (the student row of the
    same block and column), a column key of the same row, or None (no Δ).
    """

    key: str
    group: str
    metric: str
    kind: str = "metric"
    dataset: str | None = None
    method: str | None = None
    delta_from: str | None = "student"


@dataclass(frozen=True)
class RefBlock:
    """A group of rows sharing a teacher/student pair (and, for Tables II/V, a section header)."""

    index: int
    dataset: str | None
    title: str | None
    teacher_model: str | None
    student_model: str | None
    split: str = "val"


@dataclass(frozen=True)
class RefRow:
    """A printed row: its key in the results (``row``), kind, label, descriptive cells, numbers.

    ``kind`` is one of teacher, student, reference (a large model without KD), method,
    combination or ablation. ``paper`` maps column keys to the printed value; ``reimpl`` holds
    the column keys the paper marks with a double dagger.
    """

    block: int
    key: str
    kind: str
    label: str
    model: str | None = None
    desc: dict[str, Any] = field(default_factory=dict)
    paper: dict[str, float] = field(default_factory=dict)
    reimpl: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RefTable:
    """The skeleton of one paper table."""

    name: str
    title: str
    metric_label: str
    columns: tuple[RefColumn, ...]
    desc_columns: tuple[tuple[str, str], ...]
    blocks: tuple[RefBlock, ...]
    rows: tuple[RefRow, ...]
    notes: tuple[str, ...]

    @property
    def roman(self) -> str:
        """The paper's numbering (``III``)."""
        return ROMAN.get(self.name, self.name)

    def column(self, key: str) -> RefColumn:
        """The column of that key."""
        return next(c for c in self.columns if c.key == key)


def reference_path() -> Path:
    """The YAML file in use: ``$SUITE_PAPER_TABLES`` or the repository's reference copy."""
    return Path(os.environ.get(REFERENCE_ENV, DEFAULT_REFERENCE))


@functools.lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def load_reference(path: Path | None = None) -> dict[str, Any]:
    """The parsed YAML (cached per path)."""
    return _load(str(path or reference_path()))


def ref_table(name: str, path: Path | None = None) -> RefTable:
    """The :class:`RefTable` of ``table1`` .. ``table5``."""
    if name not in BUILDERS:
        raise ValueError(f"unknown table {name!r}; valid: {', '.join(TABLES)}")
    data = load_reference(path)
    return BUILDERS[name](data[name], _notes_for(name, data.get("notes", [])))


def _notes_for(name: str, notes: list[str]) -> tuple[str, ...]:
    """The reference notes that mention ``name`` (``table2 vs table3: ...`` counts for both)."""
    head = [n for n in notes if name in n.split(":", 1)[0].split()]
    return tuple(head)


def _efficiency_columns(present: set[str]) -> list[RefColumn]:
    from suite.report.names import metric_name

    return [
        RefColumn(key=m, group=metric_name(m), metric=m, kind="efficiency", delta_from=None)
        for m in EFFICIENCY
        if m in present
    ]


def _pair_rows(block: int, entry: dict[str, Any], metrics: dict[str, str]) -> list[RefRow]:
    """Teacher and student rows from ``{model: ..., <metric>: ...}`` entries."""
    rows = []
    for kind in ("teacher", "student"):
        info = entry[kind]
        paper = {col: float(info[src]) for col, src in metrics.items() if info.get(src) is not None}
        paper.update({m: float(info[m]) for m in EFFICIENCY if info.get(m) is not None})
        label = f"{kind.capitalize()}: {model_name(info['model'])}"
        rows.append(RefRow(block, kind, kind, label, info["model"], paper=paper))
    return rows


def _method_rows(block: int, entries: list[dict[str, Any]], metrics: dict[str, str],
                 desc: tuple[str, ...] = (), reimpl_map: dict[str, str] | None = None) -> list[RefRow]:
    """Method rows: ``metrics`` maps column key -> YAML key; ``reimpl`` lists YAML keys."""
    rows = []
    for e in entries:
        key = e["method"]
        paper = {col: float(e[src]) for col, src in metrics.items() if e.get(src) is not None}
        marks = e.get("reimpl") or []
        if marks is True:
            marks = list(metrics.values())
        to_col = reimpl_map or {src: col for col, src in metrics.items()}
        reimpl = frozenset(to_col[m] for m in marks if m in to_col)
        kind = "combination" if "+" in key else "method"
        rows.append(RefRow(block, key, kind, method_name(key), None,
                           desc={d: e.get(d) for d in desc}, paper=paper, reimpl=reimpl))
    return rows


def _table1(t: dict[str, Any], notes: tuple[str, ...]) -> RefTable:
    ds = t["dataset"]
    block = RefBlock(0, ds, None, t["teacher"]["model"], t["student"]["model"], "val")
    rows = _pair_rows(0, t, {"miou": "miou"})
    flags_to_key = {(True, False, False): "bd", (False, True, False): "cd",
                    (True, True, False): "bd+cd", (True, True, True): "bd+cd+wd"}
    for r in t["rows"]:
        flags = (bool(r["boundary"]), bool(r["context"]), bool(r["weight_decay"]))
        key = flags_to_key.get(flags, "+".join(k for k, f in zip(("bd", "cd", "wd"), flags) if f))
        desc = {d: (True if f else "") for d, f in zip(("bd", "cd", "wd"), flags)}
        label = "+ " + " + ".join(method_name(p) for p in key.split("+"))
        rows.append(RefRow(0, key, "ablation", label, None, desc=desc,
                           paper={"miou": float(r["miou"])}))
    cols = [RefColumn("miou", f"mIoU ({dataset_name(ds)} val)", "miou")]
    cols += _efficiency_columns({"params_m", "flops_g"})
    return RefTable("table1", t["title"], "mIoU (%)", tuple(cols),
                    (("bd", "BD"), ("cd", "CD"), ("wd", "WD")), (block,), tuple(rows), notes)


def _table2(t: dict[str, Any], notes: tuple[str, ...]) -> RefTable:
    blocks, rows, present = [], [], set()
    for i, b in enumerate(t["blocks"]):
        ds, split = b["dataset"], b.get("split", "val")
        teacher = b["teacher"]["model"]
        title = f"{dataset_name(ds)} ({split}), teacher {model_name(teacher)}"
        blocks.append(RefBlock(i, ds, title, teacher, None, split))
        big = b.get("reference_large_model")
        if big:
            eff = {m: float(big[m]) for m in EFFICIENCY if big.get(m) is not None}
            present |= set(eff)
            rows.append(RefRow(i, big["model"], "reference", f"{model_name(big['model'])} (w/o KD)",
                               big["model"], paper={"none.miou": float(big["miou"]), **eff}))
        tinfo = b["teacher"]
        eff = {m: float(tinfo[m]) for m in EFFICIENCY if tinfo.get(m) is not None}
        present |= set(eff)
        rows.append(RefRow(i, "teacher", "teacher", f"Teacher: {model_name(teacher)}", teacher,
                           paper={"none.miou": float(tinfo["miou"]), **eff}))
        for s in b["students"]:
            eff = {m: float(s[m]) for m in EFFICIENCY if s.get(m) is not None}
            present |= set(eff)
            reimpl = {"none.miou"} if s.get("baseline_reimpl") else set()
            if s.get("bcd_reimpl"):
                reimpl.add("bcd.miou")
            rows.append(RefRow(i, s["model"], "student", model_name(s["model"]), s["model"],
                               paper={"none.miou": float(s["baseline"]),
                                      "bcd.miou": float(s["bcd"]), **eff},
                               reimpl=frozenset(reimpl)))
    cols = _efficiency_columns(present) + [
        RefColumn("none.miou", "Baseline mIoU", "miou", method="none", delta_from=None),
        RefColumn("bcd.miou", "+BCD mIoU", "miou", method="bcd", delta_from="none.miou"),
    ]
    return RefTable("table2", t["title"], "mIoU (%)", tuple(cols), (), tuple(blocks),
                    tuple(rows), notes)


def _table3(t: dict[str, Any], notes: tuple[str, ...]) -> RefTable:
    datasets = list(t["datasets"])
    block = RefBlock(0, None, None, t["teacher"]["model"], t["student"]["model"], "val")
    metrics = {f"{d}.miou": d for d in datasets}
    rows = _pair_rows(0, t, metrics)
    desc = ("manner", "gt_mask", "boundary", "context")
    rows += _method_rows(0, t["rows"], metrics, desc)
    cols = [RefColumn(f"{d}.miou", dataset_name(d), "miou", dataset=d) for d in datasets]
    return RefTable("table3", t["title"], "mIoU (%)", tuple(cols),
                    (("manner", "KD manner"), ("gt_mask", "GT mask"),
                     ("boundary", "Boundary"), ("context", "Context")),
                    (block,), tuple(rows), notes)


def _table4(t: dict[str, Any], notes: tuple[str, ...]) -> RefTable:
    ds = t["dataset"]
    block = RefBlock(0, ds, None, t["teacher"]["model"], t["student"]["model"], "test")
    rows = _pair_rows(0, t, {"miou": "miou"}) + _method_rows(0, t["rows"], {"miou": "miou"})
    cols = (RefColumn("miou", f"mIoU ({dataset_name(ds)} test)", "miou"),)
    return RefTable("table4", t["title"], "mIoU (%)", cols, (), (block,), tuple(rows), notes)


def _table5(t: dict[str, Any], notes: tuple[str, ...]) -> RefTable:
    ds = t["dataset"]
    metrics = {m: m for m in t["metrics"]}
    blocks, rows, present = [], [], set()
    for i, b in enumerate(t["blocks"]):
        tm, sm = b["teacher"]["model"], b["student"]["model"]
        title = f"{model_name(tm)} \u2192 {model_name(sm)}"
        blocks.append(RefBlock(i, ds, title, tm, sm, "val"))
        pair = _pair_rows(i, b, metrics)
        for r in pair:
            present |= {m for m in EFFICIENCY if m in r.paper}
        rows += pair + _method_rows(i, b["rows"], metrics)
    cols = [RefColumn(m, {"ap_mask": "AP^m", "ap_box": "AP^b"}.get(m, m), m) for m in metrics]
    cols += _efficiency_columns(present)
    return RefTable("table5", t["title"], "AP (%)", tuple(cols), (), tuple(blocks),
                    tuple(rows), notes)


BUILDERS = {"table1": _table1, "table2": _table2, "table3": _table3, "table4": _table4,
            "table5": _table5}
