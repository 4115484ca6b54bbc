"""Dataloader workers of an mmengine data config, and what follows from their number.

* ``num_workers`` on every dataloader, ``persistent_workers`` only when there are workers;
* ``serialize_data`` of every dataset only when there are workers. mmengine's ``BaseDataset``
  serialises its annotation list into one numpy buffer so that worker processes share it
  instead of copying Python objects; it calls ``gc.collect()`` to do so, which costs ~0.3 s a
  dataset in a process that already holds a model (measured on a 2-core CPU: ~0.9 s a smoke
  cell, three datasets). Without workers nothing is shared and the buffer only costs.
"""

from __future__ import annotations

from typing import Any

DATALOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
WRAPPED = ("dataset", "datasets")  # the keys under which dataset wrappers hold their datasets


def set_dataset_serialization(dataset: Any, serialize: bool) -> None:
    """Set ``serialize_data`` on ``dataset`` (a config dict) or, for a wrapper (``dataset`` /
    ``datasets`` keys: ``ConcatDataset``, ``RepeatDataset``), on the datasets it wraps."""
    if isinstance(dataset, (list, tuple)):
        for item in dataset:
            set_dataset_serialization(item, serialize)
        return
    if not hasattr(dataset, "get"):
        return
    inner = [dataset[key] for key in WRAPPED if key in dataset]
    if inner:
        for item in inner:
            set_dataset_serialization(item, serialize)
    else:
        dataset["serialize_data"] = serialize


def set_loader_workers(cfg: Any, num_workers: int) -> None:
    """Set the dataloaders of ``cfg`` (an mmengine ``Config``) to ``num_workers`` in place (the
    module docstring's rules)."""
    for key in DATALOADERS:
        if key in cfg:
            cfg[key]["num_workers"] = num_workers
            cfg[key]["persistent_workers"] = num_workers > 0
            if "dataset" in cfg[key]:
                set_dataset_serialization(cfg[key]["dataset"], num_workers > 0)
