"""Distillation methods: the registries, the method spec vocabulary and BCD."""

from suite.methods.catalog import (
    build_connector,
    build_loss,
    build_method,
    loss_class,
    loss_names,
    method_names,
)
from suite.methods.registry import CONNECTORS, LOSSES, METHODS, UnknownNameError
from suite.methods.spec import GT_SEG, ConnectorSpec, Input, LossSpec, MethodSpec, S, T

__all__ = [
    "CONNECTORS", "LOSSES", "METHODS", "UnknownNameError", "build_connector", "build_loss",
    "build_method", "loss_class", "loss_names", "method_names", "GT_SEG", "ConnectorSpec", "Input",
    "LossSpec", "MethodSpec", "S", "T",
]
