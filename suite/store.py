"""The results store: one folder per cell, the only source of truth for results.

``results/<cell-id>/`` holds ``config.json`` (the resolved config), ``status.json`` (state,
attempt, pid/host or scheduler job, reason), ``claim.json`` while a process owns the cell
(:mod:`suite.claims`; ``claims/`` keeps past owners and takeovers), ``train.log``, ``model.pth``
(the exported network), ``result.json`` (metrics and provenance, with the size and sha256 of
``model.pth``) and ``work/`` (mmengine's work dir with the resumable checkpoints). Every file is
written atomically (temp file + rename), so a killed run never leaves a half-written file, and a
finished cell is never overwritten.

Reads are verified: a ``result.json`` that does not parse, lacks ``miou``, names another cell or
records a ``model.pth`` that is missing or differs (size, or sha256 whenever the file's
modification time is not the one recorded) is ``damaged``. The claim holder moves damaged files
into ``damaged/<time>/`` before running the cell again; nothing is deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

STATES = ("done", "missing", "failed", "running", "damaged")
MARKABLE = ("done", "missing", "failed", "running")
# The headline metric each task's finished result must hold as a number, and its label
HEADLINES = {"segmentation": ("miou", "mIoU"), "detection": ("ap_box", "AP box")}


def headline(res: dict[str, Any]) -> tuple[str, str]:
    """(key, label) of a result's headline metric, by the task in its config (segmentation
    when absent)."""
    task = (res.get("config") or {}).get("task", "segmentation")
    return HEADLINES.get(task, HEADLINES["segmentation"])


def headline_text(res: dict[str, Any]) -> str:
    """``mIoU 41.20`` / ``AP box 2.20`` of a result (``nan`` when it lacks the metric)."""
    key, label = headline(res)
    return f"{label} {float(res.get(key, float('nan'))):.2f}"
MODEL = "model.pth"
RESULT = "result.json"
# A "running" cell whose heartbeat is older than this and whose process is gone is stale.
STALE_AFTER_S = 600.0


def cache_dir() -> Path:
    """Where the suite caches generated data and resolved method records (``SUITE_CACHE``)."""
    return Path(os.environ.get("SUITE_CACHE", Path.home() / ".cache" / "suite"))


def _synced_temp(path: Path, text: str) -> str:
    """``text`` in a new, fsynced temporary file beside ``path``; its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write_text(path: Path, text: str) -> None:
    tmp = _synced_temp(path, text)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def create_exclusive_text(path: Path, text: str) -> bool:
    """Write ``path`` atomically iff it does not exist yet (temp file, fsync, hard link);
    False when it exists. Where hard links are not supported: a checked rename."""
    tmp = _synced_temp(path, text)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    """What ``result.json`` keeps of ``model.pth``: size, sha256 and modification time."""
    stat = path.stat()
    return {"file": path.name, "size": stat.st_size, "sha256": sha256_file(path),
            "mtime_ns": stat.st_mtime_ns}


# (path, size, mtime_ns, inode) -> sha256 of files hashed by this process
_HASHED: dict[tuple[str, int, int, int], str] = {}


def _model_problem(path: Path, record: Any) -> str | None:
    """Why ``model.pth`` does not match the record ``result.json`` keeps of it, if it does not."""
    if not isinstance(record, dict) or not {"size", "sha256"} <= set(record):
        return "result.json has an unreadable model record"
    try:
        stat = path.stat()
    except FileNotFoundError:
        return f"{path.name} missing"
    if stat.st_size != record["size"]:
        return f"{path.name} has {stat.st_size} bytes, result.json recorded {record['size']}"
    if stat.st_mtime_ns == record.get("mtime_ns"):
        return None  # unchanged since it was committed
    key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _HASHED:
        _HASHED[key] = sha256_file(path)
    if _HASHED[key] != record["sha256"]:
        return f"{path.name} does not match its sha256 in result.json"
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
        self._exported: dict[str, dict[str, Any]] = {}

    def cell_dir(self, cell_id: str) -> Path:
        return self.root / cell_id

    # ------------------------------------------------------------------------- verified reads

    def check_result(self, cell_id: str) -> tuple[dict[str, Any] | None, str]:
        """(the result, "") when ``result.json`` is intact, else (None, why it is damaged).

        ``(None, "")`` when there is no result at all.
        """
        d = self.cell_dir(cell_id)
        path = d / RESULT
        try:
            res = json.loads(path.read_text())
        except FileNotFoundError:
            return None, ""
        except (OSError, ValueError) as exc:
            return None, f"result.json unreadable ({type(exc).__name__}: {str(exc)[:80]})"
        if not isinstance(res, dict):
            return None, "result.json is not a mapping"
        key = headline(res)[0]
        if key not in res:
            return None, f"result.json lacks {key}"
        if not isinstance(res[key], (int, float)) or isinstance(res[key], bool):
            return None, f"result.json has a non-numeric {key} {res[key]!r}"
        if res.get("cell_id", cell_id) != cell_id:
            return None, f"result.json belongs to cell {res['cell_id']}"
        if "model_file" in res:
            problem = _model_problem(d / MODEL, res["model_file"])
            if problem:
                return None, problem
        return res, ""

    def damage(self, cell_id: str) -> str:
        """Why the cell's finished result is damaged ("" when intact or never finished)."""
        why = self.check_result(cell_id)[1]
        if why or (self.cell_dir(cell_id) / RESULT).exists():
            return why
        done_once = (self.status_record(cell_id) or {}).get("state") == "done"
        return "result.json missing" if done_once else ""

    def result(self, cell_id: str) -> dict[str, Any] | None:
        """The verified result, or None (no result, or a damaged one)."""
        return self.check_result(cell_id)[0]

    def status_record(self, cell_id: str) -> dict[str, Any] | None:
        return read_json(self.cell_dir(cell_id) / "status.json")

    def claim_owner(self, cell_id: str) -> Any:
        """The live owner of the cell's claim (:class:`suite.claims.Owner`), if any."""
        from suite.claims import live_owner

        return live_owner(self.cell_dir(cell_id))

    def state(self, cell_id: str) -> str:
        """done / damaged / running / failed / missing.

        ``running``: a live claim, or a status saying so whose process is alive (or that waits
        in the SLURM queue); a dead local process counts as failed.
        """
        d = self.cell_dir(cell_id)
        if (d / RESULT).exists():
            return "done" if self.result(cell_id) is not None else "damaged"
        if (d / "claim.json").exists() and self.claim_owner(cell_id) is not None:
            return "running"
        rec = read_json(d / "status.json")
        if not rec:
            return "missing"
        state = rec.get("state", "missing")
        if state == "running" and self._is_stale(rec):
            return "failed"
        if state == "done":  # finished once, but its result.json is gone
            return "damaged"
        return state if state in MARKABLE else "missing"

    def _is_stale(self, rec: dict[str, Any]) -> bool:
        if rec.get("scheduler"):  # a queued/running SLURM job: the scheduler decides
            return False
        if rec.get("host") == socket.gethostname() and rec.get("pid"):
            return not _pid_alive(int(rec["pid"]))
        return time.time() - float(rec.get("heartbeat", 0)) > STALE_AFTER_S

    def reason(self, cell_id: str) -> str:
        rec = self.status_record(cell_id) or {}
        state = self.state(cell_id)
        if state == "damaged":
            return f"damaged: {self.damage(cell_id)}; `run` runs it again"
        if rec.get("state") == "running" and state == "failed":
            return "interrupted (process gone); will resume from its last checkpoint"
        return str(rec.get("reason", ""))

    # ------------------------------------------------------------------------- writes (claim holder)

    def write_config(self, cell_id: str, config: dict[str, Any]) -> None:
        atomic_write_json(self.cell_dir(cell_id) / "config.json", config)

    def mark(self, cell_id: str, state: str, **info: Any) -> dict[str, Any]:
        """Write ``status.json``; keeps ``attempt`` and ``history`` across calls."""
        if state not in MARKABLE:
            raise ValueError(f"state must be one of {MARKABLE}")
        if state != "done" and self.result(cell_id) is not None:
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

    def mark_unclaimed(self, cell_id: str, state: str, config: dict[str, Any] | None = None,
                       **info: Any) -> bool:
        """:meth:`mark` (and :meth:`write_config`) under the cell's claim, taken for the moment;
        False, nothing written, when another live process holds it or the cell has finished."""
        from suite.claims import Claim, try_acquire

        claim = try_acquire(self.cell_dir(cell_id))
        if not isinstance(claim, Claim):
            return False
        with claim:
            if self.result(cell_id) is not None:
                return False
            if config is not None:
                self.write_config(cell_id, config)
            self.mark(cell_id, state, **info)
        return True

    def set_aside(self, cell_id: str, why: str) -> Path | None:
        """Move a damaged ``result.json`` and ``model.pth`` into ``damaged/<time>/`` (kept)."""
        d = self.cell_dir(cell_id)
        present = [name for name in (RESULT, MODEL) if (d / name).exists()]
        if not present:
            return None
        dest = d / "damaged" / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        dest.mkdir(parents=True, exist_ok=True)
        atomic_write_text(dest / "why.txt", why + "\n")
        for name in (RESULT, MODEL):  # the result first: the cell stops counting as done
            if (d / name).exists():
                os.replace(d / name, dest / name)
        return dest

    def write_model(self, cell_id: str, payload: Any) -> dict[str, Any]:
        """``torch.save`` ``payload`` as the cell's ``model.pth`` (temp file, fsync, rename);
        its size and sha256 go into the result :meth:`finish` writes next."""
        import torch

        d = self.cell_dir(cell_id)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{MODEL}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(payload, fh)
                fh.flush()
                os.fsync(fh.fileno())
            record = file_record(Path(tmp))
            os.replace(tmp, d / MODEL)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        record["file"] = MODEL
        self._exported[cell_id] = record
        return record

    def finish(self, cell_id: str, result: dict[str, Any]) -> dict[str, Any]:
        """Write ``result.json`` (the moment a cell counts as done), then the final status.

        The result records ``model.pth`` (size, sha256) as exported by :meth:`write_model`, or
        as found on disk; a result without a model (a test's) records none.
        """
        path = self.cell_dir(cell_id) / RESULT
        if path.exists():
            raise RuntimeError(f"cell {cell_id} already has a result; not overwriting it")
        model = self._exported.pop(cell_id, None)
        if model is None and (self.cell_dir(cell_id) / MODEL).is_file():
            model = file_record(self.cell_dir(cell_id) / MODEL)
        if model is not None:
            result = {**result, "model_file": model}
        text = json.dumps(result, indent=2, sort_keys=True, default=str) + "\n"
        if not create_exclusive_text(path, text):
            raise RuntimeError(f"cell {cell_id} already has a result; not overwriting it")
        self.mark(cell_id, "done")
        return result
