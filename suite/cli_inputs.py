"""Command-line values turned into what the commands use: ``NAME=PATH`` pairs, the cells
``--only`` keeps (checked against the table), the results folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from suite.errors import SuiteError

if TYPE_CHECKING:
    from suite.tables import Cell


def pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    """``NAME=PATH`` items of a repeatable ``flag`` as a mapping."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SuiteError(f"{flag} expects NAME=PATH, got {item!r}")
        key, value = item.split("=", 1)
        out[key] = value
    return out


def check_selection(cells: list[Cell], chosen: list[Cell], only: list[str]) -> list[Cell]:
    """``chosen`` (the cells ``--only`` keeps), or an error naming a value no cell has."""
    for item in only:
        key, _, values = item.partition("=")
        have = {_attr(c, key) for c in cells}
        unknown = [v for v in values.split(",") if v not in have]
        if unknown:
            raise SuiteError(f"--only {key}={','.join(unknown)} matches no cell; valid {key} "
                             f"values: {', '.join(sorted(have)) or 'none'}")
    return chosen


def _attr(cell: Cell, key: str) -> str:
    if key in ("row", "id"):
        return str(getattr(cell, key))
    if key == "method":
        return str(cell.config.get("method_name", "none"))
    return str(cell.config.get(key))


def results_path(args: argparse.Namespace) -> Path:
    """The ``--results`` folder, absolute."""
    return Path(args.results).resolve()
