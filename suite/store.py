"""The results store: one folder per cell, the only source of truth for results.

``results/<cell-id>/`` holds ``config.json`` (the resolved config), ``status.json`` (state,
attempt, pid/host or scheduler job, reason), ``train.log``, ``student.pth`` (the exported
student), ``result.json`` (metrics and provenance) and ``work/`` (mmengine's work dir with the
resumable checkpoints). Every file is written atomically (temp file + rename), so a killed run or
two array tasks never leave a half-written file, and a finished cell is never overwritten.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

STATES = ("done", "missing", "failed", "running")
# A "running" cell whose heartbeat is older than this and whose process is gone is stale.
STALE_AFTER_S = 600.0


def cache_dir() -> Path:
    """Where the suite caches generated data and resolved method records (``SUITE_CACHE``)."""
    return Path(os.environ.get("SUITE_CACHE", Path.home() / ".cache" / "suite"))


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """Per-cell folders under ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def cell_dir(self, cell_id: str) -> Path:
        return self.root / cell_id

    def result(self, cell_id: str) -> dict[str, Any] | None:
        return read_json(self.cell_dir(cell_id) / "result.json")

    def status_record(self, cell_id: str) -> dict[str, Any] | None:
        return read_json(self.cell_dir(cell_id) / "status.json")

    def state(self, cell_id: str) -> str:
        """done / missing / failed / running (a dead local process counts as failed)."""
        d = self.cell_dir(cell_id)
        if (d / "result.json").is_file():
            return "done"
        rec = read_json(d / "status.json")
        if not rec:
            return "missing"
        state = rec.get("state", "missing")
        if state == "running" and self._is_stale(rec):
            return "failed"
        return state if state in STATES else "missing"

    def _is_stale(self, rec: dict[str, Any]) -> bool:
        if rec.get("scheduler"):  # a queued/running SLURM job: the scheduler decides
            return False
        if rec.get("host") == socket.gethostname() and rec.get("pid"):
            return not _pid_alive(int(rec["pid"]))
        return time.time() - float(rec.get("heartbeat", 0)) > STALE_AFTER_S

    def reason(self, cell_id: str) -> str:
        rec = self.status_record(cell_id) or {}
        if rec.get("state") == "running" and self.state(cell_id) == "failed":
            return "interrupted (process gone); will resume from its last checkpoint"
        return str(rec.get("reason", ""))

    def write_config(self, cell_id: str, config: dict[str, Any]) -> None:
        atomic_write_json(self.cell_dir(cell_id) / "config.json", config)

    def mark(self, cell_id: str, state: str, **info: Any) -> dict[str, Any]:
        """Write ``status.json``; keeps ``attempt`` and ``history`` across calls."""
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}")
        if (self.cell_dir(cell_id) / "result.json").is_file() and state != "done":
            raise RuntimeError(f"cell {cell_id} is finished; refusing to mark it {state}")
        rec = self.status_record(cell_id) or {"attempt": 0, "history": []}
        now = time.time()
        if state == "running" and info.pop("new_attempt", False):
            rec["attempt"] = int(rec.get("attempt", 0)) + 1
        rec.update(state=state, updated_at=now, heartbeat=now, **info)
        if state == "running":
            rec["host"] = info.get("host", socket.gethostname())
            rec.pop("reason", None)
        rec["history"] = [*rec.get("history", [])[-50:], {"state": state, "at": now,
                                                           **({"reason": info["reason"]} if "reason" in info else {})}]
        atomic_write_json(self.cell_dir(cell_id) / "status.json", rec)
        return rec

    def finish(self, cell_id: str, result: dict[str, Any]) -> None:
        """Write ``result.json`` (the moment a cell counts as done), then the final status."""
        path = self.cell_dir(cell_id) / "result.json"
        if path.is_file():
            raise RuntimeError(f"cell {cell_id} already has a result; not overwriting it")
        atomic_write_json(path, result)
        self.mark(cell_id, "done")
