"""mmengine hooks of the suite: distillation schedule, non-finite losses, cell heartbeat, and
(registered from :mod:`suite.distill.health`) the distillation health probe."""

from __future__ import annotations

import math
from typing import Any

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from suite.distill.health import DistillHealthHook  # noqa: F401  (registers it in HOOKS)


def unwrap(model: Any) -> Any:
    """The model inside a DDP / MMDistributedDataParallel wrapper."""
    return getattr(model, "module", model)


@HOOKS.register_module()
class DistillScheduleHook(Hook):
    """Before each training iteration, tell the DistillationModel where training is (alpha(t))."""

    priority = "NORMAL"

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        model = unwrap(runner.model)
        if hasattr(model, "set_progress"):
            model.set_progress(runner.iter, runner.max_iters)


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training with a clear reason as soon as any logged loss is NaN or infinite."""

    priority = "VERY_HIGH"

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        values = {k: float(v.detach()) if hasattr(v, "detach") else float(v)
                  for k, v in (outputs or {}).items() if "loss" in k}
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            names = ", ".join(f"{k}={v}" for k, v in sorted(bad.items()))
            raise FloatingPointError(f"non-finite loss at iteration {runner.iter}: {names}")


@HOOKS.register_module()
class HeartbeatHook(Hook):
    """Writes the cell's progress (iteration / max) into its status file every ``interval`` iters."""

    def __init__(self, status_path: str, interval: int = 10) -> None:
        self.status_path, self.interval = status_path, interval

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        if runner.iter % self.interval and runner.iter + 1 != runner.max_iters:
            return
        import time
        from pathlib import Path

        from suite.store import atomic_write_json, read_json

        path = Path(self.status_path)
        rec = read_json(path) or {}
        rec.update(heartbeat=time.time(), progress=[runner.iter + 1, runner.max_iters])
        atomic_write_json(path, rec)


class ResultCaptureHook(Hook):
    """Keeps the final evaluation's metrics and writes them into the W&B run's summary.

    It runs at ``after_val_epoch``, before mmengine's LoggerHook closes the visualizer (and with
    it the W&B run) at ``after_run``.
    """

    priority = "HIGH"

    def __init__(self, summary: dict[str, Any]) -> None:
        self.summary = dict(summary)
        self.metrics: dict[str, float] | None = None
        self.wandb: dict[str, str] = {}

    def after_val_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        from suite.tracking import summarise_run

        self.metrics = {k: float(v) for k, v in (metrics or {}).items()}
        self.wandb = summarise_run({**self.summary, "miou": self.metrics.get("mIoU"),
                                    "aacc": self.metrics.get("aAcc")})
