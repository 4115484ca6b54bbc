"""Checkpoint loading under torch's ``weights_only`` default.

torch >= 2.6 loads with ``weights_only=True``, which refuses mmengine's resumable checkpoints
(they hold the message hub's history buffers and numpy dtypes). The suite registers a loader for
local files that keeps ``weights_only=True`` for everything, and falls back to a full unpickle
only for files inside folders the suite itself wrote and trusts (a cell's own ``work/`` folder).
User-supplied teacher checkpoints therefore always load with ``weights_only=True``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from mmengine.runner.checkpoint import CheckpointLoader

_TRUSTED: set[Path] = set()


def trust(folder: Path | str) -> None:
    """Allow full unpickling of checkpoints under ``folder`` (written by this suite)."""
    _TRUSTED.add(Path(folder).resolve())


def is_trusted(path: Path | str) -> bool:
    path = Path(path).resolve()
    return any(path.is_relative_to(folder) for folder in _TRUSTED)


@CheckpointLoader.register_scheme(prefixes="", force=True)
def load_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's loader for local paths, with the ``weights_only`` policy above."""
    if not Path(filename).is_file():
        raise FileNotFoundError(f"{filename} can not be found.")
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        if not is_trusted(filename):
            raise
        return torch.load(filename, map_location=map_location, weights_only=False)
