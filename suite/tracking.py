"""Weights & Biases: one run per cell attempt, offline by default, no account needed.

Runs are grouped by table (``group``), typed by role (``job_type``), tagged by method, dataset,
teacher, student and profile; the run config holds the resolved cell config and its id. A
requeued or resumed attempt is a new run in the same group (offline runs cannot be resumed).
No API key is ever written anywhere: wandb reads ``WANDB_API_KEY`` from the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from suite.provenance import git_sha

MODES = ("offline", "online", "disabled")


def run_tags(config: dict[str, Any]) -> list[str]:
    teacher = (config.get("teacher") or {}).get("model", "none")
    return [
        f"method:{config.get('method_name', 'none')}",
        f"dataset:{config['dataset']}",
        f"teacher:{teacher}",
        f"student:{config['model']}",
        f"profile:{config['profile']}",
        f"role:{config['role']}",
    ]


def vis_backends(mode: str, config: dict[str, Any], cell_id: str, table: str, row: str,
                 attempt: int, cell_dir: Path) -> list[dict[str, Any]]:
    """mmengine visualizer backends for a cell: local scalars always, W&B unless disabled."""
    if mode not in MODES:
        raise ValueError(f"unknown W&B mode {mode!r}; valid: {', '.join(MODES)}")
    backends: list[dict[str, Any]] = [dict(type="LocalVisBackend")]
    if mode == "disabled":
        return backends
    _register_backend()
    init_kwargs = dict(
        project=os.environ.get("WANDB_PROJECT", "suite"),
        group=table,
        job_type=config["role"],
        name=f"{table}-{config['dataset']}-{row}-s{config['seed']}-{cell_id}-a{attempt}",
        tags=run_tags(config),
        config={"cell_id": cell_id, "attempt": attempt, "git_sha": git_sha(),
                "cell": {**config, "table": table, "row": row}},
        mode=mode,
        dir=str(cell_dir),
        reinit="finish_previous",  # one worker process runs many cells
        settings={"silent": True},  # the console belongs to the progress bar and status lines
    )
    if os.environ.get("WANDB_ENTITY"):
        init_kwargs["entity"] = os.environ["WANDB_ENTITY"]
    return backends + [dict(type="ConfigOnlyWandbVisBackend", save_dir=str(cell_dir / "wandb"),
                            init_kwargs=init_kwargs)]


def _register_backend() -> None:
    """Register :class:`ConfigOnlyWandbVisBackend` in mmengine's ``VISBACKENDS``."""
    from mmengine.registry import VISBACKENDS
    from mmengine.visualization import WandbVisBackend
    from mmengine.visualization.vis_backend import force_init_env

    if "ConfigOnlyWandbVisBackend" in VISBACKENDS.module_dict:
        return

    @VISBACKENDS.register_module()
    class ConfigOnlyWandbVisBackend(WandbVisBackend):
        """mmengine's W&B backend, minus ``run.log_code()`` in ``add_config``.

        mmengine's backend calls ``log_code()`` on the current directory, which walks and hashes
        every ``.py`` below it (a virtual environment included: ~15k files, ~10 s a cell). The
        run records the git commit instead (``git_sha`` in its config and the cell's result).
        """

        @force_init_env
        def add_config(self, config: Any, **kwargs: Any) -> None:
            allow = bool((self._init_kwargs or {}).get("allow_val_change", False))
            self._wandb.config.update(config.to_dict(), allow_val_change=allow)



def summarise_run(summary: dict[str, Any]) -> dict[str, str]:
    """Write a cell's final numbers into the active W&B run's summary; its id, URL and mode."""
    import wandb

    run = wandb.run
    if run is None:
        return {}
    run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
    url = "" if run.offline else (getattr(run, "url", None) or "")
    return {"run_id": run.id, "url": url, "dir": str(run.dir),
            "mode": "offline" if run.offline else "online"}


def finish_run() -> None:
    """Close the active W&B run, if any (mmengine closes it itself after training)."""
    import wandb

    if wandb.run is not None:
        wandb.finish()
