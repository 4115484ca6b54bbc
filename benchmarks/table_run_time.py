"""Wall time of a table run on a profile: the span, the per-cell breakdown, the ratio to a goal.

Reads a results folder (``suite run TABLE --results DIR``) and prints, from each cell's status
history and result record, the span of the run (first start to last finish), the summed cell
time (worker-seconds), the critical path through the teachers, a dataset x row table of cell
wall times, and the span's ratio to the goal (15 minutes on 2 CPU cores for the smoke Table III).
With ``--run`` it first runs the table into a fresh folder with the local executor.

Run: ``.venv/bin/python benchmarks/table_run_time.py table3 [--run] [--results DIR] [--goal-min 15]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from suite.store import Store
from suite.tables import expand


def cell_times(table: str, profile: str, results: Path) -> pd.DataFrame:
    """One row per cell: dataset, row, role, start and finish (epoch s), wall time (s)."""
    store = Store(results)
    rows = []
    for cell in expand(table, profile, require_roots=False):
        status = store.status_record(cell.id) or {}
        history = status.get("history", [])
        starts = [h["at"] for h in history if h["state"] == "running"]
        ends = [h["at"] for h in history if h["state"] in ("done", "failed")]
        result = store.result(cell.id) or {}
        # a column per dataset, or per dataset and teacher where blocks share a dataset (Table V)
        teacher = (cell.config.get("teacher") or {}).get("model") or (
            cell.config["model"] if cell.config["role"] == "teacher" else None)
        method = cell.config.get("method_name")  # a row name is unique with its method (Table II)
        label = cell.row if not method or method == cell.row else f"{cell.row} +{method}"
        rows.append({"dataset": cell.config["dataset"], "row": label, "role": cell.config["role"],
                     "block": cell.block, "teacher": teacher,
                     "state": store.state(cell.id), "start": min(starts) if starts else None,
                     "end": max(ends) if ends else None,
                     "wall_s": result.get("wall_time_s")})
    return pd.DataFrame(rows)


def summarise(df: pd.DataFrame, goal_s: float) -> str:
    """The printed summary of :func:`cell_times`."""
    done = df[df["state"] == "done"]
    span = done["end"].max() - done["start"].min()
    teachers = done[done["role"] == "teacher"]
    # blocks sharing a dataset: a column per block, named after its teacher
    names = teachers.groupby("block")["teacher"].first()
    shared = df.groupby("dataset")["block"].nunique().max() > 1
    column = "pair" if shared else "dataset"
    done = done.assign(pair=[f"{d}/{names.get(b, b)}" for d, b in zip(done["dataset"], done["block"])])
    lines = [
        f"{len(done)}/{len(df)} cells done; span {span / 60:.1f} min, "
        f"summed cell time {done['wall_s'].sum() / 60:.1f} worker-min",
        f"teachers (on the critical path): {', '.join(f'{r.dataset}/{r.teacher} {r.wall_s:.0f} s' for r in teachers.itertuples())}",
        f"ratio to the {goal_s / 60:.0f} min goal: {span / goal_s:.2f} "
        f"({'incomplete run' if len(done) < len(df) else 'OK' if span <= goal_s else 'over'})",
        "",
        f"cell wall time (s), {column} x row:",
        done.pivot_table(index="row", columns=column, values="wall_s", sort=False).round(0)
        .to_string(),
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", nargs="?", default="table3")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--run", action="store_true", help="run the table into a fresh folder first")
    parser.add_argument("--goal-min", type=float, default=15.0)
    args = parser.parse_args()
    results = args.results or Path(tempfile.mkdtemp(prefix=f"{args.table}-"))
    if args.run:
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", "suite", "run", args.table, "--profile",
                                args.profile, "--results", str(results)])
        print(f"suite run {args.table}: exit {code}, {(time.perf_counter() - start) / 60:.1f} min "
              f"including start-up ({results})")
    print(summarise(cell_times(args.table, args.profile, results), args.goal_min * 60))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
