"""Loading the plug-ins that register losses, connectors and methods, and name lookups.

The plug-ins (the top-level ``baselines`` package, ``suite.methods.bcd``,
``suite.distill.connectors``) import only :mod:`suite.methods.registry`, never this module.
"""

from __future__ import annotations

from typing import Any

from mmengine.registry import Registry

from suite.methods.registry import UnknownNameError


def load_plugins() -> None:
    """Import the modules whose import registers every loss, connector and method."""
    import baselines  # noqa: F401
    import suite.distill.connectors  # noqa: F401
    import suite.methods.bcd  # noqa: F401


def lookup(registry: Registry, name: str, what: str) -> Any:
    """The object registered as ``name``, or :class:`UnknownNameError` listing the valid names."""
    load_plugins()
    obj = registry.get(name)
    if obj is None:
        valid = ", ".join(sorted(registry.module_dict))
        raise UnknownNameError(f"unknown {what} {name!r}; valid: {valid}")
    return obj
