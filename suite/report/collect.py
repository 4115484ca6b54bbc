"""Read the store for one table: one DataFrame row per expected cell (the report's only input)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from suite.store import Store
from suite.tables import Cell

COLUMNS = [
    "table", "block", "row", "method", "dataset", "model", "teacher_model", "seed", "cell_id",
    "status", "reason", "miou", "aacc", "ap_box", "ap_mask", "params_m", "flops_g", "fps",
    "params_full_m", "flops_full_g",
    "wall_time_s", "profile", "checkpoint", "split", "reimplementation", "unverified", "git_sha",
    "versions", "assumptions", "wandb_url", "wandb_mode", "collapsed", "collapse_note",
    "boundary_iou", "connectivity_error", "data_source", "cost_wall_s", "cost_device_s",
    "cost_device", "peak_host_mib", "peak_device_mib", "predictions_dir",
]


def collapse_note(health: dict | None) -> str:
    """``majority class 'background' on 99.6% of val pixels since iter 25 (at iter 120: entropy
    0.02 of 3.04 nats; grad norm distill 8.1 vs task 0.3 (27x))`` for a collapsed result's
    ``health`` record; empty for a healthy one."""
    if not health or not health.get("collapsed"):
        return ""
    since = health.get("since_iter")
    text = (health.get("reason") or "no reason recorded") + (
        f" since iter {since}" if since is not None else "")
    return text + (f" ({health['diagnosis']})" if health.get("diagnosis") else "")


def cost_columns(result: dict) -> dict[str, object]:
    """The frame's cost columns of a result: wall and device seconds (GPU seconds on CUDA, CPU
    seconds on a CPU run), the device, peak host and device memory (MiB); NaN when unrecorded
    (a result older than the ``cost`` record gives its ``wall_time_s`` as wall)."""
    from suite.cost import device_seconds

    nan = float("nan")
    cost = result.get("cost") or {}
    return {
        "cost_wall_s": cost.get("wall_s", result.get("wall_time_s", nan)),
        "cost_device_s": device_seconds(cost) if cost else nan,
        "cost_device": cost.get("device", ""),
        "peak_host_mib": cost.get("peak_host_mib", nan),
        "peak_device_mib": cost.get("peak_device_mib", nan),
    }


def _predictions(store: Store, cell_id: str) -> str:
    """The cell's ``predictions/`` folder (:mod:`suite.predictions`), or "" without one."""
    folder = store.cell_dir(cell_id) / "predictions"
    return str(folder) if folder.is_dir() else ""


def _row(cell: Cell, store: Store) -> dict:
    cfg = cell.config
    state = store.state(cell.id)
    res = (store.result(cell.id) or {}) if state == "done" else {}
    method = cfg.get("method") or {}
    role = cfg["role"]
    model = cfg["model"]
    teacher = (cfg.get("teacher") or {}).get("model", model if role == "teacher" else "")
    nan = float("nan")
    wandb = res.get("wandb", {})
    return {
        "table": cell.table,
        "block": cell.block,
        "row": cell.row,
        "method": cfg.get("method_name", "none"),
        "dataset": cfg["dataset"],
        "model": model,
        "teacher_model": teacher,
        "seed": int(cfg["seed"]),
        "cell_id": cell.id,
        "status": state,
        "reason": store.reason(cell.id) if state in ("failed", "damaged") else "",
        "miou": res.get("miou", nan),
        "aacc": res.get("aacc", nan),
        "ap_box": res.get("ap_box", nan),
        "ap_mask": res.get("ap_mask", nan),
        "params_m": res.get("params_m", nan),
        "flops_g": res.get("flops_g", nan),
        "fps": res.get("fps", nan),
        "wall_time_s": res.get("wall_time_s", nan),
        "profile": cfg["profile"],
        "checkpoint": cfg.get("eval", {}).get("checkpoint", "last"),
        "split": res.get("split", ""),
        "reimplementation": bool(method.get("reimplementation", False)),
        "unverified": bool(method.get("unverified")),
        "git_sha": res.get("git_sha", ""),
        "versions": json.dumps(res.get("versions", {}), sort_keys=True),
        "assumptions": json.dumps(res.get("assumptions", method.get("assumptions", {})), sort_keys=True,
                                  default=str),
        "wandb_url": wandb.get("url", "") or "",
        "wandb_mode": wandb.get("mode", ""),
        "collapsed": bool((res.get("health") or {}).get("collapsed", False)),
        "collapse_note": collapse_note(res.get("health")),
        "boundary_iou": res.get("boundary_iou", nan),
        "connectivity_error": res.get("connectivity_error", nan),
        "data_source": (cfg.get("data") or {}).get("source", ""),
        **cost_columns(res),
        "predictions_dir": _predictions(store, cell.id) if state == "done" else "",
        **{f"col_{k}": v for k, v in cell.columns.items()},
    }


def collect_cells(cells: list[Cell], results_dir: Path) -> pd.DataFrame:
    """The long-format DataFrame of ``cells`` with their state and numbers from the store, and
    each row's network at full width (``params_full_m``, ``flops_full_g``:
    :mod:`suite.report.full_width`)."""
    from suite.report.full_width import with_full_width

    store = Store(results_dir)
    rows = [_row(c, store) for c in cells if c.role != "pretrain"]  # backbone inits, not rows
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    return with_full_width(pd.DataFrame(rows))


def collect(table: str, results_dir: Path, profile: str = "smoke", seeds: int = 1,
            data_roots: dict[str, str] | None = None) -> pd.DataFrame:
    """Expand ``table`` under ``profile`` and read every cell's state and result."""
    from suite.tables import expand, table_names

    if table not in table_names():
        return pd.DataFrame(columns=COLUMNS)
    return collect_cells(expand(table, profile, seeds, data_roots, require_roots=False),
                         Path(results_dir))
