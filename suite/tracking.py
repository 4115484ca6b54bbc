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
    # registered by importing suite.wandb_backend (train_and_evaluate does)
    return backends + [dict(type="ConfigOnlyWandbVisBackend", save_dir=str(cell_dir / "wandb"),
                            init_kwargs=init_kwargs)]


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
