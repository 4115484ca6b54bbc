"""What differs between tasks (segmentation with mmseg, detection with mmdet): one object each.

The training code and :class:`~suite.distill.model.DistillationModel` ask a :class:`Task` for
everything library-specific and never name the library themselves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from torch import Tensor


def loaders(base: Any, batch_size: int) -> dict[str, Any]:
    """``train_dataloader`` (``batch_size`` images a step) and ``val_dataloader`` (one image a
    step) of a library's dataset config."""
    train = base.train_dataloader.to_dict()
    val = base.val_dataloader.to_dict()
    train.update(batch_size=batch_size)
    val.update(batch_size=1)
    return {"train_dataloader": train, "val_dataloader": val}


class Task(ABC):
    """One task: its library's registry scope, models, data, evaluation and ground truth."""

    name: str = ""
    scope: str = ""  # the library's default registry scope (``mmseg``, ``mmdet``)
    flops: bool = True  # whether a result reports FLOPs (``suite.train.complexity``) besides Params

    @abstractmethod
    def load_modules(self) -> None:
        """Import what registers the task's own metrics and modules in the library's registries."""

    @abstractmethod
    def model_config(self, model: str, num_classes: int, width: float, norm: str,
                     crop: tuple[int, int], pretrained: str | None = None,
                     pretrained_prefix: str | None = None,
                     options: dict[str, Any] | None = None) -> dict[str, Any]:
        """The library's model config of architecture ``model`` at ``width``; ``options``: the
        cell config's section named after the task (the profile's ``detection:``), keyword
        options of the model family's config (a task without any rejects a non-empty one)."""

    @abstractmethod
    def dataloaders(self, config: dict[str, Any], root: str, batch_size: int) -> dict[str, Any]:
        """``train_dataloader`` and ``val_dataloader`` configs of a cell's dataset at ``root``."""

    @abstractmethod
    def evaluator(self, config: dict[str, Any], cell_dir: Path) -> list[dict[str, Any]]:
        """The validation metrics (``val_evaluator``) of a cell's resolved ``config``, whose
        ``data_root`` is the dataset root the cell reads (synthetic ones included); outputs
        such as prediction pictures go under ``cell_dir``."""

    @abstractmethod
    def visualizer(self, name: str, vis_backends: list[dict[str, Any]]) -> dict[str, Any]:
        """The Runner's visualiser config."""

    @abstractmethod
    def visualization_hook(self) -> dict[str, Any]:
        """The default visualisation hook config (drawing off: the suite writes its own)."""

    @abstractmethod
    def ground_truth(self, data_samples: list[Any], kind: str) -> Any:
        """The ground truth of kind ``kind`` a loss asks for (``Input(source="data", tap=kind)``):
        ``gt_seg`` for segmentation; detection's kinds are listed by its task. An unknown kind is
        a :class:`~suite.errors.SuiteError` naming the valid ones."""

    @abstractmethod
    def probe_batch(self, size: tuple[int, int]) -> tuple[Tensor, list[Any]]:
        """A dummy batch, inputs and data samples, to learn the shapes the taps record."""

    def teacher_forward(self, teacher: Any, inputs: Tensor, data_samples: list[Any]) -> Any:
        """The frozen teacher's forward during a distillation step: what fills its taps.
        The whole tensor-mode forward unless a task runs less."""
        return teacher._forward(inputs, data_samples)

    @abstractmethod
    def result_metrics(self, metrics: dict[str, float]) -> dict[str, Any]:
        """The result record's metric keys (``miou``, ``aacc``, ...) from an evaluation."""
