"""Synthetic results frames in the collect() contract, for tests, demos and the speed benchmark.

:func:`synthetic_frame` builds one row per (paper cell, seed) with values near the paper's, so a
report over it looks like a real one; :func:`set_status` turns chosen cells into missing, failed
or running ones to mimic a partial store.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from suite.report.frame import EFFICIENCY, FULL_WIDTH, METRICS
from suite.report.reference import RefColumn, RefTable, ref_table

VERSIONS = json.dumps({"torch": "2.13.0", "mmcv": "2.1.0", "mmseg": "1.2.2", "mmdet": "3.3.0"})
REIMPLEMENTED = frozenset({"sckd", "cwt", "slimseg", "bglsseg", "sstkd", "c2vkd", "gid"})


def _cell_id(*parts: object) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:12]


def synthetic_frame(table: str, seeds: int = 1, profile: str = "paper", noise: float = 0.1,
                    extra_methods: int = 0, wandb_mode: str = "offline", rng: int = 0,
                    include_reference_models: bool = False) -> pd.DataFrame:
    """All cells of ``table`` finished, ``seeds`` seeds each, values = paper + N(0, noise).

    ``extra_methods`` appends methods not in the paper (``extra0``, ``extra1``, ...) to every
    block, to build large frames. Reference large models of Table II (not KD runs) are left out
    unless ``include_reference_models``.
    """
    ref = ref_table(table)
    gen = np.random.default_rng(rng)
    records: list[dict[str, object]] = []
    for row in ref.rows:
        if row.kind == "reference" and not include_reference_models:
            continue
        for cols in _cell_columns(ref):
            records += _records(ref, row.block, row.key, row.kind, cols, row.paper, seeds,
                                profile, noise, wandb_mode, gen)
    if extra_methods:
        for block in ref.blocks:
            student = next((r for r in ref.rows if r.block == block.index and r.kind == "student"),
                           None)
            base = dict(student.paper) if student else {}
            for k in range(extra_methods):
                paper = {key: v + 1.0 for key, v in base.items()}
                for cols in _cell_columns(ref):
                    records += _records(ref, block.index, f"extra{k}", "method", cols, paper,
                                        seeds, profile, noise, wandb_mode, gen)
    return pd.DataFrame.from_records(records)


def _cell_columns(ref: RefTable) -> list[list[RefColumn]]:
    """Metric columns grouped by the run that feeds them (same dataset and method selector)."""
    groups: dict[tuple[str | None, str | None], list[RefColumn]] = {}
    for col in ref.columns:
        if col.kind == "metric":
            groups.setdefault((col.dataset, col.method), []).append(col)
    return list(groups.values())


def _records(ref: RefTable, block: int, key: str, kind: str, cols: list[RefColumn],
             paper: dict[str, float], seeds: int, profile: str, noise: float, wandb_mode: str,
             gen: np.random.Generator) -> list[dict[str, object]]:
    """The seed rows of one cell: every metric of ``cols`` near the paper's, others NaN."""
    col = cols[0]
    blk = next(b for b in ref.blocks if b.index == block)
    dataset = col.dataset or blk.dataset or ""
    if ref.name == "table2":
        method = col.method or "none"
        model = blk.teacher_model if kind == "teacher" else key
    else:
        method = "none" if kind in ("teacher", "student") else key
        model = blk.teacher_model if kind == "teacher" else blk.student_model
    if kind in ("teacher", "reference") and col.method == "bcd":
        return []
    if not any(c.key in paper for c in cols):
        return []
    out = []
    for seed in range(seeds):
        cid = _cell_id(ref.name, block, key, method, dataset, seed)
        rec: dict[str, object] = {
            "table": ref.name, "block": block, "row": key, "method": method,
            "dataset": dataset, "model": model or "",
            "teacher_model": "" if kind == "teacher" else (blk.teacher_model or ""),
            "seed": seed, "cell_id": cid, "status": "done", "reason": "",
            **{m: np.nan for m in METRICS + EFFICIENCY},
            "wall_time_s": float(gen.uniform(10, 100)), "profile": profile,
            "checkpoint": "last", "split": blk.split,
            "reimplementation": method.split("+")[0] in REIMPLEMENTED,
            "unverified": method == "sckd", "git_sha": "0123456789abcdef0123456789abcdef01234567",
            "versions": VERSIONS, "assumptions": json.dumps({"crop": [512, 512]}),
            "wandb_url": f"https://wandb.ai/kd-lab/bcd/runs/{cid}",
            "wandb_mode": wandb_mode,
        }
        for c in cols:
            if c.key in paper:
                rec[c.metric] = float(paper[c.key] + gen.normal(0, noise))
        for eff in EFFICIENCY:
            if eff in paper:
                rec[eff] = paper[eff]
                if eff in FULL_WIDTH:  # the paper's network stands for ours here
                    rec[FULL_WIDTH[eff]] = paper[eff]
        out.append(rec)
    return out


def set_status(df: pd.DataFrame, status: str, reason: str = "", **match: object) -> pd.DataFrame:
    """Set ``status`` on the rows matching every ``column=value`` of ``match`` (in place).

    Non-finished rows lose their metrics, as a store would report them.
    """
    mask = np.ones(len(df), dtype=bool)
    for col, value in match.items():
        mask &= (df[col] == value).to_numpy()
    df.loc[mask, "status"] = status
    if status != "done":
        df.loc[mask, list(METRICS + EFFICIENCY)] = np.nan
    if status == "failed":
        df.loc[mask, "reason"] = reason or "RuntimeError: CUDA out of memory"
    return df


def result_rows(table: str, row: str, dataset: str, values: list[float] | None = None,
                method: str | None = None, block: int = 0, metric: str = "miou",
                status: str = "done", seeds: int | None = None, **extra: object) -> pd.DataFrame:
    """Rows of one cell with chosen values: one seed per value (``status`` "done"), or
    ``seeds`` rows without values for another status. ``extra`` sets any other column."""
    if method is None:
        method = "none" if row in ("teacher", "student") else row
    values = list(values or [])
    count = len(values) if values else (seeds or 1)
    records = []
    for seed in range(count):
        rec: dict[str, object] = {
            "table": table, "block": block, "row": row, "method": method, "dataset": dataset,
            "model": "", "teacher_model": "", "seed": seed,
            "cell_id": _cell_id(table, block, row, method, dataset, seed), "status": status,
            "reason": "", **{m: np.nan for m in METRICS + EFFICIENCY}, "wall_time_s": 1.0,
            "profile": "paper", "checkpoint": "last", "split": "val",
            "reimplementation": False, "unverified": False, "git_sha": "f" * 40,
            "versions": VERSIONS, "assumptions": "{}", "wandb_url": "", "wandb_mode": "offline",
        }
        if values:
            rec[metric] = float(values[seed])
        rec.update(extra)
        records.append(rec)
    return pd.DataFrame.from_records(records)
