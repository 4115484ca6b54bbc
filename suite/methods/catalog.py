"""Building registered losses, connectors and methods by name (the plug-ins are loaded first)."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from suite.errors import SpecError
from suite.methods.options import check_option_types
from suite.methods.plugins import load_plugins, lookup
from suite.methods.registry import CONNECTORS, LOSSES, METHODS
from suite.methods.spec import MethodSpec, method_tasks


def loss_class(name: str) -> type[nn.Module]:
    """The registered loss class ``name`` (its ``__init__`` tells which channels it wants)."""
    return lookup(LOSSES, name, "loss")


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered distillation loss by name, e.g. ``build_loss("cwd", tau=1.0, loss_weight=3.0)``.

    The returned module's ``forward(preds_S, preds_T[, gt])`` returns a scalar (MMRazor's convention).
    """
    return loss_class(name)(**kwargs)


def connector_class(name: str) -> type[nn.Module]:
    """The registered connector class ``name``."""
    return lookup(CONNECTORS, name, "connector")


def build_connector(name: str, **kwargs: Any) -> nn.Module:
    return connector_class(name)(**kwargs)


def method_names() -> list[str]:
    load_plugins()
    return sorted(METHODS.module_dict)


def loss_names() -> list[str]:
    load_plugins()
    return sorted(LOSSES.module_dict)


def supported_tasks(name: str) -> tuple[str, ...]:
    """The tasks method ``name`` serves (a composite ``a+b``: those all its parts serve)."""
    parts = [method_tasks(lookup(METHODS, p, "method")) for p in name.split("+")]
    return tuple(t for t in parts[0] if all(t in other for other in parts[1:]))


def check_task(name: str, task: str) -> None:
    """Raise :class:`SpecError` (one line) unless method ``name`` serves ``task``."""
    for part in name.split("+"):
        tasks = method_tasks(lookup(METHODS, part, "method"))
        if task not in tasks:
            raise SpecError(f"method {part!r} supports the task(s) {', '.join(tasks)}, not "
                            f"{task!r}")


def _build_one(name: str, options: dict[str, Any], task: str) -> MethodSpec:
    factory = lookup(METHODS, name, "method")
    if "task" in inspect.signature(factory).parameters:
        return factory(options, task=task)
    return factory(options)


def build_method(name: str, options: dict[str, Any] | None = None,
                 task: str = "segmentation") -> MethodSpec:
    """Build a method bundle for ``task``; ``"a+b"`` composes the bundles of ``a`` and ``b``.

    ``options`` is keyed by the component method name for composites (``{"bcd": {...}}``) or
    applies to the single method directly. A method that does not serve ``task`` is a
    :class:`~suite.errors.SpecError` naming the tasks it supports.
    """
    options = dict(options or {})
    check_task(name, task)
    parts = name.split("+")
    if len(parts) > 1:
        for part in parts:
            check_option_types(part, options.get(part) or {})
        specs = [_build_one(p, dict(options.get(p, {})), task) for p in parts]
        spec = specs[0]
        for other in specs[1:]:
            spec = spec.merged(other)
        return spec
    check_option_types(name, options)
    return _build_one(name, options, task)
