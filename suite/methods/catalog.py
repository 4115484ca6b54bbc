"""Building registered losses, connectors and methods by name (the plug-ins are loaded first)."""

from __future__ import annotations

from typing import Any

from torch import nn

from suite.methods.options import check_option_types
from suite.methods.plugins import load_plugins, lookup
from suite.methods.registry import CONNECTORS, LOSSES, METHODS
from suite.methods.spec import MethodSpec


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


def build_method(name: str, options: dict[str, Any] | None = None) -> MethodSpec:
    """Build a method bundle; ``"a+b"`` composes the bundles of ``a`` and ``b``.

    ``options`` is keyed by the component method name for composites (``{"bcd": {...}}``) or
    applies to the single method directly.
    """
    options = dict(options or {})
    parts = name.split("+")
    if len(parts) > 1:
        for part in parts:
            check_option_types(part, options.get(part) or {})
        specs = [lookup(METHODS, p, "method")(dict(options.get(p, {}))) for p in parts]
        spec = specs[0]
        for other in specs[1:]:
            spec = spec.merged(other)
        return spec
    check_option_types(name, options)
    return lookup(METHODS, name, "method")(options)


