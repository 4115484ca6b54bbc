"""Build the collect() frame of a table from W&B runs (public API), instead of the local store.

Each run's ``config["cell"]`` holds the resolved cell config (table, row, method, dataset,
model, teacher, seed, profile, and optionally block, checkpoint, split, cell_id,
reimplementation, unverified, versions, assumptions); its summary holds the metrics under the
frame's column names (``summary_metrics``; Boundary IoU and the connectivity error also as
logged by the validation, ``bIoU`` and ``connErr``) and the health verdict (``health.collapsed``,
``health.reason``, ``health.since_iter``, ``health.diagnosis``); the git commit comes from the config's
``git_sha`` or the run's metadata. One W&B run is made per attempt (grouped by cell id), so the finished
attempt of a cell wins over others, then the most recent one.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from suite.report.frame import EFFICIENCY, METRICS, normalize
from suite.report.full_width import with_full_width

STATE_TO_STATUS = {"finished": "done", "running": "running", "pending": "running",
                   "preempting": "running",
                   "crashed": "failed", "failed": "failed", "killed": "failed",
                   "preempted": "failed"}
STATUS_ORDER = {"done": 0, "running": 1, "failed": 2, "missing": 3}


def _api() -> Any:
    """The W&B public API client (imported lazily: wandb is heavy and optional here)."""
    import wandb

    return wandb.Api()


def _mapping(obj: Any) -> dict[str, Any]:
    """A plain dict from a W&B config/summary object (they are dict-like, not always dicts)."""
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    for attr in ("_json_dict", "items"):
        value = getattr(obj, attr, None)
        if isinstance(value, dict):
            return value
        if callable(value):
            return dict(value())
    return dict(obj)


def _json(value: Any) -> str:
    if value is None:
        return "{}"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _number(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _health(summary: dict[str, Any]) -> dict[str, Any]:
    """``collapsed`` and ``collapse_note`` from the ``health.*`` summary keys of a run."""
    if not summary.get("health.collapsed"):
        return {"collapsed": False, "collapse_note": ""}
    since = summary.get("health.since_iter")
    text = str(summary.get("health.reason") or "no reason recorded")
    if since is not None:
        text += f" since iter {int(float(since))}"
    if summary.get("health.diagnosis"):
        text += f" ({summary['health.diagnosis']})"
    return {"collapsed": True, "collapse_note": text}


def run_record(run: Any) -> dict[str, Any] | None:
    """One frame row from one run, or None when the run has no ``cell`` config."""
    config = _mapping(getattr(run, "config", {}))
    cell = config.get("cell")
    if not isinstance(cell, dict):
        return None
    metrics = getattr(run, "summary_metrics", None)  # a plain dict on the public API's Run
    summary = metrics if isinstance(metrics, dict) else _mapping(getattr(run, "summary", {}))
    meta = getattr(run, "metadata", None)
    git = (meta.get("git") or {}) if isinstance(meta, dict) else {}
    state = str(getattr(run, "state", "") or "")
    status = summary.get("status") or STATE_TO_STATUS.get(state, "missing")
    rec: dict[str, Any] = {
        "table": cell.get("table", ""), "block": cell.get("block", 0),
        "row": cell.get("row", ""), "method": cell.get("method") or "none",
        "dataset": cell.get("dataset", ""), "model": cell.get("model", ""),
        "teacher_model": cell.get("teacher") or cell.get("teacher_model") or "",
        "seed": cell.get("seed", 0),
        "cell_id": cell.get("cell_id") or getattr(run, "group", None) or getattr(run, "id", ""),
        "status": status,
        "reason": summary.get("reason") or (f"W&B state: {state}" if status == "failed" else ""),
        "profile": cell.get("profile", ""),
        "checkpoint": summary.get("checkpoint") or cell.get("checkpoint", ""),
        "split": summary.get("split") or cell.get("split", ""),
        "reimplementation": bool(cell.get("reimplementation", False)),
        "unverified": bool(cell.get("unverified", False)),
        "git_sha": config.get("git_sha") or summary.get("git_sha") or git.get("commit") or "",
        "versions": _json(config.get("versions") or cell.get("versions")),
        "assumptions": _json(config.get("assumptions") or cell.get("assumptions")),
        "wandb_url": getattr(run, "url", "") or "",
        "wandb_mode": "online",
        "wall_time_s": _number(summary.get("wall_time_s", summary.get("_runtime"))),
        "_created": str(getattr(run, "created_at", "") or ""),
        **_health(summary),
    }
    for key in METRICS + EFFICIENCY:
        rec[key] = _number(summary.get(key))
    # the validation metrics as logged (``bIoU``, ``connErr``) unless summarised by name
    rec["boundary_iou"] = _number(summary.get("boundary_iou", summary.get("bIoU")))
    rec["connectivity_error"] = _number(summary.get("connectivity_error",
                                                    summary.get("connErr")))
    rec["data_source"] = str((cell.get("data") or {}).get("source", ""))
    return rec


def from_wandb(project: str, table: str, api: Any | None = None) -> pd.DataFrame:
    """The collect()-style frame of ``table`` from the runs of W&B ``project`` (entity/project).

    Only cells that have a run appear (the report lays out the rest from the paper's skeleton as
    not run yet). Attempts of the same cell and seed collapse to one row: finished first, then
    the newest. Each row's network at full width is added as collect() adds it
    (:func:`suite.report.full_width.with_full_width`).
    """
    api = api or _api()
    records = [r for r in (run_record(run) for run in api.runs(project)) if r is not None]
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return normalize(frame, table)
    frame = frame[frame["table"] == table]
    if frame.empty:
        return normalize(frame.drop(columns="_created"), table)
    frame = frame.assign(_order=frame["status"].map(STATUS_ORDER).fillna(9))
    frame = frame.sort_values(["_order", "_created"], ascending=[True, False])
    frame = frame.drop_duplicates(["cell_id", "seed"], keep="first")
    return normalize(with_full_width(frame.drop(columns=["_order", "_created"])), table)
