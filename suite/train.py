"""Run one cell: build the mmengine Runner from the cell's resolved config, train, evaluate,
export the student and write the result. ``run_cell`` is a plain picklable function of a cell,
so the same code runs in-process, in a local worker pool or as a SLURM array task.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
import traceback
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from suite import dist
from suite.errors import CellFailed, SuiteError
from suite.provenance import git_sha, versions
from suite.store import Store, atomic_write_text, cache_dir

# ----------------------------------------------------------------------------- config building


def dataloaders(config: dict[str, Any], root: str) -> dict[str, Any]:
    """Train and val dataloaders of the cell's dataset at ``root``, from its task."""
    from suite.dist import per_rank_batch, world_size
    from suite.tasks import task_of

    # the profile's batch is the global one: each rank loads its share (suite.dist)
    return task_of(config).dataloaders(config, root,
                                       per_rank_batch(int(config["batch_size"]), world_size()))


def model_config(config: dict[str, Any], store: Store) -> dict[str, Any]:
    from suite.data import DATASETS
    from suite.dist import norm_type, world_size
    from suite.models import taps
    from suite.optim import apply_drop_path
    from suite.tasks import task_of

    classes = DATASETS[config["dataset"]].num_classes
    preproc_size = tuple(config["crop"])
    norm = norm_type(config.get("norm", "BN"), world_size())  # SyncBN on CPU: suite.dist

    task = task_of(config)

    def seg(name: str, init: bool) -> dict[str, Any]:
        pretrained, prefix = (backbone_init(config, store) if init else (None, None))
        cfg = task.model_config(name, classes, config["width"], norm, preproc_size,
                                pretrained=pretrained, pretrained_prefix=prefix,
                                options=config.get(task.name))
        apply_drop_path(cfg, config["optimizer"].get("drop_path"))
        return cfg

    if config["role"] != "distill":
        return seg(config["model"], init=True)
    teacher = config["teacher"]
    ckpt = store.cell_dir(teacher["cell"]) / "model.pth"
    student = seg(config["model"], init=True)
    return dict(
        type="DistillationModel",
        student=student,
        teacher=seg(teacher["model"], init=False),  # loaded from its own cell's checkpoint
        method=config["method"],
        student_taps=taps(config["model"]),
        teacher_taps=taps(teacher["model"]),
        teacher_checkpoint=str(ckpt) if ckpt.is_file() else None,
        probe_size=preproc_size,
        width=config["width"],
        data_preprocessor=student["data_preprocessor"],
        task=task.name,
    )


def backbone_init(config: dict[str, Any], store: Store) -> tuple[str | None, str | None]:
    """The checkpoint (and its key prefix) the backbone starts from, if any.

    A file from the profile's ``pretrained`` (an ImageNet backbone: keys without prefix), or the
    exported network of the cell's ``pretrain`` cell (a whole segmentor: ``backbone.`` keys).
    """
    if config.get("pretrained"):
        return config["pretrained"], None
    pre = config.get("pretrain")
    if not pre:
        return None, None
    path = store.cell_dir(pre["cell"]) / "model.pth"
    if not path.is_file():
        raise SuiteError(f"pretrain cell {pre['cell']} has no model.pth: run it first")
    return str(path), "backbone."


def runner_config(config: dict[str, Any], cell_id: str, store: Store, root: str, table: str,
                  row: str, attempt: int, wandb_mode: str) -> dict[str, Any]:
    from suite.dist import backend as dist_backend
    from suite.dist import launcher, model_wrapper
    from suite.distill.health import hook_config as health_hook_config
    from suite.optim import optim_wrapper, param_schedulers
    from suite.tasks import task_of
    from suite.tracking import vis_backends

    task = task_of(config)
    cell_dir = store.cell_dir(cell_id)
    iters = int(config["iters"])
    opt = config["optimizer"]
    ckpt = config.get("checkpoint", {})
    interval = max(1, min(int(ckpt.get("interval", iters)), iters))
    custom_hooks = [dict(type="NonFiniteLossHook")]
    if rank_zero():  # only rank 0 writes the store
        custom_hooks.append(dict(type="HeartbeatHook", status_path=str(cell_dir / "status.json"),
                                 interval=max(1, interval // 2)))
    if config["role"] == "distill":
        custom_hooks.append(dict(type="DistillScheduleHook"))
    custom_hooks.append(health_hook_config(config))
    return dict(
        default_scope=task.scope,
        model=model_config(config, store),
        **dataloaders(config, root),
        val_evaluator=task.evaluator({**config, "data_root": root}, cell_dir),
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=iters, val_begin=iters,
                       val_interval=iters),  # evaluated once, at the last iteration
        val_cfg=dict(type="ValLoop"),
        optim_wrapper=optim_wrapper(opt),  # SGD + poly (segmentation), AdamW + step (detection)
        param_scheduler=param_schedulers(opt, iters),
        default_hooks=dict(
            timer=dict(type="IterTimerHook"),
            logger=dict(type="LoggerHook", interval=max(1, min(50, iters // 5)), log_metric_by_epoch=False),
            param_scheduler=dict(type="ParamSchedulerHook"),
            checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=interval,
                            # mmengine deletes the oldest kept checkpoint *before* writing the
                            # next one: one more slot keeps `keep` complete checkpoints on disk
                            # while a save is under way (a kill mid-save resumes from them)
                            max_keep_ckpts=int(ckpt.get("keep", 1)) + 1, save_last=True),
            sampler_seed=dict(type="DistSamplerSeedHook"),
            visualization=task.visualization_hook(),
        ),
        custom_hooks=custom_hooks,
        env_cfg=dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method=_start_method(), opencv_num_threads=0),
                     dist_cfg=dict(backend=dist_backend())),  # NCCL with CUDA, Gloo on CPU
        visualizer=task.visualizer(f"vis-{cell_id}-{attempt}-{os.getpid()}",
                                   vis_backends(wandb_mode, config, cell_id, table, row, attempt, cell_dir)),
        log_processor=dict(by_epoch=False),
        log_level="WARNING",  # the console; the cell's own log file gets INFO (_cell_logger)
        randomness=dict(seed=int(config["seed"]), deterministic=False),
        work_dir=str(cell_dir / "work"),
        launcher=launcher(),
        # under DDP some methods' parts (critics, unused heads) get no gradient every step
        model_wrapper_cfg=model_wrapper(find_unused_parameters=True),
        experiment_name=f"{cell_id}-a{attempt}-{os.getpid()}",
    )


def _start_method() -> str:
    """Data-loader workers start the way this process already does (a local pool's workers are
    spawned, and mmengine would force ``fork`` with a warning); ``fork`` in a fresh process."""
    import multiprocessing

    return multiprocessing.get_start_method(allow_none=True) or "fork"


# ----------------------------------------------------------------------------- complexity


def complexity(model: Any, crop: list[int], flops: bool = True) -> dict[str, float]:
    """Params (M) and FLOPs (G) of the deployed network at the profile's input size; Params
    alone (every parameter, as mmengine counts them) when the task reports no FLOPs."""
    import torch
    from mmengine.analysis import get_model_complexity_info

    if not flops:
        return {"params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 4)}
    was = model.training
    model.eval()
    try:
        info = get_model_complexity_info(model, inputs=(torch.zeros(1, 3, *crop),), show_table=False,
                                         show_arch=False)
    finally:
        model.train(was)
    return {"params_m": round(info["params"] / 1e6, 4), "flops_g": round(info["flops"] / 1e9, 4)}


# ----------------------------------------------------------------------------- the cell


def _data_root(config: dict[str, Any]) -> str:
    if config["data"]["source"] == "synthetic":
        from suite.data import ensure_dataset

        params = {k: v for k, v in config["data"].items() if k != "source"}
        if "size" in params:
            params["size"] = tuple(params["size"])
        params.setdefault("seed", 0)  # the draw (profiles.SYNTHETIC_KEYS)
        return str(ensure_dataset(config["dataset"], cache_dir=cache_dir() / "data", **params))
    root = config.get("data_root")
    if not root or not Path(root).is_dir():
        raise SuiteError(f"dataset root for {config['dataset']} missing: {root!r}")
    return root


def _resume(work: Path) -> bool:
    """Point ``last_checkpoint`` at the newest intact checkpoint; whether there is one.

    A process killed while mmengine rotates checkpoints can leave ``last_checkpoint`` naming a
    file already removed, or a half-written newest file: fall back to the newest complete one.
    """
    pointer = work / "last_checkpoint"
    if not work.is_dir():
        return False

    def step(path: Path) -> int:
        return int(path.stem.split("_")[-1]) if path.stem.split("_")[-1].isdigit() else -1

    for ckpt in sorted(work.glob("iter_*.pth"), key=step, reverse=True):
        if zipfile.is_zipfile(ckpt):  # torch.save's format; a truncated file fails this
            if not pointer.is_file() or pointer.read_text().strip() != str(ckpt):
                atomic_write_text(pointer, str(ckpt))
            return True
    pointer.unlink(missing_ok=True)
    return False


def _set_threads() -> None:
    threads = os.environ.get("SUITE_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def train_and_evaluate(config: dict[str, Any], cell_id: str, store: Store, table: str, row: str,
                       attempt: int, wandb_mode: str) -> dict[str, Any]:
    """Train (or, for an imported teacher, only evaluate) and return the result record."""
    from mmengine.runner import Runner

    import suite.distill.hooks  # noqa: F401  (registers the hooks)
    import suite.distill.model  # noqa: F401  (registers DistillationModel)
    import suite.wandb_backend  # noqa: F401  (registers ConfigOnlyWandbVisBackend)
    from suite import syncbn
    from suite.checkpoints import trust
    from suite.cost import CostMeter
    from suite.distill.health import result_record as health_record
    from suite.distill.hooks import ResultCaptureHook
    from suite.fps import cell_fps, fps_settings
    from suite.tasks import task_of
    from suite.tracking import finish_run

    task = task_of(config)
    task.load_modules()  # registers the task's metrics
    fps = fps_settings(config.get("fps"))  # checked before training; false: not measured
    start = time.time()
    meter = CostMeter.start()
    # rank 0 writes a synthetic dataset first; the other ranks wait for it and read its root
    root = dist.from_rank_zero(_data_root(config) if rank_zero() else None)
    syncbn.register()  # CPUSyncBN: a SyncBN cell trained on CPU by several ranks
    cfg_dict = runner_config(config, cell_id, store, root, table, row, attempt, wandb_mode)
    if config["role"] == "distill" and not cfg_dict["model"]["teacher_checkpoint"]:
        from suite.distill.model import TeacherCheckpointError

        raise TeacherCheckpointError(
            f"teacher checkpoint missing: teacher cell {config['teacher']['cell']} has no model.pth")
    work = store.cell_dir(cell_id) / "work"
    trust(work)  # its resumable checkpoints are the suite's own
    imported = config.get("import_checkpoint")
    from mmengine.config import Config

    # No yapf in Config.pretty_text: it costs about a second a call (the Runner, the W&B config
    # and every checkpoint's meta call it), and its bare ``except`` turned a SLURM signal that
    # arrived during a checkpoint save into a SyntaxError, so the requeued attempt never resumed.
    cfg = Config(cfg_dict, format_python_code=False)
    if imported:
        for key in ("train_dataloader", "train_cfg", "optim_wrapper", "param_scheduler"):
            cfg.pop(key)
        cfg.resume = False
    else:
        _resume_same(cfg, work)
    log = _attempt_log(work, attempt) if rank_zero() else None
    runner = None
    try:
        runner = Runner.from_cfg(cfg)
        if log is not None:
            _cell_logger(runner, log)
        model = getattr(runner.model, "module", runner.model)
        deployed = model.student if hasattr(model, "student") else model
        comp = complexity(deployed, config["crop"], flops=task.flops)
        capture = ResultCaptureHook(comp)
        runner.register_hook(capture)
        if dist.world_size() > 1:
            runner.register_hook(syncbn.RankStartHook())
        # what the libraries print (pycocotools' evaluation tables) goes to the attempt log
        with contextlib.redirect_stdout(log.stream if log is not None else sys.stdout):
            if imported:
                from suite.distill.model import load_teacher

                load_teacher(runner.model, imported)
                runner.val()
            else:
                runner.train()  # evaluates once, at the last iteration
        if capture.metrics is None:
            raise RuntimeError("training finished without an evaluation")
        metrics = capture.metrics
        export = syncbn.exported(deployed)  # SyncBN layers back to BatchNorm
        ranks = _distributed_record(config, runner, deployed, export, imported is not None)
        speed = cell_fps(export, config, fps) if rank_zero() else {}  # the deployed network
        if rank_zero():  # the result that run_cell commits next records its size and sha256
            store.write_model(cell_id, {"state_dict": export.state_dict(),
                                        "meta": {"cell_id": cell_id, "model": config["model"],
                                                 "dataset": config["dataset"]}})
        method = config.get("method") or {}
        return {
            "cell_id": cell_id,
            "status": "done",
            "config": config,
            "metrics": metrics,
            **task.result_metrics(metrics),
            **comp,
            **speed,
            "wall_time_s": round(time.time() - start, 2),
            "seed": config["seed"],
            "profile": config["profile"],
            "split": _eval_split(config["dataset"]),
            "checkpoint": config.get("eval", {}).get("checkpoint", "last"),
            "attempt": attempt,
            "git_sha": git_sha(),
            "versions": versions(),
            "host": socket.gethostname(),
            "assumptions": method.get("assumptions", {}),
            "method": {"name": config.get("method_name", "none"),
                       "reimplementation": bool(method.get("reimplementation", False)),
                       "unverified": list(method.get("unverified", [])),
                       "paper": method.get("paper", "")},
            "wandb": {"mode": wandb_mode, **capture.wandb},
            "health": health_record(runner),
            "cost": {**meter.record(), **step_forward_ms(model)},
            "distributed": ranks,
        }
    finally:
        if wandb_mode != "disabled":
            finish_run()
        _close_logger(runner, log)


def _resume_same(cfg: Any, work: Path) -> None:
    """Every rank resumes from the checkpoint rank 0 picks (:func:`_resume`; only rank 0 fixes
    ``last_checkpoint``), named explicitly so that no rank looks for one of its own."""
    picked = _resume(work) if rank_zero() else False
    pointer = work / "last_checkpoint"
    chosen = dist.from_rank_zero(pointer.read_text().strip() if picked else None)
    cfg.resume = bool(chosen)
    if chosen:
        cfg.load_from = chosen
        if dist.world_size() > 1:
            print(f"rank {dist.rank()}/{dist.world_size()}: resuming from {chosen}", flush=True)


def loader_batch_size(loader: Any) -> int:
    """Images per step of a data loader; with a batch sampler (mmdet's aspect-ratio grouping)
    the loader itself has no ``batch_size`` and its sampler has it."""
    size = loader.batch_size
    if size is None:
        size = getattr(loader.batch_sampler, "batch_size", None)
    return int(size)


def _distributed_record(config: dict[str, Any], runner: Any, trained: Any, export: Any,
                        evaluate_only: bool) -> dict[str, Any]:
    """Ranks, backend, per-rank and global batch (checked against the profile), the schedule
    the run counted, and the norm layers trained with and exported."""
    from suite import syncbn

    ranks = dist.world_size()
    rec = dist.record(int(config["batch_size"]), ranks)
    if not evaluate_only:
        per_rank = loader_batch_size(runner.train_dataloader)
        loaded = per_rank * ranks
        if loaded != int(config["batch_size"]):
            raise SuiteError(f"global batch {loaded} ({ranks} ranks x {per_rank}) is not the "
                             f"profile's {config['batch_size']}")
        rec.update(dist.schedule_record(runner))
    rec["norm"] = {"trained": syncbn.norm_layers(trained), "exported": syncbn.norm_layers(export)}
    return rec


def step_forward_ms(model: Any) -> dict[str, Any]:
    """``forward_ms_per_step``: the mean forward time of the teacher, the student's task loss and
    each distillation term of a distillation cell's training steps (empty for other cells)."""
    times = getattr(model, "step_times", None)
    means = times.mean_ms() if times is not None else {}
    return {"forward_ms_per_step": means} if means else {}


def _eval_split(dataset: str) -> str:
    from suite.data import DATASETS

    return DATASETS[dataset].eval_split


def _attempt_log(work: Path, attempt: int) -> logging.FileHandler:
    """``work/attempt-N.log`` at INFO; Python warnings (deprecations in the OpenMMLab libraries, raised
    while the Runner is built) go there from now on, not to the console."""
    from mmengine.logging.logger import MMFormatter

    work.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(work / f"attempt-{attempt}.log", mode="a")
    handler.setFormatter(MMFormatter(color=False, datefmt="%Y/%m/%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    logging.captureWarnings(True)
    py_warnings = logging.getLogger("py.warnings")
    py_warnings.handlers = [handler]
    py_warnings.propagate = False
    return handler


def _cell_logger(runner: Any, handler: logging.Handler) -> None:
    """The Runner's INFO into the attempt log; the console keeps errors only (the progress bar
    and status lines own it). The Runner is built with ``log_level=WARNING`` for that reason."""
    logger = runner.logger
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    for other in logger.handlers:  # mmengine's console handler: errors only
        if isinstance(other, logging.StreamHandler) and not isinstance(other, logging.FileHandler):
            other.setLevel(logging.ERROR)


def _close_logger(runner: Any, handler: logging.Handler | None) -> None:
    """Close the cell's log handlers (one worker process runs many cells)."""
    if runner is not None:
        for other in list(runner.logger.handlers):
            other.close()
            runner.logger.removeHandler(other)
    if handler is not None:
        handler.close()
    logging.getLogger("py.warnings").handlers = []
    logging.captureWarnings(False)


def rank_zero(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process writes the store: any single process, or rank 0 of a DDP job.

    ``SUITE_LAUNCHER`` is the Runner's launcher: ``slurm`` ranks come from ``SLURM_PROCID``
    (one task per rank), ``pytorch`` ranks from ``RANK`` (:mod:`suite.dist`).
    """
    return dist.rank(env) == 0


def run_cell(cell: dict[str, Any], results: str, wandb_mode: str = "offline",
             wait: bool = False) -> dict[str, Any]:
    """Run one cell (a :meth:`suite.tables.Cell.to_dict`) into the store at ``results``.

    Skips a finished cell. Otherwise claims it (:mod:`suite.claims`): a cell claimed by another
    live process raises :class:`~suite.claims.CellClaimed` (with ``wait``, as a SLURM task does,
    waits for that owner instead and returns its result). The claim holder sets a damaged result
    aside, resumes from the cell's last checkpoint when one exists (a cell whose training had
    finished is only evaluated again), and commits ``model.pth`` and ``result.json`` together;
    on any error it marks the cell failed with a one-line reason and raises
    :class:`CellFailed`. In a DDP job only rank 0 claims and writes; the other ranks train
    alongside it.
    """
    from suite.claims import acquire

    store = Store(results)
    cid = cell["id"]
    dist.join()  # several ranks: one process group, rank 0 decides for all (_Plan)
    if not rank_zero():
        return _follow(cell, store, wandb_mode)
    with _Plan() as plan:
        if store.state(cid) == "done":
            return store.result(cid) or {}
        claim = acquire(store.cell_dir(cid), wait=wait, echo=_echo,
                        done=lambda: store.state(cid) == "done")
        if claim is None:  # finished by the owner we waited for
            return store.result(cid) or {}
        with claim.start():
            if store.state(cid) == "done":  # finished between our look and our claim
                return store.result(cid) or {}
            return _run_claimed(cell, store, claim, wandb_mode, plan)


class _Plan:
    """What rank 0 tells the other ranks of a DDP job, exactly once: the attempt and config to
    train, or None (nothing to train: done, or owned elsewhere). Leaving the block without having
    sent a plan sends None, so that the other ranks never wait for a training that will not come.
    A single process sends nothing."""

    def __init__(self) -> None:
        self.sent = False

    def send(self, plan: dict[str, Any] | None) -> None:
        if not self.sent:
            self.sent = True
            dist.from_rank_zero(plan)

    def __enter__(self) -> _Plan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.send(None)


def _follow(cell: dict[str, Any], store: Store, wandb_mode: str) -> dict[str, Any]:
    """A rank other than 0: train alongside rank 0 on its plan; claim and write nothing."""
    plan = dist.from_rank_zero(None)
    if plan is None:
        if store.state(cell["id"]) == "done":
            return store.result(cell["id"]) or {}
        raise CellFailed(f"{cell['id']}: rank 0 did not train the cell (see its log)")
    _set_threads()
    return train_and_evaluate(plan["config"], cell["id"], store, cell["table"], cell["row"],
                              int(plan["attempt"]), wandb_mode)


def _run_claimed(cell: dict[str, Any], store: Store, claim: Any, wandb_mode: str,
                 plan: _Plan | None = None) -> dict[str, Any]:
    """The claim holder's part of :func:`run_cell`."""
    from suite.claims import ClaimLost

    cid, config = cell["id"], cell["config"]
    damaged = store.damage(cid)
    if damaged:  # kept aside, never overwritten
        store.set_aside(cid, damaged)
    store.write_config(cid, config)
    rec = store.mark(cid, "running", new_attempt=True, pid=os.getpid(), host=socket.gethostname(),
                     table=cell["table"], row=cell["row"], scheduler=_scheduler_info(),
                     **({"took_over": claim.took_over} if claim.took_over else {}))
    attempt = int(rec["attempt"])
    _set_threads()
    try:
        run_config, final = _evaluate_only(config, store.cell_dir(cid) / "work")
        if plan is not None:
            plan.send({"attempt": attempt, "config": run_config})
        result = train_and_evaluate(run_config, cid, store, cell["table"], cell["row"], attempt,
                                    wandb_mode)
        if final:
            result.update(config=config, reevaluated_from=final)
        claim.check()  # only the holder commits
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded, then re-raised
        if claim.lost is not None or isinstance(exc, ClaimLost):  # another process owns it now
            raise CellFailed(f"{cid}: claim lost: {claim.lost}") from exc
        reason = _one_line(exc)
        log = store.cell_dir(cid) / "error.log"
        log.write_text("".join(traceback.format_exception(exc)))
        if isinstance(exc, KeyboardInterrupt):
            store.mark(cid, "failed", reason="interrupted")
            raise
        store.mark(cid, "failed", reason=reason)
        raise CellFailed(f"{cid}: {reason}") from exc
    _copy_log(store, cid)
    return store.finish(cid, result)


def _evaluate_only(config: dict[str, Any], work: Path) -> tuple[dict[str, Any], str | None]:
    """(config to run, checkpoint): a cell whose newest intact checkpoint is its last iteration
    (killed while evaluating or exporting, or a damaged result set aside) is evaluated from that
    checkpoint instead of resumed (mmengine would resume past the end and never evaluate)."""
    if config.get("import_checkpoint") or not _resume(work):
        return config, None
    newest = Path((work / "last_checkpoint").read_text().strip())
    if newest.stem != f"iter_{int(config['iters'])}":
        return config, None
    return {**config, "import_checkpoint": str(newest)}, str(newest.relative_to(work.parent))


def _echo(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _scheduler_info() -> dict[str, str] | None:
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    return {"job_id": f"{array}_{task}" if array and task else job}


def _copy_log(store: Store, cid: str) -> None:
    """``train.log``: every attempt's log, oldest first."""
    logs = sorted((store.cell_dir(cid) / "work").glob("attempt-*.log"),
                  key=lambda p: int(p.stem.split("-")[-1]))
    text = "".join(f"===== {p.stem} =====\n{p.read_text(errors='replace')}" for p in logs)
    atomic_write_text(store.cell_dir(cid) / "train.log", text)


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return text[0][:500] if text else type(exc).__name__
