"""Several ranks per cell: the pure parts (default run) and DDP on CPU through SLURM (``slurm``).

The unit tests need no SLURM: ranks per node and nodes in cluster profiles, the rank and world
size a process reads from its environment, the batch split, the backend choice, the SyncBN
replacement on CPU (against BatchNorm over the ranks' batches together, in two Gloo processes)
and that a rank other than 0 cannot claim a cell.

The ``slurm`` test runs one BCD distillation cell as a 2-rank job on the single-node cluster
(Gloo, SyncBN, CPU), interrupts it, and checks that the requeued job resumes both ranks from the
same checkpoint, that rank 0 alone wrote the cell's files, that the metrics cover the whole
validation set once, and that the global batch and the schedule are the profile's.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import socket
import time
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from suite import dist
from suite.claims import NotRankZero, try_acquire
from suite.errors import SuiteError
from suite.profiles import find_yaml
from suite.slurm import PROFILE_DIR, PROFILE_ENV, Resources, load_cluster_profile

REPO = Path(__file__).resolve().parents[1]


# ============================================================================ unit tests


def test_cpu_profiles_can_ask_for_several_ranks_and_nodes(tmp_path):
    two = Resources(tasks_per_node=2)
    assert (two.world_size, two.launcher) == (2, "slurm")
    params = two.sbatch_parameters()
    assert params["ntasks_per_node"] == 2 and "nodes" not in params and "gpus_per_node" not in params
    multi = Resources(gpus_per_node=4, nodes=2).sbatch_parameters()
    assert (multi["ntasks_per_node"], multi["nodes"], multi["gpus_per_node"]) == (4, 2, 4)
    assert Resources(nodes=2).launcher == "slurm" and Resources(nodes=2).world_size == 2
    assert Resources().launcher == "none" and "ntasks_per_node" not in Resources().sbatch_parameters()

    path = tmp_path / "cpu.yaml"
    path.write_text(yaml.safe_dump({"partition": "cpu", "tasks_per_node": None,
                                    "overrides": {"bcd": {"tasks_per_node": 4, "nodes": 2}}}))
    prof = load_cluster_profile(str(path))
    assert prof.resources("table1", "student").world_size == 1
    assert prof.resources("table1", "bcd").world_size == 8
    path.write_text(yaml.safe_dump({"tasks_per_node": 0}))
    with pytest.raises(SuiteError, match="tasks_per_node must be an integer >= 1"):
        load_cluster_profile(str(path))


def test_rank_world_size_batch_split_and_backend():
    env = {"SUITE_LAUNCHER": "slurm", "SLURM_PROCID": "1", "SLURM_NTASKS": "2"}
    assert (dist.rank(env), dist.world_size(env)) == (1, 2)
    assert (dist.rank({}), dist.world_size({})) == (0, 1)
    assert dist.world_size({"SUITE_LAUNCHER": "pytorch", "WORLD_SIZE": "4", "RANK": "3"}) == 4
    assert dist.world_size({"SLURM_NTASKS": "4"}) == 1  # no launcher: one process
    assert dist.per_rank_batch(16, 4) == 4 and dist.per_rank_batch(4, 1) == 4
    with pytest.raises(SuiteError, match="batch size 6 cannot be split evenly over 4 ranks"):
        dist.per_rank_batch(6, 4)
    assert dist.backend() == ("nccl" if torch.cuda.is_available() else "gloo")
    if not torch.cuda.is_available():
        assert dist.norm_type("SyncBN", 2) == dist.CPU_SYNC_BN
        assert dist.model_wrapper()["device_ids"] is None
    assert dist.norm_type("SyncBN", 1) == "SyncBN" and dist.norm_type("BN", 2) == "BN"
    rec = dist.record(8, 2)
    assert (rec["batch_per_rank"], rec["global_batch"], rec["profile_batch"]) == (4, 8, 8)


def test_a_rank_other_than_zero_never_claims(tmp_path, monkeypatch):
    monkeypatch.setenv("SUITE_LAUNCHER", "slurm")
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    with pytest.raises(NotRankZero):
        try_acquire(tmp_path / "cell")
    assert not (tmp_path / "cell" / "claim.json").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _syncbn_rank(rank: int, port: int, x: torch.Tensor, out: dict) -> None:
    """One of two Gloo ranks: CPUSyncBatchNorm on its half of ``x``; output, input gradient,
    weight gradient and running statistics into ``out`` (a Manager dict)."""
    import torch.distributed as torch_dist

    from suite.syncbn import CPUSyncBatchNorm, local_batchnorm

    torch.set_num_threads(1)
    torch_dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                  world_size=2)
    try:
        bn = CPUSyncBatchNorm(3)
        with torch.no_grad():
            bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        part = x[2 * rank:2 * rank + 2].clone().requires_grad_(True)
        y = bn(part)
        (y * torch.arange(y.numel()).view_as(y).float()).sum().backward()
        torch_dist.all_reduce(bn.weight.grad)
        stats = (bn.running_mean.clone(), bn.running_var.clone())
        with local_batchnorm(bn), torch.no_grad():  # no collective: rank 0 may run it alone
            alone = bn(part.detach()) if rank == 0 else None
        out[rank] = (y.detach(), part.grad, bn.weight.grad, *stats, alone)
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_cpu_syncbn_is_batchnorm_over_every_ranks_batch():
    import torch.multiprocessing as mp

    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5)
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_syncbn_rank, args=(_free_port(), x, out), nprocs=2, join=True)
        got = dict(out)
    ref = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    full = x.clone().requires_grad_(True)
    y = ref(full)
    weights = torch.cat([torch.arange(y[:2].numel()).view_as(y[:2]).float()] * 2)
    (y * weights).sum().backward()
    for rank in (0, 1):
        y_r, g_r, wg, mean, var, _ = got[rank]
        torch.testing.assert_close(y_r, y.detach()[2 * rank:2 * rank + 2], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(g_r, full.grad[2 * rank:2 * rank + 2], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(wg, ref.weight.grad, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(mean, ref.running_mean, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(var, ref.running_var, atol=1e-6, rtol=1e-5)
    local = torch.nn.functional.batch_norm(x[:2], None, None, torch.tensor([1.0, 2.0, 0.5]),
                                           torch.zeros(3), True)
    torch.testing.assert_close(got[0][5], local, atol=1e-5, rtol=1e-4)


def test_export_turns_cpu_syncbn_back_into_batchnorm():
    from suite.syncbn import CPUSyncBatchNorm, exported, norm_layers

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), CPUSyncBatchNorm(4),
                              torch.nn.Sequential(CPUSyncBatchNorm(4)))
    net[1].running_mean.fill_(0.5)
    plain = exported(net)
    assert norm_layers(net) == {"CPUSyncBatchNorm": 2}
    assert norm_layers(plain) == {"_BatchNormXd": 2}
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4),
                              torch.nn.Sequential(torch.nn.BatchNorm2d(4)))
    ref.load_state_dict(plain.state_dict(), strict=True)
    assert float(ref[1].running_mean[0]) == 0.5


# ============================================================================ on the cluster


DDP_PROFILE_CHANGES = {
    "name": "tinyddp",
    "norm": "SyncBN",
    # an odd number of validation images: two ranks pad the split to 6; counted once, it is 5
    "synthetic": {"num_train": 8, "num_val": 5, "size": [48, 48]},
    # the global batch: 2 images per rank on 2 ranks
    "schedule": {"teacher": {"iters": 4, "batch_size": 2}, "student": {"iters": 4, "batch_size": 4}},
}


@pytest.fixture
def ddp_profile(tmp_path, monkeypatch, suite_cache) -> str:
    from conftest import TINY_PROFILE

    folder = tmp_path / "profiles"
    folder.mkdir()
    profile = {**copy.deepcopy(TINY_PROFILE), **DDP_PROFILE_CHANGES}
    (folder / "tinyddp.yaml").write_text(yaml.safe_dump(profile))
    monkeypatch.setenv("SUITE_PROFILES", str(folder))
    return "tinyddp"


GPU_PROFILE_ENV = "SUITE_DDP_CLUSTER_PROFILE"  # a GPU cluster's profile: the same test, NCCL


@pytest.fixture
def ddp_cluster(request) -> None:
    """The local test cluster (``cluster``), or any SLURM cluster when a profile is named."""
    if os.environ.get(GPU_PROFILE_ENV):
        if shutil.which("sbatch") is None:
            pytest.skip("sbatch not on PATH")
        return
    request.getfixturevalue("cluster")


def _cluster_profile(tmp_path: Path) -> Path:
    """BCD cells as 2 ranks: of 1 CPU each on the local test cluster, or of 1 GPU each on the
    cluster whose profile ``SUITE_DDP_CLUSTER_PROFILE`` names."""
    name = os.environ.get(GPU_PROFILE_ENV)
    source = find_yaml(PROFILE_DIR, PROFILE_ENV, name) if name and not name.endswith(".yaml") else (
        Path(name) if name else REPO / "slurm" / "profiles" / "local.yaml")
    profile = yaml.safe_load(Path(source).read_text())
    two = {"gpus_per_node": 2, "tasks_per_node": 2} if name else {"tasks_per_node": 2}
    profile.update(overrides={"bcd": two}, **({} if name else {"mem_gb": 4}))
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def _single_process_metrics(student_cell, model: Path, tmp_path: Path) -> dict:
    """Evaluate ``model`` (strictly loaded into a BatchNorm student) in this one process."""
    from suite.store import Store
    from suite.train import train_and_evaluate

    config = {**student_cell.config, "import_checkpoint": str(model)}
    result = train_and_evaluate(config, "reeval", Store(tmp_path / "reeval"), "table1", "student",
                                1, "disabled")
    return result["metrics"]


@pytest.mark.slurm
@pytest.mark.timeout(600)
def test_two_rank_bcd_cell_trains_once_resumes_together_and_evaluates_once(
        ddp_cluster, ddp_profile, tmp_path, monkeypatch):
    from submitit.slurm.slurm import SlurmJob
    from test_slurm_e2e import _sh, _variant, _wait_settled

    from suite.slurm import submit
    from suite.store import Store
    from suite.tables import expand

    monkeypatch.setenv("WANDB_MODE", "offline")
    cells = {c.row: c for c in expand("table1", ddp_profile)}
    teacher, student = cells["teacher"], cells["student"]
    iters = 30
    bcd = _variant(cells["bd+cd+wd"], iters=iters, checkpoint={"interval": 3, "keep": 2})
    store = Store(tmp_path / "results")
    started = time.time()
    outcome = submit([teacher, bcd], store, wandb="offline",
                     cluster_profile=str(_cluster_profile(tmp_path)), table="table1")
    [two_ranks] = [a for a in outcome.arrays if a["resources"]["tasks_per_node"] == 2]
    folder = store.root / "slurm" / "table1"
    assert "#SBATCH --ntasks-per-node=2" in (folder / f"{two_ranks['array']}_submission.sh").read_text()
    job = SlurmJob(folder=folder, job_id=outcome.submitted[bcd.id])
    cell_dir = store.cell_dir(bcd.id)
    work = cell_dir / "work"

    def intact() -> list[Path]:
        return [p for p in work.glob("iter_*.pth") if zipfile.is_zipfile(p)]

    deadline = time.time() + 300
    while not intact() and time.time() < deadline and store.state(bcd.id) != "failed":
        time.sleep(0.2)
    assert intact() and store.state(bcd.id) == "running", store.status_record(bcd.id)
    job._interrupt()  # preemption of the 2-rank job: USR2 to both ranks, rank 0 requeues

    seen: set[str] = set()
    assert _wait_settled([teacher, bcd], store, within_s=400, seen=seen) == {
        teacher.id: "done", bcd.id: "done"}, store.reason(bcd.id)
    elapsed = time.time() - started
    assert "failed" not in seen
    assert store.status_record(bcd.id)["attempt"] == 2
    assert "REQUEUED" in _sh("sacct", "-n", "-X", "-D", "-j", job.job_id, "-o", "State")

    # both ranks of the second attempt resumed from the same checkpoint, at the same iteration
    logs = {int(m.group(1)): p.read_text() for p in folder.glob(f"{job.job_id}_*_log.out")
            if (m := re.match(rf"{re.escape(job.job_id)}_(\d+)_log\.out", p.name))}
    assert sorted(logs) == [0, 1], sorted(p.name for p in folder.iterdir())
    resumed = {r: re.findall(rf"rank {r}/2: resuming from (\S+)", text) for r, text in logs.items()}
    starts = {r: re.findall(rf"rank {r}/2: starts at iter (\d+)", text) for r, text in logs.items()}
    assert len(resumed[0]) == 1 and resumed[0] == resumed[1], resumed
    assert [s[-1] for s in starts.values()] == [starts[0][-1]] * 2 and 0 < int(starts[0][-1]) < iters
    assert Path(resumed[0][0]).stem == f"iter_{starts[0][-1]}"

    # rank 0 alone wrote the cell: one result, one model, one W&B run and one log per attempt
    files = [p.relative_to(cell_dir) for p in cell_dir.rglob("*") if p.is_file()]
    assert [f for f in files if f.name == "result.json"] == [Path("result.json")]
    assert [f for f in files if f.name == "model.pth"] == [Path("model.pth")]
    assert sorted(p.name for p in work.glob("attempt-*.log")) == ["attempt-1.log", "attempt-2.log"]
    assert not [f for f in files if "rank" in f.name], files
    runs = sorted((cell_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2, runs
    train_log = (cell_dir / "train.log").read_text()
    assert train_log.count("===== attempt-") == 2 and "resumed epoch: 0, iter:" in train_log

    # global batch, schedule and norm layers as the profile says
    result = store.result(bcd.id)
    ranks = result["distributed"]
    gpus = bool(os.environ.get(GPU_PROFILE_ENV))
    assert (ranks["world_size"], ranks["launcher"]) == (2, "slurm")
    assert ranks["backend"] == ("nccl" if gpus else "gloo")
    assert (ranks["batch_per_rank"], ranks["global_batch"], ranks["profile_batch"]) == (2, 4, 4)
    assert ranks["iters"] == iters and ranks["scheduler_steps"] == [iters]
    assert ranks["final_lr"] == pytest.approx(bcd.config["optimizer"]["eta_min"])
    sync = "SyncBatchNorm" if gpus else "CPUSyncBatchNorm"
    assert set(ranks["norm"]["trained"]) == {sync}
    assert set(ranks["norm"]["exported"]) == {"_BatchNormXd"}
    assert sum(ranks["norm"]["exported"].values()) == ranks["norm"]["trained"][sync]

    # the metrics are those of the whole validation set, once: one process, same model, same numbers
    pngs = list((cell_dir / "predictions").rglob("*.png"))
    assert pngs, "rank 0 saves the prediction pictures"
    again = _single_process_metrics(student, cell_dir / "model.pth", tmp_path)
    for key in ("mIoU", "aAcc", "majority.share", "bIoU"):
        if key in again:
            assert result["metrics"][key] == pytest.approx(again[key], abs=1e-6), key
    assert result["health"]["history"], "rank 0 probed the student's health"
    print(f"2-rank BCD cell: teacher + interrupted and resumed cell in {elapsed:.0f} s")
