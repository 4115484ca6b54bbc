"""Tests against the real single-node SLURM cluster of slurm/cluster.sh (marker: slurm).

Run them with `bash slurm/test-tier.sh` (installs, starts and stops the cluster), or with
`slurm/cluster.sh start` followed by `pytest -m slurm tests/`. Without a running cluster the
tests skip, except under slurm/test-tier.sh (SLURM_TEST_TIER=1), where they fail.

The functions submitted below live in this test module, which jobs cannot import (tests/ is not
on their sys.path): the module is registered with cloudpickle to be pickled by value.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

submitit = pytest.importorskip("submitit")
cloudpickle = pytest.importorskip("cloudpickle")
yaml = pytest.importorskip("yaml")

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(90)]

REPO = Path(__file__).resolve().parents[1]
LOCAL_PROFILE = REPO / "slurm" / "profiles" / "local.yaml"
SACCT_WAIT_S = 30


# --- helpers ---------------------------------------------------------------------------------


def _run(*cmd: str, timeout: float = 20) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout).stdout




def local_profile() -> dict:
    return yaml.safe_load(LOCAL_PROFILE.read_text())


def make_executor(folder: Path, **overrides) -> submitit.AutoExecutor:
    """An executor configured from slurm/profiles/local.yaml (the profile CI uses)."""
    prof = {k: v for k, v in local_profile().items() if k != "overrides"}
    prof.update(overrides)
    params = {
        "timeout_min": prof["timeout_min"],
        "cpus_per_task": prof["cpus_per_task"],
        "mem_gb": prof["mem_gb"],
        "slurm_partition": prof["partition"],
        "slurm_array_parallelism": prof["array_parallelism"],
        "slurm_signal_delay_s": prof["signal_delay_s"],
    }
    if prof.get("gpus_per_node"):
        params["gpus_per_node"] = prof["gpus_per_node"]
    for key in ("account", "qos", "constraint"):
        if prof.get(key):
            params[f"slurm_{key}"] = prof[key]
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(name="suite-slurm-test", **params)
    return executor


def sacct_states(job_id: str) -> dict[str, str]:
    """{job id: state} of the allocations of job_id (array tasks listed one by one)."""
    out = _run("sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,State")
    states = {}
    for line in out.splitlines():
        if "|" in line:
            jid, state = line.split("|", 1)
            states[jid] = state.split()[0]  # "CANCELLED by 0" -> "CANCELLED"
    return states


def wait_sacct(job_id: str, expected: str) -> str:
    """Wait until slurmdbd has recorded job_id in state `expected`; returns the last state."""
    deadline = time.time() + SACCT_WAIT_S
    state = ""
    while time.time() < deadline:
        state = sacct_states(job_id).get(job_id, "")
        if state == expected:
            return state
        time.sleep(1)
    return state


# --- functions run as jobs (pickled by value) ------------------------------------------------


def square_and_report(x: int) -> dict:
    start = time.time()
    time.sleep(1.0)
    return {
        "value": x * x,
        "array_job_id": os.environ.get("SLURM_ARRAY_JOB_ID"),
        "array_task_id": int(os.environ["SLURM_ARRAY_TASK_ID"]),
        "partition": os.environ.get("SLURM_JOB_PARTITION"),
        "cpus": int(os.environ.get("SLURM_CPUS_PER_TASK", "0")),
        "start": start,
        "end": time.time(),
    }


def fail_on_one(x: int) -> int:
    if x == 1:
        raise ValueError(f"task {x} fails on purpose")
    return x * 10


class CountingTask(submitit.helpers.Checkpointable):
    """Counts to `total`, appending "<step> <restart count>" to a progress file.

    Checkpointable.checkpoint pickles `self`, so `self.step` survives a requeue.
    """

    def __init__(self) -> None:
        self.step = 0

    def __call__(self, progress: str, total: int, step_s: float) -> tuple[int, int]:
        restart = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
        path = Path(progress)
        while self.step < total:
            time.sleep(step_s)
            self.step += 1
            with path.open("a") as f:
                f.write(f"{self.step} {restart}\n")
        return self.step, restart


# --- tests -----------------------------------------------------------------------------------


def test_local_profile_matches_cluster(cluster):
    prof = local_profile()
    partitions = _run("sinfo", "-h", "-o", "%R").split()
    assert prof["partition"] in partitions
    max_array = int(
        next(
            line.split("=", 1)[1]
            for line in _run("scontrol", "show", "config").splitlines()
            if line.startswith("MaxArraySize")
        )
    )
    # SLURM array indices go up to MaxArraySize - 1.
    assert prof["max_array_size"] <= max_array - 1


def test_node_offers_every_cpu_of_the_machine(cluster):
    """The node's CPU count is the machine's, whatever OMP_NUM_THREADS the cluster was started
    under (GNU nproc obeys it; a 1-CPU node cannot take the 2-rank DDP job)."""
    cpus = {int(c) for c in _run("sinfo", "-h", "-N", "-n", "localhost", "-o", "%c").split()}
    assert cpus == {len(os.sched_getaffinity(0))}


def test_job_array_all_tasks_succeed(cluster, tmp_path):
    executor = make_executor(tmp_path / "logs")
    jobs = executor.map_array(square_and_report, range(4))
    assert len(jobs) == 4
    script = jobs[0].paths.submission_file.read_text()
    assert "#SBATCH --array=0-3%2" in script  # array_parallelism 2 from the profile

    results = [job.result() for job in jobs]
    assert [r["value"] for r in results] == [0, 1, 4, 9]
    assert {r["array_job_id"] for r in results} == {jobs[0].job_id.split("_")[0]}
    assert sorted(r["array_task_id"] for r in results) == [0, 1, 2, 3]
    assert {r["partition"] for r in results} == {"debug"}
    assert {r["cpus"] for r in results} == {1}
    # Never more than 2 tasks at once.
    events = sorted([(r["start"], 1) for r in results] + [(r["end"], -1) for r in results])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak <= 2
    for job in jobs:
        assert wait_sacct(job.job_id, "COMPLETED") == "COMPLETED"


def test_raising_task_fails_alone(cluster, tmp_path):
    executor = make_executor(tmp_path / "logs")
    jobs = executor.map_array(fail_on_one, range(3))
    assert jobs[0].result() == 0
    assert jobs[2].result() == 20
    with pytest.raises(submitit.core.utils.FailedJobError, match="fails on purpose"):
        jobs[1].result()
    assert wait_sacct(jobs[1].job_id, "FAILED") == "FAILED"
    assert wait_sacct(jobs[0].job_id, "COMPLETED") == "COMPLETED"
    assert wait_sacct(jobs[2].job_id, "COMPLETED") == "COMPLETED"


def test_cancelled_job_seen_by_sacct(cluster, tmp_path):
    executor = make_executor(tmp_path / "logs")
    job = executor.submit(time.sleep, 120)
    _run("scancel", job.job_id)
    assert wait_sacct(job.job_id, "CANCELLED") == "CANCELLED"
    assert job.get_info(mode="force").get("State", "").startswith("CANCELLED")


def wait_progress(job, progress: Path, steps: int, within_s: float = 30) -> None:
    deadline = time.time() + within_s
    while time.time() < deadline:
        if progress.exists() and len(progress.read_text().splitlines()) >= steps:
            return
        time.sleep(0.2)
    pytest.fail(f"job {job.job_id} made no progress in {within_s} s (state {job.state})")


def check_resumed(progress: Path, total: int) -> None:
    """Steps 1..k in the first run, then k+1..total after one requeue: resumed, not restarted."""
    lines = [tuple(map(int, line.split())) for line in progress.read_text().splitlines()]
    before = [s for s, r in lines if r == 0]
    after = [s for s, r in lines if r == 1]
    assert before and after, lines
    assert {r for _, r in lines} == {0, 1}, lines
    assert before == list(range(1, len(before) + 1))
    # The signal can land between a step's increment and its line in the file: the checkpoint
    # then holds one step more than the file shows.
    assert after[0] in (before[-1] + 1, before[-1] + 2), lines
    assert after == list(range(after[0], total + 1))


def test_checkpointable_requeued_and_resumed(cluster, tmp_path):
    progress = tmp_path / "progress.txt"
    total = 12
    executor = make_executor(tmp_path / "logs")
    job = executor.submit(CountingTask(), str(progress), total, 0.5)
    wait_progress(job, progress, 3)
    job._interrupt()  # preemption: SIGTERM (ignored by submitit), then USR2: checkpoint+requeue

    assert job.result() == (total, 1)  # SLURM_RESTART_COUNT=1 in the resumed run
    check_resumed(progress, total)
    assert wait_sacct(job.job_id, "COMPLETED") == "COMPLETED"
    assert "REQUEUED" in _run("sacct", "-n", "-X", "-D", "-j", job.job_id, "-o", "State")


def test_preempt_partition_is_preempted_and_resumes(cluster, tmp_path):
    """A job of the default partition preempts one in `preempt`; the victim gets USR2 at once
    (preempt_send_user_signal), checkpoints, is requeued and resumes."""
    cpus = int(_run("sinfo", "-h", "-N", "-n", "localhost", "-o", "%c").split()[0])
    progress = tmp_path / "progress.txt"
    total = 12
    low = make_executor(tmp_path / "logs", partition="preempt", cpus_per_task=cpus)
    victim = low.submit(CountingTask(), str(progress), total, 0.5)
    wait_progress(victim, progress, 2)

    high = make_executor(tmp_path / "logs", cpus_per_task=cpus)  # whole node, partition debug
    t0 = time.time()
    urgent = high.submit(time.sleep, 1)
    assert urgent.result() is None
    assert time.time() - t0 < 20, (
        "the debug job waited for the preempt job instead of preempting it"
    )

    assert victim.result() == (total, 1)
    check_resumed(progress, total)
    log = victim.paths.stderr.read_text()
    assert "Caught signal SIGUSR2" in log and "preempted" in log
