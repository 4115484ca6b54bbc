"""Shared fixtures: tiny models, a tiny profile, W&B disabled, an isolated cache."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

TINY_PROFILE = {
    "name": "tiny",
    "description": "unit-test size: a few iterations on 32 px crops",
    "data": "synthetic",
    "device": "cpu",
    "width": 0.125,
    "crop": [32, 32],
    "synthetic": {"num_train": 8, "num_val": 4, "size": [48, 48]},
    "schedule": {"teacher": {"iters": 4, "batch_size": 2}, "student": {"iters": 4, "batch_size": 2}},
    "optimizer": {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0005, "power": 0.9, "eta_min": 0.0001},
    "checkpoint": {"interval": 2, "keep": 1},
    "eval": {"checkpoint": "last"},
}


@pytest.fixture(scope="session")
def suite_cache(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("suite-cache")
    os.environ["SUITE_CACHE"] = str(path)
    return path


@pytest.fixture
def tiny_profile(tmp_path, monkeypatch, suite_cache):
    """Adds a ``tiny`` profile through ``SUITE_PROFILES`` (child processes see it too)."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY_PROFILE))
    monkeypatch.setenv("SUITE_PROFILES", str(folder))
    return "tiny"


@pytest.fixture(scope="module")
def cluster() -> None:
    """The single-node SLURM cluster must be up: skip when it is not, fail under slurm/test-tier.sh."""
    problem = None
    if shutil.which("sbatch") is None:
        problem = "sbatch not on PATH"
    else:
        try:
            # One line per partition the node is in.
            out = subprocess.run(["sinfo", "-h", "-N", "-n", "localhost", "-o", "%t"], check=True,
                                 capture_output=True, text=True, timeout=20).stdout
            states = set(out.split())
            if not states or not states <= {"idle", "mix", "alloc"}:
                problem = f"node localhost is {sorted(states) or 'absent'}"
        except (subprocess.SubprocessError, OSError) as exc:
            problem = f"sinfo failed: {exc}"
    if problem:
        msg = f"SLURM test cluster not usable ({problem}); start it with slurm/cluster.sh start"
        if os.environ.get("SLURM_TEST_TIER") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
