"""Tasks: what differs between mmseg and mmdet, behind one interface (:class:`Task`)."""

from __future__ import annotations

from typing import Any

from suite.errors import SuiteError
from suite.tasks.base import Task
from suite.tasks.detection import DetectionTask
from suite.tasks.library import library_config, library_config_path
from suite.tasks.segmentation import SegmentationTask

TASKS: dict[str, Task] = {"segmentation": SegmentationTask(), "detection": DetectionTask()}


def get_task(name: str) -> Task:
    """The task called ``name``; an error listing the valid names otherwise."""
    if name not in TASKS:
        raise SuiteError(f"unknown task {name!r}; valid: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def task_of(config: dict[str, Any]) -> Task:
    """The task of a cell's resolved config."""
    return get_task(config.get("task", "segmentation"))


__all__ = ["TASKS", "Task", "get_task", "library_config", "library_config_path", "task_of"]
