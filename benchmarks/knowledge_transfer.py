"""Does knowledge transfer? The student and distillation rows over several seeds, paired statistics.

Runs the ``signal`` table (PSPNet-R101 -> PSPNet-R18 on synthetic Pascal VOC: the student, KD,
CWD and BCD at their defaults) on the ``signal`` profile with ``--seeds`` seeds (default 3), or
the detection check ``--table det_signal --profile det_signal`` (GFL-R50 -> GFL-R18 on synthetic
COCO: the student, LD, PKD, CrossKD and BCD), then prints per row: the metric (mIoU, or box AP)
mean +- std over seeds, the paired difference to the student (same seed: same initialisation
and data order) with its standard error, and a verdict:

* ``helps``  the paired difference is above +2 standard errors;
* ``hurts``  below -2 standard errors;
* ``within noise`` otherwise;
* ``floor``  a seed ended at the background floor (at most one class with IoU > 0; for a
  detector: box AP 0), or the cell's health record says it collapsed.

It ends with the checks of a regime that can show knowledge transfer (:data:`CHECKS`):
teacher - student >= 10 mIoU (3 box AP for detection), the task's reference distillation
(KD; PKD, MMRazor's generic detection baseline) above the student by > 2 SE, no row at the
floor, BCD not below the student by more than 2 SE.

Run: ``.venv/bin/python benchmarks/knowledge_transfer.py [--results DIR] [--seeds 3]
[--profile signal] [--table signal] [--no-run] [--markdown FILE]``. Finished cells are reused,
so a second call only reprints. ``SUITE_THREADS=1`` per worker (set here) keeps two workers on
two cores from slowing each other down.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from suite.store import Store
from suite.tables import expand

REPO = Path(__file__).resolve().parent.parent


# per task: the metric, its label, the teacher-student gap a readable regime needs, the rows
# checked and the reference distillation row
CHECKS = {
    "segmentation": {"metric": "miou", "label": "mIoU", "gap": 10.0,
                     "rows": ("student", "kd", "cwd", "bcd"), "reference": "kd"},
    "detection": {"metric": "ap_box", "label": "box AP", "gap": 3.0,
                  "rows": ("student", "ld", "pkd", "crosskd", "bcd"), "reference": "pkd"},
}


def at_floor(result: dict, task: str = "segmentation") -> bool:
    """At most one class has a non-zero IoU (background everywhere), a detector with box AP 0,
    or health says collapsed."""
    collapsed = bool((result.get("health") or {}).get("collapsed"))
    if task == "detection":
        return collapsed or not result.get("ap_box")
    ious = [v for k, v in (result.get("metrics") or {}).items() if k.startswith("IoU.")]
    nonzero = [v for v in ious if isinstance(v, (int, float)) and not math.isnan(v) and v > 0]
    return len(nonzero) <= 1 or collapsed


def cells_frame(table: str, profile: str, seeds: int, results: Path) -> pd.DataFrame:
    """One row per finished cell: row, seed, role, the task's metric (``value``), floor flag."""
    store = Store(results)
    rows = []
    for cell in expand(table, profile, seeds, require_roots=False):
        if cell.role == "pretrain":
            continue
        task = cell.config.get("task", "segmentation")
        res = store.result(cell.id) if store.state(cell.id) == "done" else None
        rows.append({"row": cell.row, "seed": int(cell.config["seed"]), "role": cell.role,
                     "value": (res or {}).get(CHECKS[task]["metric"], float("nan")),
                     "floor": at_floor(res, task) if res else False, "done": res is not None,
                     "task": task})
    return pd.DataFrame(rows)


def paired_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per row: mean, std, paired difference to the student (mean, SE), verdict."""
    students = df[df["row"] == "student"].set_index("seed")["value"]
    out = []
    for row, group in df[df["role"] != "teacher"].groupby("row", sort=False):
        g = group.set_index("seed")
        diff = (g["value"] - students.reindex(g.index)).dropna()
        n = len(diff)
        se = diff.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")
        mean_diff = diff.mean() if n else float("nan")
        if g["floor"].any():
            verdict = "floor"
        elif row == "student":
            verdict = "-"
        elif n < 2:
            verdict = "needs 2+ seeds"
        elif mean_diff > 2 * se:
            verdict = "helps"
        elif mean_diff < -2 * se:
            verdict = "hurts"
        else:
            verdict = "within noise"
        out.append({"row": row, "n": int(g["value"].notna().sum()), "mean": g["value"].mean(),
                    "std": g["value"].std(ddof=1), "seeds": " / ".join(f"{v:.2f}" for v in g["value"]),
                    "diff": mean_diff if row != "student" else float("nan"),
                    "se": se if row != "student" else float("nan"), "verdict": verdict})
    return pd.DataFrame(out)


def task_of(df: pd.DataFrame) -> str:
    """The task of the cells in ``df`` (segmentation when it does not say)."""
    return str(df["task"].iloc[0]) if "task" in df and len(df) else "segmentation"


def checks(df: pd.DataFrame, summary: pd.DataFrame) -> list[tuple[str, bool]]:
    """The pass/fail list of a regime that shows knowledge transfer, over the task's checked
    rows (:data:`CHECKS`; other rows, e.g. an earlier default shown for comparison, are
    reported but not checked)."""
    spec = CHECKS[task_of(df)]
    label = spec["label"]
    teacher = df.loc[df["role"] == "teacher", "value"].mean()
    s = summary.set_index("row")
    s = s[s.index.isin(spec["rows"])]
    student = s.loc["student", "mean"]
    out = [(f"teacher - student >= {spec['gap']:g} {label} ({teacher:.2f} - {student:.2f} = "
            f"{teacher - student:.2f})", teacher - student >= spec["gap"])]
    ref = spec["reference"]
    if ref in s.index:
        r = s.loc[ref]
        out.append((f"{ref.upper()} - student > 2 SE ({r['diff']:+.2f}, SE {r['se']:.2f})",
                    bool(r["diff"] > 2 * r["se"])))
    floors = list(s.index[s["verdict"] == "floor"])
    out.append((f"no row at the floor ({', '.join(floors) or 'none'})", not floors))
    if "bcd" in s.index:
        bcd = s.loc["bcd"]
        out.append((f"BCD not below the student by > 2 SE ({bcd['diff']:+.2f}, SE {bcd['se']:.2f})",
                    bool(bcd["diff"] >= -2 * bcd["se"])))
    return out


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table of ``frame`` (floats with two decimals, NaN as a dash)."""
    def cell(v: object) -> str:
        if isinstance(v, float):
            return "-" if math.isnan(v) else f"{v:.2f}"
        return str(v)

    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def render(df: pd.DataFrame, summary: pd.DataFrame, profile: str, seeds: int) -> str:
    spec = CHECKS[task_of(df)]
    teacher = df.loc[df["role"] == "teacher", "value"]
    table = summary.rename(columns={"mean": f"{spec['label']} mean", "std": "std",
                                    "diff": "paired diff", "se": "SE"})
    lines = [f"profile {profile}, {seeds} seeds; teacher {spec['label']} {teacher.mean():.2f}",
             "", markdown_table(table), ""]
    lines += [f"- [{'x' if ok else ' '}] {text}" for text, ok in checks(df, summary)]
    extra = [r for r in summary["row"] if r not in spec["rows"]]
    if extra:
        lines.append(f"- not checked (shown for comparison): {', '.join(extra)}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default="signal")
    ap.add_argument("--profile", default="signal")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--results", default=str(REPO / "results"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-run", action="store_true", help="only read what is in --results")
    ap.add_argument("--markdown", help="also write the printed summary to this file")
    args = ap.parse_args()
    if not args.no_run:
        env = {**os.environ, "SUITE_THREADS": os.environ.get("SUITE_THREADS", "1")}
        cmd = [sys.executable, "-m", "suite", "run", args.table, "--profile", args.profile,
               "--seeds", str(args.seeds), "--results", args.results, "--executor", "local",
               "--workers", str(args.workers)]
        code = subprocess.call(cmd, env=env, cwd=REPO)
        if code not in (0, 1):
            return code
    df = cells_frame(args.table, args.profile, args.seeds, Path(args.results))
    missing = int((~df["done"]).sum())
    if missing:
        print(f"{missing} cells not finished; the statistics use the finished ones")
    text = render(df[df["done"]], paired_summary(df[df["done"]]), args.profile, args.seeds)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
