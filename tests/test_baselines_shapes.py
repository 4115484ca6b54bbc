"""Every competing method on PSPNet-R18- and DeepLabV3+-R18-shaped taps: scalar output, gradients
reach the student inputs and the loss's own trainable parts, never the teacher inputs."""

from __future__ import annotations

import pytest
import torch
from loss_fixtures import NUM_CLASSES, build_spec_loss, make_gt, make_taps, spec_inputs
from torch import nn

from baselines._common import HolisticAdversarialLoss
from suite.methods.registry import METHODS

NAMES = ("kd", "skd", "sckd", "cirkd", "ifd", "fgkd", "cwt", "slimseg", "bglsseg", "fam",
         "crosskd", "bpkd", "ifvd", "tat", "sstkd", "c2vkd", "cwd")
# smaller queues / critic keep this file fast; the formulas are unchanged
FAST = {"cirkd": {"pixel_memory_size": 256, "region_memory_size": 64},
        "skd": {"d_conv_dim": 8}, "ifvd": {"d_conv_dim": 8}, "sstkd": {"d_conv_dim": 8}}


def _leaves(x: object) -> list[torch.Tensor]:
    return list(x) if isinstance(x, list) else [x] if isinstance(x, torch.Tensor) else []


@pytest.mark.parametrize("arch", ["pspnet", "deeplabv3plus"])
@pytest.mark.parametrize("name", NAMES)
def test_method_losses_on_model_shaped_taps(name: str, arch: str) -> None:
    torch.manual_seed(0)
    spec = METHODS.get(name)(FAST.get(name, {}))
    classifier = nn.Conv2d(64, NUM_CLASSES, 1)  # teacher conv_seg (its params must stay untouched)
    for loss_name, loss_spec in spec.losses.items():
        taps_s, taps_t = make_taps(arch, "student", n=2), make_taps(arch, "teacher", n=2)
        loss = build_spec_loss(loss_spec, taps_s, taps_t, classifier).train()
        before = [p.detach().clone() for p in loss.parameters()]
        args = spec_inputs(loss_spec, taps_s, taps_t, make_gt(2))
        out = loss(**args)
        assert out.dim() == 0 and torch.isfinite(out), loss_name
        out.backward()
        student_grads = []
        for arg, inp in loss_spec.inputs.items():
            for t in _leaves(args[arg]):
                if inp.source == "teacher":
                    assert t.grad is None, (loss_name, arg)
                elif inp.source == "student":
                    student_grads.append(t.grad)
        assert any(g is not None and g.abs().sum() > 0 for g in student_grads), loss_name
        assert all(g is None or torch.isfinite(g).all() for g in student_grads), loss_name
        assert all(p.grad is None for p in classifier.parameters()), loss_name
        params = list(loss.parameters())
        if isinstance(loss, HolisticAdversarialLoss):  # the critic steps its own Adam in forward
            assert any(not torch.equal(a, b.detach()) for a, b in zip(before, params))
            assert all(p.grad is None for p in params)
        elif params:
            assert all(p.grad is not None for p in params if p.requires_grad), loss_name
            assert any(p.grad.abs().sum() > 0 for p in params), loss_name


@pytest.mark.parametrize("name", ["kd", "cwd", "skd", "ifvd", "tat", "bpkd"])
def test_methods_run_without_gradients_in_eval(name: str) -> None:
    spec = METHODS.get(name)(FAST.get(name, {}))
    taps_s, taps_t = make_taps("pspnet", "student"), make_taps("pspnet", "teacher")
    for loss_spec in spec.losses.values():
        loss = build_spec_loss(loss_spec, taps_s, taps_t).eval()
        with torch.no_grad():
            out = loss(**spec_inputs(loss_spec, taps_s, taps_t, make_gt(2)))
        assert out.dim() == 0 and torch.isfinite(out)
