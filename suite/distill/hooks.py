"""mmengine hooks of the suite: distillation schedule, non-finite losses, cell heartbeat."""

from __future__ import annotations

import math
from typing import Any

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


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
        bad = {k: float(v) for k, v in (outputs or {}).items()
               if "loss" in k and not math.isfinite(float(v))}
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
