"""Model families: every model builds at the smoke width, trains a step, and records each
declared tap with the declared channels and stride; unknown names list the valid ones."""

from __future__ import annotations

import pytest
import torch
from mmengine.registry import MODELS
from mmseg.utils import register_all_modules
from seg_batch import batch

from suite.distill.recorders import ModuleOutputsRecorder
from suite.errors import SpecError
from suite.families import FAMILIES, UnknownModelError, family_of, get_family
from suite.models import ARCHS, segmentor_config, tap_specs, taps
from suite.tasks import get_task

register_all_modules(init_default_scope=True)
get_task("segmentation").load_modules()
SMOKE_WIDTH, SIZE, CLASSES = 0.25, 64, 5


def _flat(specs):
    for name, spec in specs.items():
        for i, tap in enumerate(spec if isinstance(spec, list) else [spec]):
            yield f"{name}[{i}]" if isinstance(spec, list) else name, tap


# the detection families are tested in tests/test_families_det.py
SEGMENTATION = sorted(n for n in ARCHS if family_of(n).task == "segmentation")


@pytest.mark.parametrize("name", SEGMENTATION)
def test_model_builds_trains_and_records_declared_taps(name):
    torch.manual_seed(0)
    model = MODELS.build(segmentor_config(name, CLASSES, SMOKE_WIDTH)).train()
    specs = tap_specs(name, SMOKE_WIDTH, CLASSES)
    assert {"logits", "stages", "low_level", "head_feature"} <= set(specs)
    assert len(specs["stages"]) == 4 and 8 in {t.stride for t in specs["stages"]}  # BCD's size
    recorder = ModuleOutputsRecorder(model, taps(name))
    losses = model.loss(*batch())
    total = sum(v for k, v in losses.items() if "loss" in k)
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)
    for tap, spec in _flat(specs):
        base, _, index = tap.partition("[")
        got = recorder.get(base)
        if index:
            got = got[int(index[:-1])]
        assert got.shape[1] == spec.channels, (tap, spec, tuple(got.shape))
        assert SIZE // got.shape[-2] == spec.stride, (tap, spec, tuple(got.shape))
    if "classifier" in specs:
        assert isinstance(dict(model.named_modules())[specs["classifier"].module], torch.nn.Module)


def test_every_model_has_one_family_and_declares_its_source():
    for name in ARCHS:
        fam = family_of(name)
        assert name in fam.variants and fam.notes or fam.name == "resnet_seg"
    assert {f for f in FAMILIES if FAMILIES[f].reimplementation} == {"efficientnet", "espnet"}


def test_unknown_model_and_family_list_the_valid_ones():
    with pytest.raises(UnknownModelError, match="valid: resnet_seg: pspnet_r18.*segformer_b0"):
        family_of("pspnet_r34")
    with pytest.raises(SpecError, match="valid: resnet_seg, segformer"):
        get_family("hrnet")


def test_full_width_params_of_library_models_match_their_sources():
    """mmseg's SegFormer-B0 and Mask2Former-R50, and the EfficientNet-B1 re-implementation
    (torchvision's B1 without its classifier: 6,513,184), at width 1."""
    def params(name: str, classes: int, part: str | None = None) -> int:
        model = MODELS.build(segmentor_config(name, classes, 1.0))
        return sum(p.numel() for p in (getattr(model, part) if part else model).parameters())

    assert params("efficientnet_b1", 21, "backbone") == 6_513_184
    assert abs(params("mask2former_r50", 150) / 1e6 - 44.0) < 0.1
    assert abs(params("segformer_b0", 150) / 1e6 - 3.75) < 0.05
    assert abs(params("espnet", 19) / 1e6 - 0.36) < 0.01  # the paper's 0.36 M at 19 classes


def test_efficientnet_batchnorm_follows_the_cell_norm_with_pytorch_momentum():
    """Every BatchNorm of the re-implemented EfficientNet is the cell's norm (BN, or SyncBN under
    DDP) with eps 1e-3 and momentum 0.1: the reference's momentum 0.01 left a short schedule's
    running statistics at their initial values, and the eval-mode student predicted one class."""
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope("mmseg"):
        model = MODELS.build(segmentor_config("efficientnet_b1", 21, 0.125))
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(norms) > 50
    assert all(m.momentum == 0.1 and m.eps == 1e-3 for m in norms)
    cfg = segmentor_config("efficientnet_b1", 21, 0.125, norm="SyncBN")
    assert cfg["backbone"]["norm_cfg"]["type"] == "SyncBN"
