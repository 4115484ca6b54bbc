"""A profile's optimizer section: SGD + poly (segmentation), AdamW + 1x step (detection)."""

from __future__ import annotations

import pytest
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS
from torch import nn

from suite.errors import SpecError
from suite.optim import apply_drop_path, optim_wrapper, param_schedulers

SGD = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "power": 0.9, "eta_min": 1e-4}
ADAMW = {"type": "AdamW", "lr": 1e-4, "weight_decay": 0.05, "schedule": "step", "warmup_iters": 10,
         "warmup_ratio": 0.001, "milestones": [0.667, 0.917], "gamma": 0.1}


class TinyResNet(nn.Module):
    """Module names as mmdet's ResNet inside a detector (``backbone.conv1``, ``backbone.layerN``)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.conv1 = nn.Conv2d(3, 4, 3)
        for i in range(1, 5):
            setattr(self.backbone, f"layer{i}", nn.Conv2d(4, 4, 1))
        self.bbox_head = nn.Conv2d(4, 2, 1)


def _lrs(opt: dict, iters: int) -> list[float]:
    model = TinyResNet()
    wrapper = build_optim_wrapper(model, optim_wrapper(opt))
    scheds = [PARAM_SCHEDULERS.build(dict(s, optimizer=wrapper)) for s in param_schedulers(opt, iters)]
    out = []
    for _ in range(iters):
        out.append(wrapper.optimizer.param_groups[0]["lr"])
        wrapper.optimizer.step()
        for s in scheds:
            s.step()
    return out


def test_sgd_poly_is_the_segmentation_protocol():
    cfg = optim_wrapper(SGD)
    assert cfg["optimizer"] == dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=5e-4)
    assert cfg["clip_grad"] is None
    lrs = _lrs(SGD, 100)
    assert lrs[0] == pytest.approx(0.01)
    # mmengine's PolyLR: total_iters = end - begin - 1 (the last iteration reaches eta_min)
    expected = (0.01 - 1e-4) * (1 - 50 / 99) ** 0.9 + 1e-4
    assert lrs[50] == pytest.approx(expected, rel=1e-3)


def test_adamw_step_schedule_warms_up_and_drops_at_the_milestones():
    cfg = optim_wrapper(ADAMW)
    assert cfg["optimizer"]["type"] == "AdamW" and cfg["optimizer"]["betas"] == (0.9, 0.999)
    lrs = _lrs(ADAMW, 120)
    assert lrs[0] == pytest.approx(1e-7, rel=1e-3)  # warm-up from lr x 0.001
    assert lrs[20] == pytest.approx(1e-4)
    assert lrs[79] == pytest.approx(1e-4) and lrs[81] == pytest.approx(1e-5)  # 0.667 x 120 = 80
    assert lrs[111] == pytest.approx(1e-6)  # 0.917 x 120 = 110


def test_layer_decay_scales_the_backbone_stages_from_the_top():
    model = TinyResNet()
    wrapper = build_optim_wrapper(model, optim_wrapper({**ADAMW, "layer_decay": 0.5}))
    lr_of = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in wrapper.optimizer.param_groups:
        for p in group["params"]:
            lr_of[names[id(p)]] = group["lr"]
    assert lr_of["bbox_head.weight"] == pytest.approx(1e-4)
    assert lr_of["backbone.layer4.weight"] == pytest.approx(0.5e-4)
    assert lr_of["backbone.layer1.weight"] == pytest.approx(1e-4 * 0.5 ** 4)
    assert lr_of["backbone.conv1.weight"] == pytest.approx(1e-4 * 0.5 ** 5)


def test_bad_optimizer_sections_are_clear_errors():
    with pytest.raises(SpecError, match="optimizer type 'Adam' unknown; valid: SGD, AdamW"):
        optim_wrapper({**ADAMW, "type": "Adam"})
    with pytest.raises(SpecError, match="schedule 'cosine' unknown"):
        param_schedulers({**SGD, "schedule": "cosine"}, 10)
    with pytest.raises(SpecError, match="layer_decay must be in"):
        optim_wrapper({**ADAMW, "layer_decay": 1.5})


def test_drop_path_applies_only_where_the_backbone_has_it():
    mit = {"backbone": {"type": "MixVisionTransformer", "drop_path_rate": 0.1}}
    assert apply_drop_path(mit, 0.2) and mit["backbone"]["drop_path_rate"] == 0.2
    resnet = {"backbone": {"type": "ResNet", "depth": 18}}
    assert not apply_drop_path(resnet, 0.2) and "drop_path_rate" not in resnet["backbone"]
    assert not apply_drop_path(mit, None)
