"""Inference speed of the deployed network: frames per second at batch 1 (Table V's FPS column).

:func:`measure_fps` times the network's inference path on one batch:

* the network in eval mode under ``torch.no_grad()``; every submodule's own training flag is put
  back afterwards (a frozen BatchNorm in a training model stays frozen);
* an mmengine model (mmseg segmentor, mmdet detector) takes an ``(inputs, data_samples)`` batch
  (the task's :meth:`~suite.tasks.base.Task.probe_batch`): its data preprocessor runs once,
  untimed, in test mode (normalisation, padding, the ``batch_input_shape`` metainfo detectors
  need), then each pass is ``model(inputs, data_samples, mode="predict")``, what mmengine's
  ``val_step`` runs after the preprocessor: the forward plus the task's post-processing (mmseg's
  resize to the original shape and argmax, mmdet's box decoding and NMS). The data
  preprocessor, data loading and the metric are not timed;
* a plain ``nn.Module`` takes a tensor: each pass is ``model(inputs)``;
* ``warmup`` untimed passes first (allocator, cuDNN and thread-pool start-up), then ``iters``
  passes timed together with ``time.perf_counter``; on CUDA ``torch.cuda.synchronize`` runs
  before the clock starts and before it stops, so queued kernels are counted;
* the deployed network has no distillation taps: the forward hooks on the network's modules
  (a distillation cell's tap recorders, whose copies an exported student still carries) are set
  aside during the passes and put back afterwards. Forward *pre*-hooks stay (they can be part of
  the computation, as weight normalisation's are).

The record, ``fps_record`` of ``result.json`` (:func:`cell_fps`; ``fps`` beside it is the number,
what the report's FPS column reads, like ``params_m`` and ``flops_g``)::

    {"fps": images per second, "ms_per_image": milliseconds, "warmup": N, "iters": M,
     "batch": 1, "input_size": [h, w], "device": "cpu" | "cuda:0 <device name>",
     "threads": torch.get_num_threads()}

``input_size`` is the size of the tensor the network receives (after the preprocessor, which
pads a detector's batch to its size divisor); ``threads`` is torch's intra-op thread count (the
CPU number depends on it: ``SUITE_THREADS``).

A profile sets the passes with ``fps: {warmup: N, iters: M}`` (defaults
:data:`DEFAULT_WARMUP`/:data:`DEFAULT_ITERS`, small enough for CPU smoke runs; a profile whose
numbers are compared with the paper's, ``paper``, should use about ``{warmup: 10, iters: 50}``),
and ``fps: false`` turns the measurement off (no ``fps`` keys in the result).
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from suite.errors import SpecError

DEFAULT_WARMUP = 2
DEFAULT_ITERS = 5
_HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called")


@dataclass(frozen=True)
class FpsSettings:
    """How many untimed (``warmup``) and timed (``iters``) passes a measurement makes."""

    warmup: int = DEFAULT_WARMUP
    iters: int = DEFAULT_ITERS


def fps_settings(value: Any) -> FpsSettings | None:
    """The settings of a config's ``fps`` entry: ``false`` -> None (not measured); absent
    (None) or ``true`` -> the defaults; a mapping with ``warmup`` (>= 0) and/or ``iters`` (>= 1).
    Anything else is a :class:`~suite.errors.SpecError`."""
    if value is False:
        return None
    if value is None or value is True:
        return FpsSettings()
    if not isinstance(value, Mapping):
        raise SpecError(f"fps must be false or a mapping {{warmup: N, iters: M}}, not {value!r}")
    unknown = sorted(set(value) - {"warmup", "iters"})
    if unknown:
        raise SpecError(f"fps: unknown key(s) {', '.join(map(str, unknown))}; valid: warmup, iters")
    warmup = value.get("warmup", DEFAULT_WARMUP)
    iters = value.get("iters", DEFAULT_ITERS)
    _check_counts(warmup, iters)
    return FpsSettings(int(warmup), int(iters))


def _check_counts(warmup: Any, iters: Any) -> None:
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise SpecError(f"fps warmup must be an integer >= 0, not {warmup!r}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise SpecError(f"fps iters must be an integer >= 1, not {iters!r}")


def _device_of(model: nn.Module) -> torch.device:
    """Where the model's weights are (the CPU for a model without any)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def device_name(device: torch.device) -> str:
    """``cpu``, or ``cuda:<index> <device name>`` (``cuda:0 NVIDIA H200``)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} {torch.cuda.get_device_name(index)}"
    return str(device)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode; each submodule's own training flag is put back on exit."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


@contextlib.contextmanager
def _hooks_set_aside(model: nn.Module) -> Iterator[None]:
    """The forward hooks of ``model``'s modules set aside (the same dicts are put back on exit,
    so a hook handle removed meanwhile still finds its entry)."""
    kept: list[tuple[nn.Module, str, Any]] = []
    for module in model.modules():
        for attr in _HOOK_DICTS:
            hooks = getattr(module, attr, None)
            if hooks:
                kept.append((module, attr, hooks))
                setattr(module, attr, type(hooks)() if isinstance(hooks, OrderedDict) else {})
    try:
        yield
    finally:
        for module, attr, hooks in kept:
            setattr(module, attr, hooks)


def _is_mmengine(model: nn.Module) -> bool:
    return hasattr(model, "data_preprocessor") and callable(getattr(model, "predict", None))


def _pass(model: nn.Module, batch: Tensor | tuple[Tensor | list[Tensor], list[Any]],
          device: torch.device) -> tuple[Callable[[], Any], Tensor]:
    """One inference pass of ``model`` on ``batch`` (preprocessed here, once) and the tensor
    the network receives."""
    if _is_mmengine(model):
        if not isinstance(batch, tuple) or len(batch) != 2:
            raise SpecError(f"{type(model).__name__} is an mmengine model: measure_fps needs an "
                            "(inputs, data_samples) batch")
        inputs, samples = batch
        data = model.data_preprocessor({"inputs": list(inputs), "data_samples": samples}, False)
        x, samples = data["inputs"], data["data_samples"]
        return (lambda: model(x, samples, mode="predict")), x
    if not isinstance(batch, Tensor):
        raise SpecError(f"{type(model).__name__} is a plain module: measure_fps needs an input "
                        f"tensor, not a {type(batch).__name__}")
    x = batch.to(device)
    return (lambda: model(x)), x


def measure_fps(model: nn.Module, batch: Tensor | tuple[Tensor | list[Tensor], list[Any]],
                warmup: int = DEFAULT_WARMUP, iters: int = DEFAULT_ITERS) -> dict[str, Any]:
    """Frames per second of ``model``'s inference on ``batch`` (module docstring).

    ``model`` is measured where its weights are (the device the Runner put it on; nothing is
    moved but the inputs). ``batch``: ``(inputs, data_samples)`` for an mmengine model (inputs an
    N x 3 x H x W tensor or a list of 3 x H x W tensors), an input tensor for a plain module; the
    suite measures batch 1. ``warmup`` untimed passes, then ``iters`` timed ones. Returns the
    record (``fps``, ``ms_per_image``, ``warmup``, ``iters``, ``batch``, ``input_size``,
    ``device``, ``threads``); the model's modes and hooks are as before.
    """
    _check_counts(warmup, iters)
    device = _device_of(model)
    cuda = device.type == "cuda"
    with _eval_mode(model), _hooks_set_aside(model), torch.no_grad():
        run, x = _pass(model, batch, device)
        for _ in range(warmup):
            run()
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(iters):
            run()
        if cuda:
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
    images = iters * int(x.shape[0])
    return {
        "fps": round(images / elapsed, 2),
        "ms_per_image": round(1000.0 * elapsed / images, 3),
        "warmup": warmup,
        "iters": iters,
        "batch": int(x.shape[0]),
        "input_size": [int(x.shape[-2]), int(x.shape[-1])],
        "device": device_name(device),
        "threads": torch.get_num_threads(),
    }


def cell_fps(model: nn.Module, config: dict[str, Any],
             settings: FpsSettings | None) -> dict[str, Any]:
    """The result keys of a cell's deployed network: ``fps`` (images per second) and
    ``fps_record`` (:func:`measure_fps`'s record), measured on the task's probe batch (batch 1)
    at the profile's crop with ``settings`` (:func:`fps_settings` of the config's ``fps``);
    none when ``settings`` is None (``fps: false``)."""
    from suite.tasks import task_of

    if settings is None:
        return {}
    batch = task_of(config).probe_batch(tuple(config["crop"]))
    record = measure_fps(model, batch, settings.warmup, settings.iters)
    return {"fps": record["fps"], "fps_record": record}
