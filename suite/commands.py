"""What each CLI command does (``suite.cli`` only parses arguments)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from suite.cli import _pairs, results_path
from suite.errors import SuiteError
from suite.profiles import load_profile, profile_names
from suite.store import Store
from suite.tables import Cell, expand, load_table, select, table_names


REFERENCE_TABLES = ("table1", "table2", "table3", "table4", "table5")


def resolve_profile(args: argparse.Namespace) -> str:
    """``auto``: the paper profile when every dataset of the table has a root, else smoke."""
    if args.table not in table_names():
        return "smoke" if args.profile == "auto" else args.profile
    if args.profile != "auto":
        load_profile(args.profile)  # validates the name
        return args.profile
    spec = load_table(args.table)
    roots = _pairs(args.data_root, "--data-root")
    have = all(roots.get(d) or os.environ.get(f"SUITE_DATA_{d.upper()}") for d in spec["datasets"])
    return "paper" if have else "smoke"


def table_cells(args: argparse.Namespace, require_roots: bool = True) -> list[Cell]:
    profile = resolve_profile(args)
    cells = expand(
        args.table,
        profile,
        seeds=args.seeds,
        data_roots=_pairs(args.data_root, "--data-root"),
        teacher_checkpoints=_pairs(args.teacher_checkpoint, "--teacher-checkpoint"),
        require_roots=require_roots,
    )
    return select(cells, args.only)


def cmd_list(args: argparse.Namespace) -> int:
    from suite.launch import EXECUTORS
    from suite.methods import method_names

    print("tables:")
    for name in table_names():
        spec = load_table(name)
        print(f"  {name:8s} {spec.get('title', '')}")
    print("profiles:")
    for name in profile_names():
        print(f"  {name:8s} {load_profile(name).get('description', '')}")
    print("methods: " + ", ".join(method_names()))
    print("executors: " + ", ".join(EXECUTORS))
    return 0


def _frame(cells: list[Cell], store: Store) -> pd.DataFrame:
    return pd.DataFrame(
        [{
            "id": c.id,
            "role": c.role,
            "dataset": c.config["dataset"],
            "row": c.row,
            "seed": c.config["seed"],
            "status": store.state(c.id),
            "depends_on": ",".join(c.depends_on),
        } for c in cells]
    )


def cmd_plan(args: argparse.Namespace) -> int:
    cells = table_cells(args, require_roots=False)
    store = Store(results_path(args))
    frame = _frame(cells, store)
    print(f"{args.table}: {len(cells)} cells ({resolve_profile(args)} profile)")
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(frame.to_string(index=False))
    print(frame["status"].value_counts().to_string())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from suite.launch import launch

    cells = table_cells(args)
    store = Store(results_path(args))
    profile = resolve_profile(args)
    print(f"{args.table}: {len(cells)} cells, profile {profile}, executor {args.executor}, "
          f"W&B {args.wandb}, results {store.root}")
    start = time.time()
    outcome = launch(cells, store, args.executor, args.wandb, workers=args.workers, desc=args.table,
                     cluster_profile=args.cluster_profile, table=args.table)
    took = time.time() - start
    print(f"{args.table}: {len(outcome.done)} ran, {len(outcome.skipped)} already finished, "
          f"{len(outcome.failed)} failed ({took:.0f} s)")
    for cid, reason in outcome.failed.items():
        print(f"  failed {cid}: {reason}")
    return 0 if outcome.ok else 1


def cmd_status(args: argparse.Namespace) -> int:
    cells = table_cells(args, require_roots=False)
    store = Store(results_path(args))
    frame = _frame(cells, store)
    try:
        from suite.slurm import scheduler_states

        frame["scheduler"] = frame["id"].map(scheduler_states(store, list(frame["id"])))
    except ImportError:
        pass
    counts = frame["status"].value_counts()
    print(f"{args.table}: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("done", "running", "failed", "missing")))
    for cell in cells:
        state = store.state(cell.id)
        if state == "failed":
            print(f"  failed  {cell.label}: {store.reason(cell.id)}")
        elif state == "running":
            rec = store.status_record(cell.id) or {}
            prog = rec.get("progress")
            where = (rec.get("scheduler") or {}).get("job_id") or f"pid {rec.get('pid')}"
            print(f"  running {cell.label}: {prog[0]}/{prog[1]} iters ({where})" if prog
                  else f"  running {cell.label} ({where})")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from suite.slurm import cancel

    cells = table_cells(args, require_roots=False)
    return cancel(cells, Store(results_path(args)))


def cmd_report(args: argparse.Namespace) -> int:
    from suite.report import render_report
    from suite.report.collect import collect_cells

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    out = Path(args.out) if args.out else results_path(args) / "report"
    if args.source == "wandb":
        from suite.report import from_wandb

        if not args.project:
            raise SuiteError("--source wandb needs --project ENTITY/PROJECT")
        frame = from_wandb(args.project, args.table)
    elif args.source == "store":
        cells = table_cells(args, require_roots=False) if args.table in table_names() else []
        if not cells and args.table not in REFERENCE_TABLES:
            load_table(args.table)  # raises the unknown-table error with the valid names
        frame = collect_cells(cells, results_path(args))
    else:
        raise SuiteError(f"unknown report source {args.source!r}; valid: store, wandb")
    written = render_report(args.table, frame, out, formats, tolerance=args.tolerance)
    md = written.get("md")
    if md:
        print(Path(md).read_text())
    for fmt, path in written.items():
        print(f"wrote {fmt}: {path}")
    return 0
