"""The inference-speed measurement (suite.fps): warm-up left out of the clock, the pass count,
eval mode and no_grad during the passes, modes and hooks put back, the record, the profile's
``fps`` settings, and a tiny mmseg segmentor through its predict path."""

from __future__ import annotations

import time
from unittest import mock

import pytest
import torch
from mmengine.registry import MODELS, init_default_scope
from torch import nn

from suite.errors import SpecError
from suite.fps import FpsSettings, cell_fps, fps_settings, measure_fps


class Sleeper(nn.Module):
    """Sleeps ``slow`` seconds on its first ``first`` calls and ``fast`` seconds afterwards;
    asserts eval mode and no autograd on every call and counts the calls."""

    def __init__(self, first: int, slow: float = 0.2, fast: float = 0.01) -> None:
        super().__init__()
        self.first, self.slow, self.fast = first, slow, fast
        self.conv = nn.Conv2d(3, 4, 1)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert not self.training and not self.conv.training, "not in eval mode"
        assert not torch.is_grad_enabled(), "autograd on"
        self.calls += 1
        time.sleep(self.slow if self.calls <= self.first else self.fast)
        return self.conv(x)


def test_warmup_passes_are_not_timed_and_every_pass_runs():
    model = Sleeper(first=2)
    rec = measure_fps(model, torch.zeros(1, 3, 8, 12), warmup=2, iters=5)
    assert model.calls == 2 + 5
    # timed: five 10 ms passes; with the two 200 ms warm-up passes it would be >= 90 ms each
    assert 10.0 <= rec["ms_per_image"] < 50.0
    assert rec["fps"] == pytest.approx(1000.0 / rec["ms_per_image"], rel=1e-3)
    assert (rec["warmup"], rec["iters"], rec["batch"]) == (2, 5, 1)


def test_record_names_input_size_device_and_threads():
    rec = measure_fps(Sleeper(first=0, fast=0.0), torch.zeros(1, 3, 8, 12), warmup=0, iters=1)
    assert rec["input_size"] == [8, 12]
    assert rec["device"] == "cpu" and rec["threads"] == torch.get_num_threads()
    assert set(rec) == {"fps", "ms_per_image", "warmup", "iters", "batch", "input_size",
                        "device", "threads"}


def test_training_modes_and_grad_mode_are_put_back():
    model = Sleeper(first=0, fast=0.0).train()
    model.conv.eval()  # a submodule frozen on purpose stays so
    measure_fps(model, torch.zeros(1, 3, 4, 4), warmup=1, iters=1)
    assert model.training and not model.conv.training
    assert torch.is_grad_enabled()
    model.eval()
    measure_fps(model, torch.zeros(1, 3, 4, 4), warmup=0, iters=1)
    assert not model.training


def test_forward_hooks_are_set_aside_during_the_passes_and_put_back():
    model = Sleeper(first=0, fast=0.0)
    seen = []
    handle = model.conv.register_forward_hook(lambda *_: seen.append(1))
    measure_fps(model, torch.zeros(1, 3, 4, 4), warmup=1, iters=2)
    assert seen == []
    with torch.no_grad():
        model.eval()
        model(torch.zeros(1, 3, 4, 4))
    assert seen == [1]
    handle.remove()


def test_bad_counts_and_batches_are_one_line_errors():
    model = Sleeper(first=0, fast=0.0)
    with pytest.raises(SpecError, match="iters must be an integer >= 1"):
        measure_fps(model, torch.zeros(1, 3, 4, 4), warmup=1, iters=0)
    with pytest.raises(SpecError, match="warmup must be an integer >= 0"):
        measure_fps(model, torch.zeros(1, 3, 4, 4), warmup=-1, iters=1)
    with pytest.raises(SpecError, match="plain module: measure_fps needs an input tensor"):
        measure_fps(model, (torch.zeros(1, 3, 4, 4), []), warmup=0, iters=1)
    assert model.calls == 0


def test_profile_settings():
    assert fps_settings(None) == FpsSettings(2, 5) == fps_settings(True)
    assert fps_settings(False) is None
    assert fps_settings({"warmup": 10, "iters": 50}) == FpsSettings(10, 50)
    assert fps_settings({"iters": 3}) == FpsSettings(2, 3)
    with pytest.raises(SpecError, match="unknown key"):
        fps_settings({"repeats": 3})
    with pytest.raises(SpecError, match="iters must be"):
        fps_settings({"iters": 0})
    with pytest.raises(SpecError, match="fps must be false or a mapping"):
        fps_settings(5)


@pytest.fixture(scope="module")
def segmentor() -> nn.Module:
    import mmseg.models  # noqa: F401  (registers the segmentors)

    from suite.models import segmentor_config

    init_default_scope("mmseg")
    torch.manual_seed(0)
    return MODELS.build(segmentor_config("pspnet_r18", 21, 0.125)).train()


def test_mmseg_segmentor_is_timed_through_predict_after_its_preprocessor(segmentor):
    from suite.distill.recorders import ModuleOutputsRecorder
    from suite.models import taps
    from suite.tasks import get_task

    recorder = ModuleOutputsRecorder(segmentor, {"logits": taps("pspnet_r18")["logits"]})
    modes = [m.training for m in segmentor.modules()]
    with mock.patch.object(segmentor, "predict", wraps=segmentor.predict) as predict:
        rec = measure_fps(segmentor, get_task("segmentation").probe_batch((32, 48)), warmup=1,
                          iters=2)
    assert predict.call_count == 3
    inputs, samples = predict.call_args.args
    # the preprocessor ran (zeros normalised by ImageNet's mean and std: all negative) ...
    assert inputs.shape == (1, 3, 32, 48) and bool((inputs < 0).all())
    # ... and predict's post-processing wrote the label map at the original size
    assert samples[0].pred_sem_seg.data.shape == (1, 32, 48)
    assert rec["input_size"] == [32, 48] and rec["batch"] == 1 and rec["fps"] > 0
    assert [m.training for m in segmentor.modules()] == modes
    assert recorder.outputs == {}  # the tap recorder saw none of the passes
    segmentor.eval()
    with torch.no_grad():
        segmentor._forward(torch.zeros(1, 3, 32, 32))
    assert len(recorder.outputs) == 1  # and records again afterwards
    recorder.remove()
    segmentor.train()


def test_cell_keys_use_the_task_probe_batch_at_the_crop(segmentor):
    config = {"task": "segmentation", "crop": [32, 32]}
    keys = cell_fps(segmentor, config, FpsSettings(warmup=0, iters=1))
    assert set(keys) == {"fps", "fps_record"} and keys["fps"] == keys["fps_record"]["fps"]
    assert keys["fps_record"]["input_size"] == [32, 32] and keys["fps_record"]["iters"] == 1
    assert cell_fps(segmentor, config, fps_settings(False)) == {}
