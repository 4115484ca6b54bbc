"""The ``slurm`` executor: submitit job arrays, non-blocking, reconciled with the scheduler.

``suite run TABLE --executor slurm`` submits the table's missing and failed cells and returns:

- one job array per stage (teachers, then the cells depending on them), resource set (the
  cluster profile after its per-table and per-method overrides) and dependency set; arrays
  longer than the cluster's ``MaxArraySize`` (or the profile's ``max_array_size``) are split;
  ``array_parallelism`` throttles each array (``--array=0-N%P``);
- students wait for their teacher's array task (``--dependency=afterok:<array>_<task>``);
  a failed teacher cancels them (``--kill-on-invalid-dep=yes``);
- arrays are submitted held, every cell is marked ``running`` in the store with
  ``scheduler={"job_id", "state": "PENDING"}``, then the array is released: a second ``run``
  never resubmits a queued cell, and a fast job never races the mark;
- a cell is :class:`CellTask`, a submitit ``Checkpointable``: on preemption or before its time
  limit (USR2) it is requeued and resumes from its last mmengine checkpoint;
- a cell marked running whose job the scheduler no longer has pending or running, and that has
  no result, is failed with the scheduler's final state (:func:`reconcile`), at ``run`` and at
  ``status``; a cell another process has claimed meanwhile (:mod:`suite.claims`) is left to it;
- a task claims its cell when it starts; a cell claimed by another live process (a local ``run``
  of the same table) is waited for, not trained twice; the task then succeeds with that result.
  Its claim records the job id: once the scheduler no longer runs the job, others may take the
  claim over.

Cluster profiles are ``slurm/profiles/NAME.yaml`` (schema: ``slurm/README.md``), or any folder
listed in ``SUITE_CLUSTER_PROFILES``, or a path to a YAML file. Secrets (``WANDB_API_KEY``)
travel in the job's environment (sbatch ``--export=ALL``), never in a file.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import submitit
import yaml

from suite.claims import JOB_ENV
from suite.errors import CellFailed, SpecError, SuiteError
from suite.profiles import find_yaml, yaml_names
from suite.scheduler import (
    ACTIVE_STATES,
    Scheduler,
    SchedulerError,
    Slurm,
    require_slurm,
    slurm_missing,
    state_of,
)
from suite.store import Store
from suite.tables import Cell

PROFILE_DIR = Path(__file__).resolve().parent.parent / "slurm" / "profiles"
PROFILE_ENV = "SUITE_CLUSTER_PROFILES"
# Environment the workers need from the submitting process (logged by each job, not secret).
CARRIED_ENV = ("SUITE_PROFILES", "SUITE_TABLES", "SUITE_CACHE", "WANDB_MODE")


# ----------------------------------------------------------------------------- cluster profiles


@dataclass(frozen=True)
class Resources:
    """What one array asks the scheduler for (one cluster profile after its overrides)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem_gb: float | None = None
    timeout_min: int = 60
    constraint: str | None = None
    array_parallelism: int = 16
    max_array_size: int = 1000
    signal_delay_s: int = 120
    tasks_per_node: int | None = None  # DDP ranks per node; None: one per GPU (1 without GPUs)
    nodes: int = 1

    @property
    def ranks_per_node(self) -> int:
        """DDP ranks (SLURM tasks) per node: ``tasks_per_node``, else one per GPU."""
        if self.tasks_per_node is not None:
            return self.tasks_per_node
        return max(1, self.gpus_per_node)

    @property
    def world_size(self) -> int:
        """Ranks training one cell, over all its nodes."""
        return self.nodes * self.ranks_per_node

    @property
    def launcher(self) -> str:
        """mmengine's launcher for the cell: DDP through SLURM with more than one rank."""
        return "slurm" if self.world_size > 1 else "none"

    def sbatch_parameters(self) -> dict[str, Any]:
        """``submitit.SlurmExecutor.update_parameters`` keywords (sbatch's own names)."""
        params: dict[str, Any] = {
            "time": self.timeout_min,
            "cpus_per_task": self.cpus_per_task,
            "array_parallelism": self.array_parallelism,
            "signal_delay_s": self.signal_delay_s,
        }
        if self.mem_gb is not None:
            gb = float(self.mem_gb)
            params["mem"] = f"{int(gb)}GB" if gb == int(gb) else f"{int(gb * 1024)}MB"
        if self.gpus_per_node:
            params["gpus_per_node"] = self.gpus_per_node
        if self.launcher == "slurm":
            params["ntasks_per_node"] = self.ranks_per_node  # one DDP rank per task
            if self.nodes > 1:
                params["nodes"] = self.nodes
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(self, key):
                params[key] = getattr(self, key)
        return params


FIELDS = tuple(Resources.__dataclass_fields__)
_INT_FIELDS = {"gpus_per_node": 0, "cpus_per_task": 1, "timeout_min": 1, "array_parallelism": 1,
               "max_array_size": 1, "signal_delay_s": 0, "nodes": 1, "tasks_per_node": 1}
_NULLABLE = {"tasks_per_node"}


@dataclass(frozen=True)
class ClusterProfile:
    """A cluster profile: top-level resources plus per-table and per-method overrides."""

    name: str
    base: Resources
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def resources(self, table: str | None = None, method: str | None = None) -> Resources:
        """The profile for one cell: the table's entry over the top level, then the method's.

        A composed method (``tat+bcd``) applies each part's entry in order, then its own.
        """
        names = [table] if table else []
        if method:
            parts = method.split("+")
            names += parts + ([method] if len(parts) > 1 else [])
        res = self.base
        for name in names:
            if name in self.overrides:
                res = replace(res, **self.overrides[name])
        return res


def cluster_profile_names() -> list[str]:
    return yaml_names(PROFILE_DIR, PROFILE_ENV)


def _check_fields(values: Any, where: str) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise SpecError(f"{where}: expected a mapping of {', '.join(FIELDS)}")
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {unknown}; valid: {', '.join(FIELDS)}")
    for key, low in _INT_FIELDS.items():
        if key in _NULLABLE and values.get(key, 0) is None:
            continue
        if key in values and (not isinstance(values[key], int) or values[key] < low):
            raise SpecError(f"{where}: {key} must be an integer >= {low}, got {values[key]!r}")
    return dict(values)


def load_cluster_profile(name: str) -> ClusterProfile:
    """``slurm/profiles/NAME.yaml`` (or a folder of ``SUITE_CLUSTER_PROFILES``, or a path)."""
    path: Path | None = Path(name) if name.endswith((".yaml", ".yml")) else None
    if path is None:
        path = find_yaml(PROFILE_DIR, PROFILE_ENV, name)
    if path is None or not path.is_file():
        raise SuiteError(f"unknown cluster profile {name!r}; valid: "
                         f"{', '.join(cluster_profile_names())} (slurm/profiles/NAME.yaml, or a path)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SpecError(f"malformed cluster profile {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"malformed cluster profile {path}: expected a mapping")
    overrides = data.pop("overrides", None) or {}
    if not isinstance(overrides, dict):
        raise SpecError(f"{path}: overrides must map table or method names to fields")
    base = Resources(**_check_fields(data, str(path)))
    checked = {str(k): _check_fields(v, f"{path}: overrides.{k}") for k, v in overrides.items()}
    return ClusterProfile(path.stem, base, checked)


# ----------------------------------------------------------------------------- reconciliation


def _job_of(store: Store, cell_id: str) -> str | None:
    """The SLURM job of a cell the store marks running, if it runs under SLURM."""
    if store.state(cell_id) != "running":
        return None
    sched = (store.status_record(cell_id) or {}).get("scheduler") or {}
    return str(sched["job_id"]) if sched.get("job_id") else None


def failure_reason(store: Store, cell_id: str, job_id: str, state: str | None) -> str:
    """Why a cell's job ended without a result: the scheduler's final state, with context."""
    what = f"{state} (slurm job {job_id})" if state else (
        f"LOST (slurm job {job_id} is no longer known to the scheduler)")
    sched = (store.status_record(cell_id) or {}).get("scheduler") or {}
    failed_deps = [d for d in sched.get("depends_on") or [] if store.state(d) == "failed"]
    return f"dependency {failed_deps[0]} failed; {what}" if failed_deps else what


def reconcile(store: Store, cell_ids: Iterable[str], scheduler: Scheduler) -> dict[str, str]:
    """Fail the cells marked running whose job has ended without a result.

    Returns {cell id: scheduler state} of every cell with a job (e.g. ``PENDING``, ``RUNNING``,
    ``FAILED``). A cell whose job is still queued or running keeps its mark; one whose job the
    scheduler reports finished (or no longer knows) is marked failed with the final state.
    Raises :class:`SchedulerError` when the scheduler cannot be asked (nothing is marked then).
    """
    jobs = {cid: job for cid in cell_ids if (job := _job_of(store, cid))}
    if not jobs:
        return {}
    queue = scheduler.queue(list(jobs.values()))
    ended = [j for j in jobs.values() if state_of(queue, j) not in ACTIVE_STATES]
    final = scheduler.accounting(ended) if ended else {}
    states = {}
    for cid, job in jobs.items():
        state = state_of(queue, job) or state_of(final, job)
        if state in ACTIVE_STATES:
            states[cid] = state
            continue
        if store.state(cid) != "running":  # finished (or failed) while we looked
            states[cid] = state or "ENDED"
            continue
        with contextlib.suppress(RuntimeError):  # a result landed meanwhile: it is done
            store.mark_unclaimed(cid, "failed", reason=failure_reason(store, cid, job, state))
        states[cid] = state or "LOST"
    return states


@dataclass
class SchedulerView:
    """Scheduler states of a table's cells for ``suite status`` ({} and a note without SLURM)."""

    states: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)
    note: str = ""


def scheduler_view(cells: Sequence[Cell], store: Store,
                   scheduler: Scheduler | None = None) -> SchedulerView:
    """Reconcile the cells with the scheduler and return their jobs and states."""
    jobs = {c.id: job for c in cells if (job := _job_of(store, c.id))}
    if not jobs:
        return SchedulerView()
    if scheduler is None:
        if slurm_missing():
            return SchedulerView(jobs=jobs, note="SLURM not available here: scheduler states "
                                                  "not checked")
        scheduler = Slurm()
    try:
        states = reconcile(store, list(jobs), scheduler)
    except SchedulerError as exc:
        return SchedulerView(jobs=jobs, note=f"scheduler not reachable: {exc}")
    return SchedulerView(states=states, jobs=jobs)


# ----------------------------------------------------------------------------- planning


@dataclass
class ArrayPlan:
    """One job array to submit: cells sharing a stage, resources and dependencies."""

    stage: int
    resources: Resources
    cells: list[Cell]
    after: tuple[str, ...] = ()  # cell ids whose jobs must finish first (afterok)

    @property
    def name(self) -> str:
        """``teacher``, ``student``, ``distill`` (the roles of its cells) and the stage."""
        return "-".join(sorted({c.role for c in self.cells})) + f"-s{self.stage}"


def chunked(items: Sequence[Any], size: int) -> list[list[Any]]:
    """``items`` in consecutive pieces of at most ``size`` (arrays split at MaxArraySize)."""
    if size < 1:
        raise ValueError("size must be >= 1")
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def stages(todo: Sequence[Cell]) -> dict[str, int]:
    """Dependency depth of each cell to submit (0: depends on nothing being submitted now)."""
    ids = {c.id for c in todo}
    by_id = {c.id: c for c in todo}
    depth: dict[str, int] = {}

    def visit(cid: str, seen: frozenset[str]) -> int:
        if cid not in depth:
            if cid in seen:
                raise SpecError(f"dependency cycle through cell {cid}")
            deps = [d for d in by_id[cid].depends_on if d in ids]
            depth[cid] = 1 + max((visit(d, seen | {cid}) for d in deps), default=-1)
        return depth[cid]

    for c in todo:
        visit(c.id, frozenset())
    return depth


def plan_arrays(todo: Sequence[Cell], profile: ClusterProfile, table: str | None,
                max_array: int | None = None) -> list[ArrayPlan]:
    """Group cells into arrays by (stage, resources, dependencies), split at the array limit.

    Dependencies name cells (finished ones are left out by the caller); arrays come out in
    submission order: a stage after the stages it depends on.
    """
    depth = stages(todo)
    groups: dict[tuple[int, Resources, tuple[str, ...]], list[Cell]] = {}
    for c in todo:
        res = profile.resources(table or c.table, c.config.get("method_name"))
        groups.setdefault((depth[c.id], res, tuple(sorted(c.depends_on))), []).append(c)
    plans = []
    for (stage, res, after), cells in sorted(groups.items(), key=lambda kv: kv[0][0]):
        limit = min(res.max_array_size, max_array or res.max_array_size)
        plans += [ArrayPlan(stage, res, part, after) for part in chunked(cells, limit)]
    return plans


# ----------------------------------------------------------------------------- the job


class CellTask(submitit.helpers.Checkpointable):
    """One cell as a SLURM job: :func:`suite.train.run_cell`, requeued on preemption/timeout.

    ``checkpoint`` (submitit calls it on USR2) keeps the cell marked running as ``REQUEUED`` and
    resubmits the same call; the requeued attempt resumes from the last mmengine checkpoint.
    """

    def __init__(self, launcher: str = "none") -> None:
        self.launcher = launcher
        self.requeued = False

    def __call__(self, cell: dict[str, Any], results: str, wandb_mode: str) -> dict[str, Any]:
        from suite.train import run_cell

        self.requeued = False
        os.environ["SUITE_LAUNCHER"] = self.launcher
        if self.launcher == "slurm" and os.environ.get("SLURM_JOB_ID"):
            # mmengine's SLURM launcher defaults to port 29500: one port per job, shared by its
            # ranks, so two DDP cells on one node do not collide
            os.environ.setdefault("MASTER_PORT", str(20000 + int(os.environ["SLURM_JOB_ID"]) % 20000))
        if os.environ.get("SLURM_CPUS_PER_TASK"):
            os.environ.setdefault("SUITE_THREADS", os.environ["SLURM_CPUS_PER_TASK"])
        print("suite worker environment: " + ", ".join(
            f"{k}={os.environ.get(k, '')}" for k in (*CARRIED_ENV, "SUITE_LAUNCHER")), flush=True)
        before = os.environ.get(JOB_ENV)
        os.environ[JOB_ENV] = _task_job_id() or ""  # the claim records the job
        try:
            return run_cell(cell, results, wandb_mode, wait=True)
        except CellFailed:
            if self.requeued:  # submitit's exit after requeueing went through run_cell
                self._mark_requeued(cell, results)
                raise SystemExit(-1) from None
            raise
        finally:
            if before is None:
                os.environ.pop(JOB_ENV, None)
            else:
                os.environ[JOB_ENV] = before

    def checkpoint(self, cell: dict[str, Any], results: str,
                   wandb_mode: str) -> submitit.helpers.DelayedSubmission:
        self.requeued = True
        self._mark_requeued(cell, results)
        return super().checkpoint(cell, results, wandb_mode)

    @staticmethod
    def _mark_requeued(cell: dict[str, Any], results: str) -> None:
        from suite.train import _scheduler_info, rank_zero

        store = Store(results)
        if rank_zero() and store.state(cell["id"]) != "done":
            info = {**(_scheduler_info() or {}), "state": "REQUEUED"}
            with contextlib.suppress(RuntimeError):
                store.mark(cell["id"], "running", scheduler=info)


def _task_job_id() -> str | None:
    """This array task's job id as the store records it (``ARRAY_TASK``), else the job id."""
    job = os.environ.get("SLURM_JOB_ID")
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else job


# ----------------------------------------------------------------------------- submission


def _executor(folder: Path, res: Resources, name: str, after: Sequence[str]) -> Any:
    executor = submitit.SlurmExecutor(folder=folder)
    extra: dict[str, Any] = {"hold": True, "export": "ALL"}
    if after:
        extra.update({"dependency": "afterok:" + ":".join(after), "kill-on-invalid-dep": "yes"})
    executor.update_parameters(job_name=name, additional_parameters=extra, **res.sbatch_parameters())
    return executor


def _dependency_jobs(plan: ArrayPlan, store: Store, submitted: dict[str, str]) -> list[str]:
    """Job ids the array waits for: its cells' unfinished dependencies."""
    jobs = []
    for dep in plan.after:
        if dep in submitted:
            jobs.append(submitted[dep])
        elif store.state(dep) != "done":
            job = _job_of(store, dep)
            if job is None:
                raise SuiteError(f"dependency {dep} is {store.state(dep)} and has no SLURM job; "
                                 "run its table again once it has finished")
            jobs.append(job)
    return sorted(set(jobs))


def _submit_array(plan: ArrayPlan, store: Store, folder: Path, table: str, wandb: str,
                  after_jobs: list[str], scheduler: Scheduler) -> list[str]:
    """Submit one array held, mark its cells running, release it; the task job ids."""
    executor = _executor(folder, plan.resources, f"suite-{table}-{plan.name}", after_jobs)
    task = CellTask(plan.resources.launcher)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):  # submitit echoes sbatch's stderr: ours below
            jobs = executor.map_array(task, [c.to_dict() for c in plan.cells],
                                      [str(store.root)] * len(plan.cells), [wandb] * len(plan.cells))
    except submitit.core.utils.FailedJobError as exc:
        message = " ".join(str(exc).split()) or captured.getvalue().strip()
        raise SchedulerError(f"sbatch rejected the {table} {plan.name} array "
                             f"({len(plan.cells)} cells): {message}") from exc
    ids = [job.job_id for job in jobs]
    array = ids[0].split("_")[0]
    try:
        for cell, job_id in zip(plan.cells, ids):
            store.write_config(cell.id, cell.config)
            store.mark(cell.id, "running", pid=None, progress=None, table=cell.table, row=cell.row,
                       scheduler={"job_id": job_id, "state": "PENDING", "array": array,
                                  "folder": str(folder), "depends_on": list(plan.after)})
    except BaseException:
        scheduler.cancel([array])
        raise
    scheduler.release(array)
    return ids


def submit(cells: Sequence[Cell], store: Store, wandb: str = "offline",
           cluster_profile: str = "local", table: str | None = None,
           scheduler: Scheduler | None = None, **_: Any) -> Any:
    """Submit every cell not finished and not already queued; returns at once (an Outcome).

    ``Outcome.submitted`` maps cell ids to job ids, ``Outcome.arrays`` lists the arrays.
    """
    from suite.outcome import Outcome

    profile = load_cluster_profile(cluster_profile)
    if scheduler is None:
        require_slurm()
        scheduler = Slurm()
    reconcile(store, [c.id for c in cells], scheduler)
    todo = [c for c in cells if store.state(c.id) in ("missing", "failed")]
    outcome = Outcome(skipped=[c.id for c in cells if c not in todo])
    if not todo:
        return outcome
    name = table or cells[0].table
    folder = store.root / "slurm" / name
    plans = plan_arrays(todo, profile, name, scheduler.max_array_size())
    for plan in plans:
        try:
            after = _dependency_jobs(plan, store, outcome.submitted)
            ids = _submit_array(plan, store, folder, name, wandb, after, scheduler)
        except SuiteError as exc:
            if outcome.arrays:
                done = ", ".join(a["array"] for a in outcome.arrays)
                raise SuiteError(f"{exc} (arrays already submitted: {done}; "
                                 f"`suite cancel {name}` cancels them)") from exc
            raise
        outcome.submitted.update({c.id: j for c, j in zip(plan.cells, ids)})
        outcome.arrays.append({"array": ids[0].split("_")[0], "name": plan.name,
                               "cells": len(ids), "after": after,
                               "resources": asdict(plan.resources)})
    return outcome


# ----------------------------------------------------------------------------- cancel


def cancel(cells: Sequence[Cell], store: Store, scheduler: Scheduler | None = None) -> int:
    """scancel the queued and running jobs of ``cells``; mark those cells failed "cancelled".

    Cells whose job has already ended are reconciled first (failed with the scheduler's state).
    """
    if scheduler is None:
        require_slurm()
        scheduler = Slurm()
    active = reconcile(store, [c.id for c in cells], scheduler)
    jobs = {cid: job for cid in active if (job := _job_of(store, cid))}
    if not jobs:
        print("nothing to cancel: no cell of this table is queued or running under SLURM")
        return 0
    ids = sorted(set(jobs.values()))
    try:
        scheduler.cancel(ids)
    except SchedulerError as exc:  # e.g. a job that completed meanwhile; the others are cancelled
        print(f"warning: {exc}")
    marked = 0
    for cid in jobs:
        with contextlib.suppress(RuntimeError):  # finished meanwhile: keep the result
            store.mark(cid, "failed", reason="cancelled")
            marked += 1
    print(f"cancelled {marked} cells (jobs {', '.join(ids)})")
    return 0
