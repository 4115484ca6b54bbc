"""Why did a cell go wrong? One line per finished cell of a table from its health record.

Per (dataset, row, seed): mIoU and its difference to the same dataset's and seed's student,
whether the cell collapsed (and since which iteration), the ratio of the distillation terms'
student-gradient norm to the task loss's at the first probe (initialisation) and at the last,
the largest single distillation term at the first probe, and the last probe's majority share
and prediction entropy. Sorted by the difference to the student, worst first.

Run: ``.venv/bin/python benchmarks/health_summary.py table3 --results DIR [--profile smoke]
[--seeds 1]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from suite.store import Store
from suite.tables import expand


def _grad_ratio(probe: dict) -> float:
    """||grad of the distillation terms|| / ||grad of the task terms|| over the student."""
    norms = probe.get("grad_norm") or {}
    task = norms.get("task")
    return (norms.get("distill") or 0.0) / task if task else float("nan")


def _largest_term(probe: dict) -> str:
    norms = probe.get("grad_norm") or {}
    terms = {k: v for k, v in norms.items() if k.startswith("distill.")}
    if not terms:
        return "-"
    name = max(terms, key=terms.get)
    return f"{name.removeprefix('distill.')} {terms[name]:.3g}"


def health_frame(table: str, profile: str, seeds: int, results: Path) -> pd.DataFrame:
    store = Store(results)
    rows = []
    for cell in expand(table, profile, seeds, require_roots=False):
        if cell.role == "pretrain" or store.state(cell.id) != "done":
            continue
        res = store.result(cell.id) or {}
        health = res.get("health") or {}
        history = health.get("history") or []
        first, last = (history[0], history[-1]) if history else ({}, {})
        rows.append({
            "dataset": cell.config["dataset"], "row": cell.row, "seed": cell.config["seed"],
            "role": cell.role, "miou": res.get("miou"),
            "collapsed": bool(health.get("collapsed")), "since": health.get("since_iter"),
            "grad_ratio_init": _grad_ratio(first), "grad_ratio_last": _grad_ratio(last),
            "largest_term_init": _largest_term(first),
            "majority_last": last.get("majority_share"), "entropy_last": last.get("entropy"),
        })
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    students = df[df["role"] == "student"].set_index(["dataset", "seed"])["miou"]
    df["vs_student"] = [m - students.get((d, s), float("nan"))
                        for d, s, m in zip(df["dataset"], df["seed"], df["miou"])]
    return df.sort_values(["dataset", "vs_student"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table")
    ap.add_argument("--results", required=True)
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--seeds", type=int, default=1)
    args = ap.parse_args()
    df = health_frame(args.table, args.profile, args.seeds, Path(args.results))
    if df.empty:
        print("no finished cells")
        return 1
    with pd.option_context("display.width", 200, "display.max_rows", 500,
                           "display.float_format", "{:.3g}".format):
        print(df.drop(columns=["role"]).to_string(index=False))
    print(f"\n{int(df['collapsed'].sum())} of {len(df)} finished cells collapsed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
