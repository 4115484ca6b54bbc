"""The ``slurm`` executor: pure logic (default run) and end to end on the test cluster (``slurm``).

The unit tests need no SLURM: cluster profiles and their overrides, array planning and
splitting, reconciliation against a fake scheduler, the DDP rank decision and the error without
SLURM. The tests marked ``slurm`` run tiny cells on the single-node cluster of
``slurm/cluster.sh`` (``bash slurm/test-tier.sh``): a table end to end through the CLI, a failing
cell resubmitted alone, a teacher failure cancelling its student, ``suite cancel``, and an
interrupted cell resuming from its checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from suite.cli import main
from suite.errors import SuiteError
from suite.scheduler import _parse_states
from suite.slurm import (
    ClusterProfile,
    Resources,
    SchedulerError,
    cancel,
    chunked,
    cluster_profile_names,
    load_cluster_profile,
    plan_arrays,
    reconcile,
    scheduler_view,
    state_of,
    submit,
)
from suite.store import Store
from suite.tables import Cell, cell_id, expand
from suite.train import rank_zero

REPO = Path(__file__).resolve().parents[1]


# ============================================================================ unit tests


def _cell(cid: str, role: str = "student", method: str | None = None, deps: list[str] | None = None,
          table: str = "t") -> Cell:
    config = {"role": role, "dataset": "voc2012", "seed": 0, **({"method_name": method} if method else {})}
    return Cell(cid, config, table, cid, depends_on=deps or [])


def test_chunked_splits_at_the_array_limit():
    assert chunked(list(range(5)), 2) == [[0, 1], [2, 3], [4]]
    assert chunked(list(range(4)), 4) == [[0, 1, 2, 3]]
    assert chunked([], 3) == []
    with pytest.raises(ValueError):
        chunked([1], 0)


def test_shipped_cluster_profiles_load():
    names = cluster_profile_names()
    assert {"local", "gpu-a100", "gpu-preemptible"} <= set(names)
    for name in names:
        load_cluster_profile(name)
    local = load_cluster_profile("local").resources("table1", "bcd")
    assert local.partition == "debug" and local.array_parallelism == 2 and local.launcher == "none"


def test_method_override_applies_after_table_override(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({
        "partition": "gpu", "gpus_per_node": 1, "mem_gb": 32, "timeout_min": 60,
        "overrides": {"table5": {"mem_gb": 96, "timeout_min": 120},
                      "cirkd": {"timeout_min": 240, "constraint": "a100_80gb"},
                      "tat": {"qos": "long"}},
    }))
    prof = load_cluster_profile(str(path))
    both = prof.resources("table5", "cirkd")
    assert (both.mem_gb, both.timeout_min, both.constraint) == (96, 240, "a100_80gb")
    assert prof.resources("table5", None).timeout_min == 120
    assert prof.resources("table3", "cirkd").mem_gb == 32
    composed = prof.resources("table5", "tat+cirkd")
    assert (composed.qos, composed.timeout_min) == ("long", 240)
    assert prof.resources("table3", None) == prof.base


def test_cluster_profile_errors_name_the_valid_choices(tmp_path):
    with pytest.raises(SuiteError, match="unknown cluster profile 'nope'; valid: .*local"):
        load_cluster_profile("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"partition": "x", "gpus": 2}))
    with pytest.raises(SuiteError, match="unknown field.*gpus.*valid: partition"):
        load_cluster_profile(str(bad))
    bad.write_text(yaml.safe_dump({"overrides": {"table1": {"array_parallelism": 0}}}))
    with pytest.raises(SuiteError, match="overrides.table1: array_parallelism must be"):
        load_cluster_profile(str(bad))


def test_multi_gpu_cells_run_one_ddp_task_per_gpu():
    params = Resources(partition="gpu", gpus_per_node=4, mem_gb=1.5).sbatch_parameters()
    assert params["gpus_per_node"] == 4 and params["ntasks_per_node"] == 4
    assert params["mem"] == "1536MB" and params["partition"] == "gpu"
    assert Resources(gpus_per_node=4).launcher == "slurm"
    assert Resources(gpus_per_node=1).launcher == "none"
    assert "ntasks_per_node" not in Resources(gpus_per_node=1).sbatch_parameters()


def test_only_rank_zero_writes_the_store():
    assert rank_zero({})
    assert rank_zero({"SUITE_LAUNCHER": "none", "SLURM_PROCID": "3"})
    assert rank_zero({"SUITE_LAUNCHER": "slurm", "SLURM_PROCID": "0"})
    assert not rank_zero({"SUITE_LAUNCHER": "slurm", "SLURM_PROCID": "1"})
    assert not rank_zero({"SUITE_LAUNCHER": "pytorch", "RANK": "2"})
    assert rank_zero({"SUITE_LAUNCHER": "pytorch"})


def test_plan_arrays_by_stage_resources_and_dependencies():
    prof = ClusterProfile("p", Resources(max_array_size=3),
                          {"kd": {"mem_gb": 8}})
    t1, t2 = _cell("T1", "teacher"), _cell("T2", "teacher")
    students = [_cell(f"S{i}") for i in range(2)]
    kd = [_cell(f"K{i}", "distill", "kd", ["T1"]) for i in range(4)]
    bcd = [_cell("B1", "distill", "bcd", ["T1"]), _cell("B2", "distill", "bcd", ["T2"])]
    plans = plan_arrays([t1, t2, *students, *kd, *bcd], prof, "t")
    shape = [(p.stage, p.name, [c.id for c in p.cells], p.after, p.resources.mem_gb) for p in plans]
    assert shape == [
        (0, "student-teacher-s0", ["T1", "T2", "S0"], (), None),  # split at 3
        (0, "student-s0", ["S1"], (), None),
        (1, "distill-s1", ["K0", "K1", "K2"], ("T1",), 8),  # per-method resources
        (1, "distill-s1", ["K3"], ("T1",), 8),
        (1, "distill-s1", ["B1"], ("T1",), None),  # per-teacher dependencies
        (1, "distill-s1", ["B2"], ("T2",), None),
    ]
    # the cluster's MaxArraySize bounds the arrays too
    assert [len(p.cells) for p in plan_arrays(kd, prof, "t", max_array=2)] == [2, 2]


class FakeScheduler:
    """Answers like squeue/sacct from dictionaries; records cancels."""

    def __init__(self, queue: dict[str, str], acct: dict[str, str] | None = None,
                 down: bool = False) -> None:
        self.q, self.acct, self.down, self.cancelled = queue, acct or {}, down, []

    def queue(self, job_ids):
        if self.down:
            raise SchedulerError("squeue failed: Unable to contact slurm controller")
        return {j: s for j, s in self.q.items() if j in job_ids}

    def accounting(self, job_ids):
        return {j: s for j, s in self.acct.items() if j.split("_")[0] in {i.split("_")[0] for i in job_ids}}

    def cancel(self, job_ids):
        self.cancelled += list(job_ids)

    def release(self, job_id):
        pass

    def max_array_size(self):
        return 1001


def _queued(store: Store, cid: str, job: str, deps: list[str] | None = None) -> None:
    store.mark(cid, "running", scheduler={"job_id": job, "state": "PENDING",
                                          "depends_on": deps or []})


def test_reconcile_fails_cells_whose_job_ended_without_result(tmp_path):
    store = Store(tmp_path)
    for cid, job in [("pend", "1_0"), ("run", "1_1"), ("timeout", "1_2"), ("node", "1_3"),
                     ("gone", "1_4"), ("late", "2"), ("child", "3_0"), ("never", "5_1")]:
        _queued(store, cid, job, ["late"] if cid == "child" else None)
    store.mark("teach", "failed", reason="boom")
    _queued(store, "orphan", "4", ["teach"])
    store.finish("done", {"miou": 1.0})
    store.mark("local", "running", pid=os.getpid())  # a local run: not the scheduler's
    sched = FakeScheduler({"1_0": "PENDING", "1_1": "RUNNING", "1_3": "NODE_FAIL",
                           "3_0": "REQUEUED"},
                          {"1_2": "TIMEOUT", "1_3": "NODE_FAIL", "2": "CANCELLED", "4": "CANCELLED",
                           "5": "CANCELLED"})  # an array cancelled before it started: its id alone
    ids = ["pend", "run", "timeout", "node", "gone", "late", "child", "orphan", "done", "local",
           "never"]
    states = reconcile(store, ids, sched)
    assert states == {"pend": "PENDING", "run": "RUNNING", "timeout": "TIMEOUT", "node": "NODE_FAIL",
                      "gone": "LOST", "late": "CANCELLED", "child": "REQUEUED", "orphan": "CANCELLED",
                      "never": "CANCELLED"}
    assert [store.state(c) for c in ids] == ["running", "running", "failed", "failed", "failed",
                                             "failed", "running", "failed", "done", "running",
                                             "failed"]
    assert store.reason("timeout") == "TIMEOUT (slurm job 1_2)"
    assert store.reason("node") == "NODE_FAIL (slurm job 1_3)"
    assert "no longer known" in store.reason("gone")
    assert store.reason("orphan") == "dependency teach failed; CANCELLED (slurm job 4)"


def test_scheduler_output_parsing():
    text = "12_0|RUNNING\n12_[1-3,5%2]|PENDING\n13|CANCELLED by 0\n14_2|COMPLETED+\nbad line\n"
    states = _parse_states(text)
    assert states == {"12_0": "RUNNING", "12_1": "PENDING", "12_2": "PENDING", "12_3": "PENDING",
                      "12_5": "PENDING", "13": "CANCELLED", "14_2": "COMPLETED"}
    assert state_of(states, "13_4") == "CANCELLED" and state_of(states, "14_1") is None
    assert state_of(states, "15") is None


def test_reconcile_marks_nothing_when_the_scheduler_is_unreachable(tmp_path):
    store = Store(tmp_path)
    _queued(store, "a", "7_0")
    with pytest.raises(SchedulerError):
        reconcile(store, ["a"], FakeScheduler({}, down=True))
    assert store.state("a") == "running"
    cell = _cell("a")
    view = scheduler_view([cell], store, FakeScheduler({}, down=True))
    assert "not reachable" in view.note and store.state("a") == "running"
    assert scheduler_view([cell], store, FakeScheduler({"7_0": "RUNNING"})).states == {"a": "RUNNING"}


def test_cancel_scancels_and_marks_failed(tmp_path, capsys):
    store = Store(tmp_path)
    _queued(store, "a", "7_0")
    _queued(store, "b", "7_1")
    store.finish("c", {"miou": 1.0})
    sched = FakeScheduler({"7_0": "RUNNING", "7_1": "PENDING"})
    assert cancel([_cell("a"), _cell("b"), _cell("c")], store, sched) == 0
    assert sched.cancelled == ["7_0", "7_1"]
    assert [store.reason(c) for c in "ab"] == ["cancelled", "cancelled"]
    assert store.state("c") == "done"
    assert "cancelled 2 cells" in capsys.readouterr().out


def test_requeued_cell_stays_running_through_submitits_exit(tmp_path, monkeypatch):
    """USR2: submitit calls checkpoint(), requeues, then sys.exit() inside training; run_cell
    records that exit as a failure, CellTask puts the cell back to running/REQUEUED."""
    import suite.train
    from suite.errors import CellFailed
    from suite.slurm import CellTask

    store = Store(tmp_path)
    cell = _cell("c1").to_dict()
    task = CellTask()

    def preempted(cell_dict, results, wandb_mode, **_):
        task.checkpoint(cell_dict, results, wandb_mode)  # the signal handler
        Store(results).mark(cell_dict["id"], "failed", reason="SystemExit: -1")  # run_cell's except
        raise CellFailed("c1: SystemExit: -1")

    monkeypatch.setattr(suite.train, "run_cell", preempted)
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "40")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    with pytest.raises(SystemExit):
        task(cell, str(tmp_path), "disabled")
    rec = store.status_record("c1")
    assert store.state("c1") == "running"
    assert rec["scheduler"] == {"job_id": "40_1", "state": "REQUEUED"}

    def broken(cell_dict, results, wandb_mode, **_):  # an ordinary failure stays a failure
        raise CellFailed("c1: boom")

    monkeypatch.setattr(suite.train, "run_cell", broken)
    with pytest.raises(CellFailed):
        task(cell, str(tmp_path), "disabled")


def test_no_slurm_is_one_clear_line_and_exit_2(tiny_profile, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(SuiteError, match="--executor local"):
        submit([], Store(tmp_path))
    code = main(["run", "table1", "--profile", tiny_profile, "--only", "row=student",
                 "--executor", "slurm", "--results", str(tmp_path / "r"), "--wandb", "disabled"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "SLURM is not available" in err and "--executor local" in err
    # status still answers from the store alone
    assert main(["status", "table1", "--profile", tiny_profile, "--results", str(tmp_path / "r")]) == 0


def test_unknown_cluster_profile_lists_the_valid_ones(tiny_profile, tmp_path, capsys):
    code = main(["run", "table1", "--profile", tiny_profile, "--only", "row=student", "--executor",
                 "slurm", "--cluster-profile", "nope", "--results", str(tmp_path), "--wandb", "disabled"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown cluster profile 'nope'" in err
    assert "local" in err and "gpu-a100" in err


# ============================================================================ on the cluster


def _sh(*cmd: str, timeout: float = 20) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout).stdout




def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "suite", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env or dict(os.environ))


def _wait_settled(cells: list[Cell], store: Store, within_s: float = 300,
                  seen: set[str] | None = None) -> dict[str, str]:
    """Poll (and reconcile) until every cell is done or failed; the store states."""
    deadline = time.time() + within_s
    while True:
        scheduler_view(cells, store)
        states = {c.id: store.state(c.id) for c in cells}
        if seen is not None:
            seen.update(states.values())
        if all(s in ("done", "failed") for s in states.values()):
            return states
        if time.time() > deadline:
            queue = _sh("squeue")
            pytest.fail(f"cells not finished after {within_s} s: {states}\n{queue}")
        time.sleep(1)


def _variant(cell: Cell, **changes) -> Cell:
    """A copy of ``cell`` with config changes (and so a new id)."""
    config = json.loads(json.dumps(cell.config))
    for key, value in changes.items():
        node = config
        *path, last = key.split("__")
        for part in path:
            node = node[part]
        node[last] = value
    return Cell(cell_id(config), config, cell.table, cell.row, columns=cell.columns,
                depends_on=list(cell.depends_on))


def _sacct(jobs: list[str]) -> dict[str, str]:
    """{job id: state} of ``jobs`` in the accounting database."""
    out = _sh("sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(j.split("_")[0] for j in jobs))
    states = dict(line.split("|", 1) for line in out.splitlines() if "|" in line)
    # an array cancelled before it started is listed by its array id alone
    return {j: (states.get(j) or states.get(j.split("_")[0], "")).split(" ")[0] for j in jobs}


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


@pytest.mark.slurm
@pytest.mark.timeout(600)
def test_table_runs_on_slurm_reports_and_leaks_no_secret(cluster, tiny_profile, tmp_path):
    results = tmp_path / "results"
    token = secrets.token_hex(20)
    env = dict(os.environ, WANDB_API_KEY=token, WANDB_MODE="offline")
    common = ["table1", "--profile", tiny_profile, "--only", "row=student,bd", "--results", str(results)]

    first = _cli("run", *common, "--executor", "slurm", "--cluster-profile", "local", "--wandb",
                 "offline", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "submitted 3 cells in 2 arrays" in first.stdout
    arrays = [line.split()[1].rstrip(":") for line in first.stdout.splitlines()
              if line.strip().startswith("array ")]
    assert len(arrays) == 2 and all(a.isdigit() for a in arrays)

    # still queued or running: a second run submits nothing
    again = _cli("run", *common, "--executor", "slurm", "--wandb", "offline", env=env)
    assert again.returncode == 0 and "submitted 0 cells" in again.stdout, again.stdout
    status = _cli("status", *common)
    counts = re.search(r"(\d+) done, (\d+) running, 0 failed", status.stdout)
    # a tiny cell may already have finished (the student needs no teacher): none failed, and the
    # distillation cell is still waiting for its teacher or running
    assert status.returncode == 0 and counts and sum(map(int, counts.groups())) == 3, status.stdout
    assert any(s in status.stdout for s in ("PENDING", "RUNNING")), status.stdout

    folder = results / "slurm" / "table1"
    scripts = {p.name: p.read_text() for p in folder.glob("*_submission.sh")}
    first_script, second_script = scripts[f"{arrays[0]}_submission.sh"], scripts[f"{arrays[1]}_submission.sh"]
    assert "#SBATCH --array=0-1%2" in first_script  # teacher + student, throttled at 2
    assert "#SBATCH --partition=debug" in first_script and "#SBATCH --export=ALL" in first_script
    assert f"#SBATCH --dependency=afterok:{arrays[0]}_0" in second_script

    cells = expand("table1", tiny_profile)
    cells = [c for c in cells if c.row in ("teacher", "student", "bd")]
    store = Store(results)
    assert set(_wait_settled(cells, store).values()) == {"done"}
    for c in cells:
        res = store.result(c.id)
        assert res["wandb"]["mode"] == "offline" and res["host"]

    status = _cli("status", *common)
    assert "3 done" in status.stdout and "mIoU" in status.stdout, status.stdout
    out = tmp_path / "report"
    report = _cli("report", *common, "--format", "md,tex", "--out", str(out))
    assert report.returncode == 0, report.stdout + report.stderr
    assert (out / "table1.md").is_file() and (out / "table1.tex").is_file()

    # the job environment came from the submitting process (sbatch --export=ALL)
    logs = "".join(p.read_text() for p in folder.glob("*_log.out"))
    assert f"SUITE_PROFILES={os.environ['SUITE_PROFILES']}" in logs
    assert f"SUITE_CACHE={os.environ['SUITE_CACHE']}" in logs and "WANDB_MODE=offline" in logs
    # ... and the secret stayed there: not in sbatch files, logs, pickles or results
    files = _files(results) + _files(out)
    assert len(files) > 20 and any(p.suffix == ".sh" for p in files)
    leaked = [p for p in files if token.encode() in p.read_bytes()]
    assert not leaked, f"W&B API key written to {leaked}"


@pytest.mark.slurm
@pytest.mark.timeout(600)
def test_failed_cells_are_resubmitted_alone_and_cancelled(cluster, tiny_profile, tmp_path):
    teacher, student, bd = [c for c in expand("table1", tiny_profile) if c.row in ("teacher", "student", "bd")]
    bad_student = _variant(student, optimizer__lr=1e30)  # loss goes NaN
    bad_teacher = _variant(teacher, optimizer__lr=1e30)
    orphan = _variant(bd, teacher__cell=bad_teacher.id)
    orphan.depends_on = [bad_teacher.id]
    cells = [bad_teacher, student, bad_student, orphan]
    store = Store(tmp_path / "results")

    first = submit(cells, store, wandb="disabled", cluster_profile="local", table="table1")
    assert set(first.submitted) == {c.id for c in cells}
    states = _wait_settled(cells, store)
    assert states == {bad_teacher.id: "failed", student.id: "done", bad_student.id: "failed",
                      orphan.id: "failed"}
    assert "non-finite loss" in store.reason(bad_student.id)
    assert "non-finite loss" in store.reason(bad_teacher.id)
    # the scheduler cancelled the student of the failed teacher (kill-on-invalid-dep)
    assert store.reason(orphan.id).startswith(f"dependency {bad_teacher.id} failed; CANCELLED")

    second = submit(cells, store, wandb="disabled", cluster_profile="local", table="table1")
    assert set(second.submitted) == {bad_teacher.id, bad_student.id, orphan.id}
    assert second.skipped == [student.id]
    third = submit(cells, store, wandb="disabled", cluster_profile="local", table="table1")
    assert not third.submitted  # queued now: never twice

    assert cancel(cells, store) == 0
    assert store.state(student.id) == "done"
    # the orphan waits for its teacher; the others may already run and record their own failure
    assert store.reason(orphan.id) == "cancelled"
    assert {store.state(c.id) for c in (bad_teacher, bad_student, orphan)} == {"failed"}
    jobs = sorted(second.submitted.values())
    deadline = time.time() + 60
    while time.time() < deadline and set(_sacct(jobs).values()) != {"CANCELLED"}:
        time.sleep(1)
    assert set(_sacct(jobs).values()) == {"CANCELLED"}, _sacct(jobs)


@pytest.mark.slurm
@pytest.mark.timeout(600)
def test_interrupted_cell_requeues_and_resumes_from_its_checkpoint(cluster, tiny_profile, tmp_path):
    from submitit.slurm.slurm import SlurmJob

    student = next(c for c in expand("table1", tiny_profile) if c.row == "student")
    # dense checkpoints, so the USR2 often lands inside a save: the save must not swallow it
    # (mmengine's yapf config formatting used to turn it into a SyntaxError)
    cell = _variant(student, iters=60, checkpoint={"interval": 3, "keep": 1})
    store = Store(tmp_path / "results")
    outcome = submit([cell], store, wandb="disabled", cluster_profile="local", table="table1")
    job = SlurmJob(folder=store.root / "slurm" / "table1", job_id=outcome.submitted[cell.id])
    work = store.cell_dir(cell.id) / "work"

    def intact() -> list[int]:
        return sorted(int(p.stem.split("_")[-1]) for p in work.glob("iter_*.pth") if zipfile.is_zipfile(p))

    deadline = time.time() + 240
    while not intact() and time.time() < deadline and store.state(cell.id) == "running":
        time.sleep(0.2)
    assert intact() and store.state(cell.id) == "running", store.status_record(cell.id)
    job._interrupt()  # preemption: SIGTERM (bypassed), then USR2: checkpoint and requeue

    seen: set[str] = set()
    assert _wait_settled([cell], store, seen=seen) == {cell.id: "done"}
    assert "failed" not in seen, "a requeued cell must never look failed"
    assert store.status_record(cell.id)["attempt"] == 2
    log = (store.cell_dir(cell.id) / "train.log").read_text()
    second = log.split("===== attempt-2 =====")[1]
    resumed = [int(line.rsplit("iter:", 1)[1]) for line in second.splitlines()
               if "resumed epoch: 0, iter:" in line]
    assert resumed and 0 < resumed[0] < 60, second[:2000]
    assert "REQUEUED" in _sh("sacct", "-n", "-X", "-D", "-j", job.job_id, "-o", "State")


@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_sbatch_rejection_shows_the_schedulers_message(cluster, tiny_profile, tmp_path):
    profile = yaml.safe_load((REPO / "slurm" / "profiles" / "local.yaml").read_text())
    profile["overrides"] = {"table1": {"partition": "no-such-partition"}}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(profile))
    results = tmp_path / "results"
    proc = _cli("run", "table1", "--profile", tiny_profile, "--only", "row=student", "--executor",
                "slurm", "--cluster-profile", str(path), "--results", str(results), "--wandb", "disabled")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "sbatch rejected the table1" in proc.stderr
    assert "invalid partition" in proc.stderr.lower(), proc.stderr
    cells = [c for c in expand("table1", tiny_profile) if c.row in ("teacher", "student")]
    assert {Store(results).state(c.id) for c in cells} == {"missing"}


@pytest.mark.slurm
@pytest.mark.timeout(600)
def test_detection_cells_run_on_slurm(cluster, tiny_profile, tmp_path):
    """Table V's GFL teacher, plain student and PKD student as SLURM array tasks: mmdet models
    on synthetic COCO, scored by CocoMetric, the student after its teacher."""
    cells = [c for c in expand("table5", tiny_profile)
             if c.config["model"] in ("gfl_r50", "gfl_r18") and c.row in ("teacher", "student", "pkd")]
    assert sorted(c.row for c in cells) == ["pkd", "student", "teacher"]
    store = Store(tmp_path / "results")
    outcome = submit(cells, store, wandb="disabled", cluster_profile="local", table="table5")
    assert set(outcome.submitted) == {c.id for c in cells}
    states = _wait_settled(cells, store, within_s=420)
    assert set(states.values()) == {"done"}, {c.row: store.reason(c.id) for c in cells}
    for cell in cells:
        res = store.result(cell.id)
        assert res["config"]["task"] == "detection"
        assert store.status_record(cell.id)["scheduler"]["job_id"]  # ran as a SLURM task
        assert isinstance(res["ap_box"], float) and res["ap_mask"] != res["ap_mask"]  # no mask head
        assert res["params_m"] > 0 and res["fps"] > 0
    pkd = next(c for c in cells if c.row == "pkd")
    assert store.result(pkd.id)["method"]["name"] == "pkd"
