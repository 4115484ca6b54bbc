"""Recorders (modules called several times per forward, tuple outputs, indexed taps) and the
check of each loss's inputs against its ``forward`` at build time."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from suite.distill.mappings import LossMappingError, check_loss_inputs
from suite.distill.recorders import ModuleOutputsRecorder, parse_tap


class _Pyramid(nn.Module):
    """A backbone that returns a tuple of maps and a head shared by every level."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = _Stages()
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return [self.head(f) for f in self.backbone(x)]


class _Stages(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        y = self.stem(x)
        return y, y[..., ::2, ::2], y[..., ::4, ::4]


def test_tuple_outputs_indexed_taps_and_repeated_calls():
    model = _Pyramid()
    rec = ModuleOutputsRecorder(model, {"all": "backbone", "s2": "backbone[1]", "head": "head",
                                        "pair": ["backbone[0]", "backbone[2]"]})
    model(torch.zeros(1, 3, 8, 8))
    assert [t.shape[-1] for t in rec.get("all")] == [8, 4, 2]
    assert rec.get("s2").shape == (1, 4, 4, 4)
    assert [t.shape[-1] for t in rec.get("head")] == [8, 4, 2]  # called once per level
    assert [t.shape[-1] for t in rec.get("pair")] == [8, 2]
    rec.reset()
    with pytest.raises(RuntimeError, match="did not run"):
        rec.get("head")


def test_unknown_module_and_bad_index_are_clear():
    assert parse_tap("backbone[-1]") == ("backbone", -1)
    with pytest.raises(KeyError, match="no module named 'neck'"):
        ModuleOutputsRecorder(_Pyramid(), {"x": "neck[0]"})
    model = _Pyramid()
    rec = ModuleOutputsRecorder(model, {"x": "backbone.stem[0]"})
    model(torch.zeros(1, 3, 4, 4))
    with pytest.raises(RuntimeError, match="not a tuple or list"):
        rec.get("x")


class _Loss(nn.Module):
    def forward(self, preds_S, preds_T, gt=None):
        return preds_S.sum()


def test_loss_inputs_are_checked_against_forward():
    check_loss_inputs("kd", _Loss, ["preds_S", "preds_T"])
    check_loss_inputs("kd", _Loss, ["preds_S", "preds_T", "gt"])
    with pytest.raises(LossMappingError, match=r"unknown argument\(s\) \['logits'\]"):
        check_loss_inputs("kd", _Loss, ["preds_S", "preds_T", "logits"])
    with pytest.raises(LossMappingError, match=r"missing required argument\(s\) \['preds_T'\]"):
        check_loss_inputs("kd", _Loss, ["preds_S"])


def test_every_registered_method_maps_its_losses_correctly():
    from suite.methods import build_method, method_names
    from suite.methods.catalog import loss_class, supported_tasks

    for name in method_names():
        for task in supported_tasks(name):
            for key, spec in build_method(name, {}, task=task).losses.items():
                check_loss_inputs(key, loss_class(spec.type), spec.inputs)
