"""Speed of the report renderer: one table from a synthetic frame of 10,000 cells.

Builds a Table III frame with extra (synthetic) methods so that it holds 10,000 result rows
(some missing, failed or running), then times ``render_report`` over every format (md, tex +
macros, png + pdf, html, csv, parquet). The goal is under 5 seconds. By default it measures two
shapes: 10,000 single-seed cells (3,334 table rows x 3 datasets) and 10,000 rows as 3 seeds of
3,334 cells (1,112 table rows).

Run: ``.venv/bin/python benchmarks/report_speed.py [--cells 10000] [--seeds 1 3] [--out DIR]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from suite.report import render_report
from suite.report.synthetic import set_status, synthetic_frame

GOAL_S = 5.0
FORMATS = ["md", "tex", "png", "html", "csv", "parquet"]


def frame_of(cells: int, seeds: int) -> pd.DataFrame:
    """A Table III frame with exactly ``cells`` rows (paper rows plus synthetic methods)."""
    per_method = 3 * seeds  # three datasets
    base = len(synthetic_frame("table3", seeds=seeds))
    extra = max(0, -(-(cells - base) // per_method))
    df = synthetic_frame("table3", seeds=seeds, extra_methods=extra, wandb_mode="online")
    df = df.iloc[:cells].copy()
    n = len(df)
    set_status(df, "missing", row="kd")
    df.loc[df.index[n // 10: n // 10 + n // 50], "status"] = "missing"
    df.loc[df.index[n // 5: n // 5 + n // 100], "status"] = "failed"
    df.loc[df.index[n // 3: n // 3 + n // 100], "status"] = "running"
    return df


def main() -> None:
    """Time one render and print the time and its ratio to the goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        render_report("table3", frame_of(50, 1), out, FORMATS)  # warm up imports and fonts
        for seeds in args.seeds:
            df = frame_of(args.cells, seeds)
            start = time.perf_counter()
            files = render_report("table3", df, out, FORMATS)
            elapsed = time.perf_counter() - start
            sizes = ", ".join(f"{k}={p.stat().st_size / 1e6:.1f}MB" for k, p in files.items())
            rows = df["row"].nunique()
            print(f"rendered table3 from {len(df)} cells ({rows} table rows x 3 datasets, "
                  f"{seeds} seed(s) each) in {elapsed:.2f} s; formats: {', '.join(FORMATS)}")
            print(f"  files: {sizes}")
            print(f"  ratio to the {GOAL_S:.0f} s goal: {elapsed / GOAL_S:.2f} "
                  f"({'OK' if elapsed < GOAL_S else 'TOO SLOW'})")


if __name__ == "__main__":
    main()
