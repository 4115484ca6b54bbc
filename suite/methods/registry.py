"""Registries of distillation losses, connectors and methods (mmengine ``Registry`` objects).

``LOSSES`` and ``CONNECTORS`` hold ``nn.Module`` classes built from keyword arguments;
``METHODS`` holds factories ``(options: dict) -> MethodSpec``. The competing methods live in the
top-level ``baselines`` package and register themselves on import; BCD lives in
``suite.methods.bcd``.
"""

from __future__ import annotations

from typing import Any

from mmengine.registry import Registry
from torch import nn

from suite.methods.spec import MethodSpec

LOSSES = Registry("suite distillation loss")
CONNECTORS = Registry("suite distillation connector")
METHODS = Registry("suite distillation method")


class UnknownNameError(KeyError):
    """A loss, connector or method name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def _load_all() -> None:
    """Import the modules whose import registers every loss, connector and method."""
    import baselines  # noqa: F401
    import suite.distill.connectors  # noqa: F401
    import suite.methods.bcd  # noqa: F401


def _lookup(registry: Registry, name: str, what: str) -> Any:
    _load_all()
    obj = registry.get(name)
    if obj is None:
        valid = ", ".join(sorted(registry.module_dict))
        raise UnknownNameError(f"unknown {what} {name!r}; valid: {valid}")
    return obj


def loss_class(name: str) -> type[nn.Module]:
    """The registered loss class ``name`` (its ``__init__`` tells which channels it wants)."""
    return _lookup(LOSSES, name, "loss")


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered distillation loss by name, e.g. ``build_loss("cwd", tau=1.0, loss_weight=3.0)``.

    The returned module's ``forward(preds_S, preds_T[, gt])`` returns a scalar (MMRazor's convention).
    """
    return loss_class(name)(**kwargs)


def build_connector(name: str, **kwargs: Any) -> nn.Module:
    return _lookup(CONNECTORS, name, "connector")(**kwargs)


def method_names() -> list[str]:
    _load_all()
    return sorted(METHODS.module_dict)


def loss_names() -> list[str]:
    _load_all()
    return sorted(LOSSES.module_dict)


def build_method(name: str, options: dict[str, Any] | None = None) -> MethodSpec:
    """Build a method bundle; ``"a+b"`` composes the bundles of ``a`` and ``b``.

    ``options`` is keyed by the component method name for composites (``{"bcd": {...}}``) or
    applies to the single method directly.
    """
    options = dict(options or {})
    parts = name.split("+")
    if len(parts) > 1:
        specs = [_lookup(METHODS, p, "method")(dict(options.get(p, {}))) for p in parts]
        spec = specs[0]
        for other in specs[1:]:
            spec = spec.merged(other)
        return spec
    return _lookup(METHODS, name, "method")(options)
