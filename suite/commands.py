"""What each CLI command does (``suite.cli`` only parses arguments)."""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite.blocks import table_datasets
from suite.cli_inputs import check_selection, pairs, results_path
from suite.errors import SuiteError
from suite.profiles import load_profile, profile_names
from suite.store import Store, headline_text
from suite.tables import Cell, expand, load_table, select, table_names

if TYPE_CHECKING:
    import pandas as pd

REFERENCE_TABLES = ("table1", "table2", "table3", "table4", "table5")


def resolve_profile(args: argparse.Namespace) -> str:
    """``auto``: the paper profile when every dataset of the table has a root, else smoke."""
    if args.table not in table_names():
        return "smoke" if args.profile == "auto" else args.profile
    if args.profile != "auto":
        load_profile(args.profile)  # validates the name
        return args.profile
    spec = load_table(args.table)
    roots = pairs(args.data_root, "--data-root")
    have = all(roots.get(d) or os.environ.get(f"SUITE_DATA_{d.upper()}") for d in table_datasets(spec))
    return "paper" if have else "smoke"


def table_cells(args: argparse.Namespace, require_roots: bool = True) -> list[Cell]:
    profile = resolve_profile(args)
    cells = expand(
        args.table,
        profile,
        seeds=args.seeds,
        data_roots=pairs(args.data_root, "--data-root"),
        teacher_checkpoints=pairs(args.teacher_checkpoint, "--teacher-checkpoint"),
        require_roots=require_roots,
    )
    return check_selection(cells, select(cells, args.only), args.only)


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
    import pandas as pd  # imported here: `status` stays fast without it

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
    import pandas as pd

    cells = table_cells(args, require_roots=False)
    store = Store(results_path(args))
    frame = _frame(cells, store)
    print(f"{args.table}: {len(cells)} cells ({resolve_profile(args)} profile)")
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(frame.to_string(index=False))
    print(frame["status"].value_counts().to_string())
    if getattr(args, "estimate", False):
        from suite.estimate import estimate, summary_lines

        print(f"{args.table}: cost per cell")
        print("\n".join(summary_lines(estimate(cells, store))))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from suite.launch import EXECUTORS, launch
    from suite.tracking import MODES

    if args.executor not in EXECUTORS:
        raise SuiteError(f"unknown executor {args.executor!r}; valid: {', '.join(EXECUTORS)}")
    if args.wandb not in MODES:
        raise SuiteError(f"unknown W&B mode {args.wandb!r}; valid: {', '.join(MODES)}")
    cells = table_cells(args)
    store = Store(results_path(args))
    profile = resolve_profile(args)
    print(f"{args.table}: {len(cells)} cells, profile {profile}, executor {args.executor}, "
          f"W&B {args.wandb}, results {store.root}")
    start = time.time()
    outcome = launch(cells, store, args.executor, args.wandb, workers=args.workers, desc=args.table,
                     cluster_profile=args.cluster_profile, table=args.table)
    took = time.time() - start
    if args.executor == "slurm":
        return _print_submission(args.table, outcome)
    print(f"{args.table}: {len(outcome.done)} ran, {len(outcome.skipped)} already finished, "
          f"{len(outcome.elsewhere)} running elsewhere, {len(outcome.failed)} failed ({took:.0f} s)")
    for cid, reason in outcome.failed.items():
        print(f"  failed {cid}: {reason}")
    return 0 if outcome.ok else 1


def _print_submission(table: str, outcome: Any) -> int:
    """``run --executor slurm``: the arrays submitted; the cells finish after we return."""
    for arr in outcome.arrays:
        after = f", after {','.join(arr['after'])}" if arr["after"] else ""
        print(f"  array {arr['array']}: {arr['cells']} cells ({arr['name']}{after})")
    print(f"{table}: submitted {len(outcome.submitted)} cells in {len(outcome.arrays)} arrays "
          f"({', '.join(a['array'] for a in outcome.arrays) or 'none'}), "
          f"{len(outcome.skipped)} finished or already queued; follow with `suite status {table}`")
    for cid, reason in outcome.failed.items():
        print(f"  not submitted {cid}: {reason}")
    return 0 if outcome.ok else 1


def _status_line(cell: Cell, state: str, store: Store, job: str, sched: str) -> str:
    """One cell of ``suite status``: store state, scheduler state and job, progress or reason."""
    line = f"  {state:8s} {cell.label}"
    if state == "done":
        res = store.result(cell.id) or {}
        health = res.get("health") or {}
        since = health.get("since_iter")
        flag = (f" COLLAPSED{f' since iter {since}' if since is not None else ''}"
                f" ({health.get('reason', '')})" if health.get("collapsed") else "")
        return f"{line}: {headline_text(res)}{flag}"
    if state in ("failed", "damaged"):
        return f"{line}: {store.reason(cell.id)}"
    if state == "running":
        rec = store.status_record(cell.id) or {}
        prog = rec.get("progress")
        where = f"{sched or 'job'} {job}" if job else f"pid {rec.get('pid')} on {rec.get('host')}"
        return f"{line} ({where}{f', {prog[0]}/{prog[1]} iters' if prog else ''})"
    return line


def cmd_status(args: argparse.Namespace) -> int:
    from suite.slurm import scheduler_view

    cells = table_cells(args, require_roots=False)
    store = Store(results_path(args))
    view = scheduler_view(cells, store)  # marks failed the cells whose job ended without result
    states = {c.id: store.state(c.id) for c in cells}
    counts = Counter(states.values())
    print(f"{args.table}: {len(cells)} cells: " +
          ", ".join(f"{counts.get(s, 0)} {s}" for s in ("done", "running", "failed", "damaged", "missing")))
    if view.note:
        print(f"  ({view.note})")
    for cell in cells:
        print(_status_line(cell, states[cell.id], store, view.jobs.get(cell.id, ""),
                           view.states.get(cell.id, "")))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """scancel the table's queued and running SLURM jobs; their cells are marked failed."""
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
    if "status" in frame:
        store = Store(results_path(args))
        for cid in frame.loc[frame["status"] == "damaged", "cell_id"]:
            print(f"damaged {cid}: {store.reason(cid)} (not reported)")
    layout_table = args.table
    if args.table not in REFERENCE_TABLES:  # a check table (signal, det_signal): the paper's
        layout_table = str(load_table(args.table).get("reference") or "")  # layout it names
        if layout_table not in REFERENCE_TABLES:
            raise SuiteError(f"table {args.table!r} names no paper table to report against "
                             f"(its 'reference:'); valid: {', '.join(REFERENCE_TABLES)}")
        frame = frame.assign(table=layout_table)
        out = out / args.table  # its files are named after the layout: keep them apart
    written = render_report(layout_table, frame, out, formats, tolerance=args.tolerance)
    md = written.get("md")
    if md:
        print(Path(md).read_text())
    for fmt, path in written.items():
        print(f"wrote {fmt}: {path}")
    return 0
