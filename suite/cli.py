"""Command line: ``suite list | plan | run | status | report | cancel`` (argument parsing only)."""

from __future__ import annotations

import argparse
import netrc
import os
import sys
from pathlib import Path

from suite.errors import SuiteError

DEFAULT_RESULTS = "results"


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
        cmd = sub.add_parser(name, help=text)
        _cell_args(cmd)
        if name == "plan":
            cmd.add_argument("--estimate", action="store_true",
                             help="each cell's cost (measured, or predicted from finished cells "
                                  "of the results folder) and the table's total")
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
        check_args(args)
        from suite import commands

        return int(getattr(commands, f"cmd_{args.command}")(args) or 0)
    except SuiteError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished cells are kept; run again to resume the rest", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `suite plan table3 | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


# ----------------------------------------------------------------------------- input checks


def check_args(args: argparse.Namespace) -> None:
    """Checks of the arguments themselves, before any table is read or anything runs."""
    results = getattr(args, "results", None)
    if results and Path(results).exists() and not Path(results).is_dir():
        raise SuiteError(f"--results {results} is a file, not a folder: give a folder "
                         "(created when missing)")
    if args.command == "report":
        from suite.report import FORMATS

        unknown = [f for f in args.format.split(",") if f.strip() and
                   f.strip().lower().lstrip(".") not in FORMATS]
        if unknown:
            raise SuiteError(f"--format: unknown format(s) {', '.join(unknown)}; "
                             f"valid: {', '.join(FORMATS)}")
    if args.command == "run" and args.wandb == "online" and not wandb_key_available():
        raise SuiteError("--wandb online needs WANDB_API_KEY in the environment (or `wandb login`); "
                         "use --wandb offline to log locally and `wandb sync` later")


def wandb_key_available(env: dict[str, str] | None = None) -> bool:
    """Whether W&B can authenticate: ``WANDB_API_KEY``, or a ``wandb login`` entry in netrc."""
    env = dict(os.environ if env is None else env)
    if env.get("WANDB_API_KEY"):
        return True
    path = env.get("NETRC") or str(Path.home() / ".netrc")
    host = env.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def one_line(exc: BaseException) -> str:
    """An error message on one line; a YAML parser's report becomes its problem and position."""
    text = str(exc)
    cause = exc.__cause__
    mark = getattr(cause, "problem_mark", None)
    if cause is not None and mark is not None and text.endswith(str(cause)):
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        text = f"{text[: -len(str(cause))]}{getattr(cause, 'problem', None) or 'invalid YAML'} ({where})"
    return " ".join(part.strip() for part in text.splitlines() if part.strip()) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
