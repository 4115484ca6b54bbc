"""Registries of distillation losses, connectors and methods (mmengine ``Registry`` objects).

``LOSSES`` and ``CONNECTORS`` hold ``nn.Module`` classes built from keyword arguments;
``METHODS`` holds factories ``(options: dict) -> MethodSpec``. This module only holds the
registries: the plug-ins (the top-level ``baselines`` package, ``suite.methods.bcd``,
``suite.distill.connectors``) register themselves here on import, and
:mod:`suite.methods.catalog` loads them and looks names up, so no plug-in imports the code that
loads it.
"""

from __future__ import annotations

from mmengine.registry import Registry

LOSSES = Registry("suite distillation loss")
CONNECTORS = Registry("suite distillation connector")
METHODS = Registry("suite distillation method")


class UnknownNameError(KeyError):
    """A loss, connector or method name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])
