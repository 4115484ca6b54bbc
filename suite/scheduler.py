"""Asking SLURM: the command-line client (squeue, sacct, scancel, scontrol) and job states.

The executor (:mod:`suite.slurm`) submits and reconciles through :class:`Slurm` (tests pass a
fake :class:`Scheduler`); claims (:mod:`suite.claims`) ask :func:`slurm_job_active` whether the
job owning a claim from another host still runs. Nothing here knows about cells or the store.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from suite.errors import SuiteError

COMMANDS = ("sbatch", "squeue", "scancel", "scontrol", "srun")
# Job states in which a job may still run (or is running); anything else is final.
ACTIVE_STATES = frozenset({
    "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
    "REQUEUE_FED", "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "STOPPED",
    "RESV_DEL_HOLD", "SPECIAL_EXIT", "POWER_UP_NODE",
})


class SchedulerError(SuiteError):
    """A SLURM command failed (controller down, rejected submission, ...)."""


class Scheduler(Protocol):
    """What the executor asks SLURM; :class:`Slurm` runs the commands, tests pass a fake."""

    def queue(self, job_ids: Sequence[str]) -> dict[str, str]:
        """{job id: state} of the jobs the controller still knows (array tasks one by one)."""

    def accounting(self, job_ids: Sequence[str]) -> dict[str, str]:
        """{job id: final state} from the accounting database; {} when there is none."""

    def cancel(self, job_ids: Sequence[str]) -> None: ...

    def release(self, job_id: str) -> None: ...

    def max_array_size(self) -> int | None: ...


def slurm_missing() -> str | None:
    """The first SLURM command not on PATH, if any."""
    return next((c for c in COMMANDS if shutil.which(c) is None), None)


def require_slurm() -> None:
    missing = slurm_missing()
    if missing:
        raise SuiteError(f"SLURM is not available on this machine ({missing} not on PATH); "
                         "run with --executor local, or from a SLURM login node")


def _base_ids(job_ids: Iterable[str]) -> list[str]:
    return sorted({j.split("_")[0] for j in job_ids}, key=lambda j: (len(j), j))


def _expand_ids(jid: str) -> list[str]:
    """``12_[0-2,5%2]`` (array tasks not started yet, listed together) -> 12_0, 12_1, 12_2, 12_5."""
    if "_[" not in jid:
        return [jid]
    base, _, spec = jid.partition("_[")
    out = []
    for part in spec.rstrip("]").split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (hi.isdigit() or not hi):
            out += [f"{base}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def _parse_states(text: str) -> dict[str, str]:
    """``JOBID|STATE`` lines -> {job id: state}; an array that never started is listed by its
    array id alone (``12|CANCELLED by 0``), its tasks not at all: see :func:`state_of`."""
    out = {}
    for line in text.splitlines():
        if "|" in line:
            jid, state = line.strip().split("|", 1)
            if state.strip():
                for one in _expand_ids(jid):
                    out[one] = state.split()[0].rstrip("+")  # "CANCELLED by 0" -> "CANCELLED"
    return out


def state_of(states: Mapping[str, str], job_id: str) -> str | None:
    """A job's state, or its array's when the scheduler only lists the array (never started)."""
    return states.get(job_id) or (states.get(job_id.split("_")[0]) if "_" in job_id else None)


class Slurm:
    """The real scheduler, through squeue, sacct, scancel and scontrol."""

    def __init__(self, timeout_s: float = 30) -> None:
        self.timeout_s = timeout_s

    def _run(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SchedulerError(f"{cmd[0]} failed: {exc}") from exc

    def queue(self, job_ids: Sequence[str]) -> dict[str, str]:
        if not job_ids:
            return {}
        proc = self._run("squeue", "-h", "-r", "-t", "all", "-o", "%i|%T",
                         "-j", ",".join(_base_ids(job_ids)))
        if proc.returncode:
            if "Invalid job id" in proc.stderr:  # the only id asked for is unknown
                return {}
            raise SchedulerError(f"squeue failed: {proc.stderr.strip() or proc.returncode}")
        return _parse_states(proc.stdout)

    def accounting(self, job_ids: Sequence[str]) -> dict[str, str]:
        if not job_ids or shutil.which("sacct") is None:
            return {}
        proc = self._run("sacct", "-n", "-P", "-X", "-o", "JobID,State",
                         "-j", ",".join(_base_ids(job_ids)))
        return _parse_states(proc.stdout) if proc.returncode == 0 else {}

    def cancel(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            proc = self._run("scancel", *job_ids)
            if proc.returncode:
                raise SchedulerError(f"scancel failed: {proc.stderr.strip()}")

    def release(self, job_id: str) -> None:
        proc = self._run("scontrol", "release", job_id)
        if proc.returncode:
            raise SchedulerError(f"scontrol release {job_id} failed: {proc.stderr.strip()}")

    def max_array_size(self) -> int | None:
        proc = self._run("scontrol", "show", "config")
        for line in proc.stdout.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "MaxArraySize" and value.strip().isdigit():
                return int(value.strip())
        return None


def slurm_job_active(job_id: str) -> bool | None:
    """Whether SLURM still runs (or will run) ``job_id``; None when the scheduler cannot say."""
    if slurm_missing():
        return None
    try:
        states = Slurm(timeout_s=10).queue([job_id])
    except SchedulerError:
        return None
    return state_of(states, job_id) in ACTIVE_STATES
