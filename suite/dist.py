"""Several processes (ranks) for one cell: launcher, rank, world size, backend, batch split.

A cell runs as one process, or as one rank per task of a SLURM job (``SUITE_LAUNCHER=slurm``,
set by :class:`suite.slurm.CellTask` when the cluster profile asks for more than one task) or of
``torchrun`` (``SUITE_LAUNCHER=pytorch``). The process group's backend follows the device: NCCL
with CUDA, Gloo on CPU. On CPU the group is started here (mmengine's SLURM launcher selects a
CUDA device, which a CPU build of torch cannot), and torch's ``SyncBatchNorm`` (CUDA only) is
replaced by :class:`suite.syncbn.CPUSyncBatchNorm` while training.

The profile's ``batch_size`` is the global batch: each of W ranks loads ``batch_size / W``
images per iteration (:func:`per_rank_batch`), and every rank counts the same iterations, so
the learning-rate schedule is the one of a single process.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from typing import Any

from suite.errors import SuiteError

LAUNCHER_ENV = "SUITE_LAUNCHER"
_RANK_ENV = {"slurm": "SLURM_PROCID", "pytorch": "RANK"}
_WORLD_ENV = {"slurm": "SLURM_NTASKS", "pytorch": "WORLD_SIZE"}
CPU_SYNC_BN = "CPUSyncBN"  # the norm type a ``SyncBN`` cell trains with on CPU under DDP


def launcher(env: Mapping[str, str] | None = None) -> str:
    """mmengine's launcher for this process: ``none``, ``slurm`` or ``pytorch``."""
    env = os.environ if env is None else env
    return env.get(LAUNCHER_ENV, "none") or "none"


def rank(env: Mapping[str, str] | None = None) -> int:
    """This process's global rank (0 for a single process)."""
    env = os.environ if env is None else env
    name = _RANK_ENV.get(launcher(env))
    return int(env.get(name) or 0) if name else 0


def world_size(env: Mapping[str, str] | None = None) -> int:
    """How many ranks train the cell (1 for a single process)."""
    env = os.environ if env is None else env
    name = _WORLD_ENV.get(launcher(env))
    return max(1, int(env.get(name) or 1)) if name else 1


def cuda() -> bool:
    """Whether this process has a CUDA device."""
    import torch

    return bool(torch.cuda.is_available())


def backend() -> str:
    """The process-group backend for this machine: ``nccl`` with CUDA, ``gloo`` without."""
    return "nccl" if cuda() else "gloo"


def per_rank_batch(global_batch: int, ranks: int) -> int:
    """Images per rank and iteration so that ``ranks`` ranks together load ``global_batch``."""
    if ranks < 1 or global_batch % ranks:
        raise SuiteError(f"batch size {global_batch} cannot be split evenly over {ranks} ranks: "
                         "choose a profile batch size divisible by the job's task count")
    return global_batch // ranks


def norm_type(norm: str, ranks: int) -> str:
    """The norm layer a cell's ``norm`` builds here: SyncBN on CPU under DDP is
    :class:`CPUSyncBatchNorm` (same parameters and buffers, so the same state dict)."""
    if norm == "SyncBN" and ranks > 1 and not cuda():
        return CPU_SYNC_BN
    return norm


def model_wrapper(find_unused_parameters: bool = True) -> dict[str, Any]:
    """The Runner's ``model_wrapper_cfg``: DDP, with no device ids on CPU."""
    cfg: dict[str, Any] = dict(type="MMDistributedDataParallel",
                               find_unused_parameters=find_unused_parameters)
    if not cuda():
        cfg["device_ids"] = None  # mmengine passes [LOCAL_RANK], which DDP refuses for CPU modules
    return cfg


# ----------------------------------------------------------------------------- the group


def _slurm_master() -> str:
    """The first host of the job (rank 0 runs there), as mmengine's SLURM launcher finds it."""
    nodes = os.environ.get("SLURM_STEP_NODELIST") or os.environ["SLURM_NODELIST"]
    out = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                         timeout=30, check=False).stdout.split()
    return out[0] if out else "127.0.0.1"


def _slurm_env() -> None:
    """``MASTER_ADDR``, ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` from SLURM's task variables."""
    os.environ.setdefault("MASTER_ADDR", _slurm_master())
    os.environ.setdefault("MASTER_PORT", "29500")
    os.environ["WORLD_SIZE"] = os.environ["SLURM_NTASKS"]
    os.environ["RANK"] = os.environ["SLURM_PROCID"]
    os.environ["LOCAL_RANK"] = os.environ.get("SLURM_LOCALID", "0")


def join() -> bool:
    """Start (or join) the cell's process group when it runs as several ranks; whether it does.

    CUDA: mmengine's ``init_dist`` (NCCL, one device per local rank). CPU: Gloo, through the
    environment (``MASTER_ADDR``/``MASTER_PORT``; under SLURM from the job's node list).
    """
    import torch.distributed as torch_dist

    name = launcher()
    if name == "none" or world_size() < 2:
        return False
    if torch_dist.is_initialized():
        return True
    if cuda():
        from mmengine.dist import init_dist

        init_dist(name, backend=backend())
        return True
    if name == "slurm":
        _slurm_env()
    os.environ.setdefault("LOCAL_RANK", "0")
    torch_dist.init_process_group(backend="gloo")
    return True


def from_rank_zero(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (the value itself without a process group)."""
    import torch.distributed as torch_dist

    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return value
    box = [value if torch_dist.get_rank() == 0 else None]
    torch_dist.broadcast_object_list(box, src=0)
    return box[0]


def record(global_batch: int, ranks: int) -> dict[str, Any]:
    """The ``distributed`` record of a result (before training: the schedule is added after)."""
    per_rank = per_rank_batch(global_batch, ranks)
    return {"world_size": ranks, "launcher": launcher() if ranks > 1 else "none",
            "backend": backend() if ranks > 1 else None,
            "batch_per_rank": per_rank, "global_batch": per_rank * ranks,
            "profile_batch": global_batch}


def schedule_record(runner: Any) -> dict[str, Any]:
    """What the finished run counted: its iterations, the steps each parameter scheduler
    counted (one per iteration on every rank, as on one process) and the last learning rate."""
    scheds = runner.param_schedulers or []
    scheds = list(scheds.values())[0] if isinstance(scheds, dict) else scheds
    lrs = runner.optim_wrapper.get_lr() if hasattr(runner, "optim_wrapper") else {}
    lr = lrs.get("lr") if isinstance(lrs, dict) else None
    return {"iters": int(runner.iter),
            "scheduler_steps": [int(getattr(s, "_global_step", -1)) for s in scheds],
            "final_lr": float(lr[0]) if lr else None}
