"""SyncBN for several ranks on CPU, SyncBN layers run locally for one rank's own work, and the
export of a network trained with SyncBN (plain BatchNorm again).

torch's ``SyncBatchNorm`` synchronises CUDA tensors only; :class:`CPUSyncBatchNorm` (registered
as ``CPUSyncBN``, chosen by :func:`suite.dist.norm_type`) does the same over Gloo.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from mmengine.hooks import Hook
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from suite.dist import CPU_SYNC_BN


def norm_layers(model: nn.Module) -> dict[str, int]:
    """``{class name: count}`` of the BatchNorm layers of ``model``."""
    out: dict[str, int] = {}
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            out[type(module).__name__] = out.get(type(module).__name__, 0) + 1
    return out


def exported(model: nn.Module) -> nn.Module:
    """The deployable copy of a trained network: SyncBN layers (torch's and
    :class:`CPUSyncBatchNorm`) back to plain BatchNorm (mmengine's ``_BatchNormXd``)."""
    from mmengine.model import revert_sync_batchnorm

    return revert_sync_batchnorm(_revert_cpu(copy.deepcopy(model)))


def _revert_cpu(module: nn.Module) -> nn.Module:
    """``module`` with every :class:`CPUSyncBatchNorm` replaced by a BatchNorm holding the same
    parameters and buffers."""
    from mmengine.model.utils import _BatchNormXd

    if isinstance(module, CPUSyncBatchNorm):
        plain = _BatchNormXd(module.num_features, module.eps, module.momentum, module.affine,
                             module.track_running_stats)
        plain.load_state_dict(module.state_dict())
        plain.train(module.training)
        return plain
    for name, child in module.named_children():
        module.add_module(name, _revert_cpu(child))
    return module




class _AllReduceSum(torch.autograd.Function):
    """Σ over ranks; the gradient of each rank's input is the Σ over ranks of the gradients of
    the output (every rank's loss depends on every rank's contribution)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, group: Any) -> Tensor:  # noqa: D102
        ctx.group = group
        out = x.clone()
        torch_dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        out = grad.clone()
        torch_dist.all_reduce(out, group=ctx.group)
        return out, None


def _sync_stats(x: Tensor, group: Any) -> tuple[Tensor, Tensor, Tensor]:
    """Mean and biased variance per channel over every rank's batch, and the total count.

    Each rank contributes ``Σx``, ``Σx²`` and its pixel count n_r; one differentiable all-reduce
    (sum) gives ``μ = Σ_r Σx / N`` and ``σ² = Σ_r Σx² / N − μ²`` with ``N = Σ_r n_r``.
    """
    dims = [0, *range(2, x.dim())]
    count = torch.full((1,), x.numel() // x.size(1), dtype=x.dtype)
    local = torch.cat([x.sum(dims), (x * x).sum(dims), count])
    total = _AllReduceSum.apply(local, group or torch_dist.group.WORLD)
    c = x.size(1)
    n = total[-1]
    mean = total[:c] / n
    var = (total[c:2 * c] / n - mean * mean).clamp_min(0)
    return mean, var, n


class CPUSyncBatchNorm(_BatchNorm):
    """SyncBN on CPU (Gloo): torch's ``SyncBatchNorm`` refuses CPU tensors, and DDP refuses
    ``SyncBatchNorm`` instances in a CPU module, so this is a BatchNorm of its own.

    In training with an initialised process group of more than one rank, the batch statistics
    are those of all ranks' batches together (:func:`_sync_stats`; its all-reduce carries the
    gradient back to every rank, as torch's CUDA SyncBN does); otherwise plain BatchNorm.
    Every rank must run the same forward passes through it (it is a collective). Same
    parameters and buffers as BatchNorm: its state dict loads into one.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 process_group: Any = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group

    def _check_input_dim(self, input: Tensor) -> None:  # noqa: A002 - torch's name
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 - torch's name
        if not (self.training and torch_dist.is_available() and torch_dist.is_initialized()
                and torch_dist.get_world_size(self.process_group) > 1):
            return super().forward(input)
        mean, var, n = _sync_stats(input, self.process_group)
        if self.track_running_stats and self.running_mean is not None:
            self._update_running(mean, var, n)
        shape = [1, -1] + [1] * (input.dim() - 2)
        out = (input - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out

    def _update_running(self, mean: Tensor, var: Tensor, n: Tensor) -> None:
        """Running statistics as BatchNorm keeps them (unbiased variance)."""
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                        else self.momentum)
            unbiased = var * (n / (n - 1).clamp_min(1))
            self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
            self.running_var.mul_(1 - momentum).add_(unbiased.detach(), alpha=momentum)


def _local_forward(module: nn.modules.batchnorm._BatchNorm, x: Tensor) -> Tensor:
    """Plain BatchNorm of one rank's batch (a SyncBN layer without its collective)."""
    return F.batch_norm(x, module.running_mean, module.running_var, module.weight, module.bias,
                        module.training or module.running_mean is None,
                        0.0 if module.momentum is None else module.momentum, module.eps)


class local_batchnorm:  # noqa: N801 - used as a context manager
    """Within the block, the SyncBN layers of ``model`` normalise each rank's batch alone (no
    collective): for work one rank does by itself, such as a diagnostic forward pass."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, SYNC_TYPES)]

    def __enter__(self) -> None:
        for m in self.layers:
            m.forward = (lambda x, m=m: _local_forward(m, x))  # type: ignore[method-assign]

    def __exit__(self, *exc: object) -> None:
        for m in self.layers:
            del m.forward


SYNC_TYPES = (nn.SyncBatchNorm, CPUSyncBatchNorm)


def register() -> None:
    """Register :class:`CPUSyncBatchNorm` as ``CPUSyncBN`` in mmengine's model registry."""
    from mmengine.registry import MODELS

    if MODELS.get(CPU_SYNC_BN) is None:
        MODELS.register_module(CPU_SYNC_BN, module=CPUSyncBatchNorm)


class RankStartHook(Hook):
    """Prints, on every rank, the iteration it starts training from (after any resume)."""

    def before_train(self, runner: Any) -> None:
        # the job's own output, not the cell's attempt log that library prints are sent to
        print(f"rank {runner.rank}/{runner.world_size}: starts at iter {runner.iter}", flush=True,
              file=sys.__stdout__)
