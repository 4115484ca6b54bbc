"""Command line: ``suite list | plan | run | status | report | cancel`` (argument parsing only)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from suite.errors import SuiteError

DEFAULT_RESULTS = "results"


def _pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SuiteError(f"{flag} expects NAME=PATH, got {item!r}")
        key, value = item.split("=", 1)
        out[key] = value
    return out


def _cell_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", help="table name (see `suite list`)")
    p.add_argument("--profile", default="auto",
                   help="smoke | paper | auto (paper when every dataset root is set, else smoke)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per student cell (default 1)")
    p.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                   help="keep cells whose row/method/dataset/role/seed/model/id matches (repeatable)")
    p.add_argument("--results", default=os.environ.get("SUITE_RESULTS", DEFAULT_RESULTS),
                   help="results folder (default ./results)")
    p.add_argument("--data-root", action="append", metavar="DATASET=PATH",
                   help="root of a real dataset for the paper profile (repeatable)")
    p.add_argument("--teacher-checkpoint", action="append", metavar="DATASET/MODEL=PATH",
                   help="use a trained teacher checkpoint instead of training one (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="suite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="tables, profiles, methods and executors")
    for name, text in (("plan", "every cell of a table with its id and status"),
                       ("status", "the state of a table's cells (store + scheduler)"),
                       ("cancel", "cancel a table's queued or running SLURM jobs")):
        _cell_args(sub.add_parser(name, help=text))
    run = sub.add_parser("run", help="run a table's missing and failed cells")
    _cell_args(run)
    run.add_argument("--executor", default="local", help="local | debug | slurm")
    run.add_argument("--workers", type=int, default=None, help="local pool size (default: cores, max 4)")
    run.add_argument("--wandb", default=os.environ.get("SUITE_WANDB", "offline"),
                     help="offline (default) | online | disabled")
    run.add_argument("--cluster-profile", default="local", help="slurm/profiles/NAME.yaml")
    report = sub.add_parser("report", help="render a table beside the paper's numbers")
    _cell_args(report)
    report.add_argument("--format", default="md,tex", help="comma list of md,tex,png,html,csv,parquet")
    report.add_argument("--out", default=None, help="output folder (default RESULTS/report)")
    report.add_argument("--tolerance", type=float, default=0.5, help="flag |ours - paper| above this")
    report.add_argument("--source", default="store", help="store (default) | wandb")
    report.add_argument("--project", default=None, help="ENTITY/PROJECT for --source wandb")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from suite import commands

        return int(getattr(commands, f"cmd_{args.command}")(args) or 0)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished cells are kept; run again to resume the rest", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `suite plan table3 | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def results_path(args: argparse.Namespace) -> Path:
    return Path(args.results).resolve()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
