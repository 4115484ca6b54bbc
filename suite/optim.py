"""A profile's ``optimizer`` section as mmengine's ``optim_wrapper`` and ``param_scheduler``.

Segmentation (mmseg/CIRKD protocol, every table but V): SGD with momentum, poly decay::

    optimizer: {lr: 0.01, momentum: 0.9, weight_decay: 0.0005, power: 0.9, eta_min: 0.0001}

Detection (Table V: the paper's "1x schedule, AdamW"; its values were lost)::

    optimizer: {type: AdamW, lr: 0.0001, weight_decay: 0.05, betas: [0.9, 0.999],
                schedule: step, milestones: [0.667, 0.917], gamma: 0.1,
                warmup_iters: 500, warmup_ratio: 0.001,
                layer_decay: null, drop_path: null}

* ``schedule: step`` -- mmdet's 1x schedule: linear warm-up, then the rate times ``gamma`` at
  the ``milestones`` (fractions of the iterations: epochs 8 and 11 of 12). ``poly`` (default)
  is ``lr (1 - t/T)^power`` down to ``eta_min``.
* ``layer_decay`` d -- layer-wise learning-rate decay over the backbone's stages, counted from
  the top: the last stage (``layer4``) gets lr x d, ``layer3`` x d^2, ... the stem x d^5; neck
  and heads keep lr. ResNet has no finer "layers" than its stages, so the decay is stage-wise
  (an assumption: the paper names the technique, not its granularity or value). Off (null) by
  default.
* ``drop_path`` -- stochastic depth rate, set on backbones whose config has
  ``drop_path_rate`` (SegFormer's MiT); mmdet's and mmseg's ResNets have none, so it does not
  apply to Table V's detectors (recorded, not silently dropped: :func:`apply_drop_path`).
* ``clip_grad`` -- max gradient norm (L2), or absent/null.
"""

from __future__ import annotations

from typing import Any

from suite.errors import SpecError

OPTIMIZERS = ("SGD", "AdamW")
SCHEDULES = ("poly", "step")
# ResNet module names from the top stage down (mmseg's ResNetV1c stem is ``stem``, mmdet's
# ResNet's ``conv1``/``bn1``)
RESNET_STAGES = ("backbone.layer4", "backbone.layer3", "backbone.layer2", "backbone.layer1")
RESNET_STEM = ("backbone.stem", "backbone.conv1", "backbone.bn1")


def _optimizer(opt: dict[str, Any]) -> dict[str, Any]:
    kind = opt.get("type", "SGD")
    if kind not in OPTIMIZERS:
        raise SpecError(f"optimizer type {kind!r} unknown; valid: {', '.join(OPTIMIZERS)}")
    if kind == "SGD":
        return dict(type="SGD", lr=opt["lr"], momentum=opt["momentum"], weight_decay=opt["weight_decay"])
    return dict(type="AdamW", lr=opt["lr"], weight_decay=opt["weight_decay"],
                betas=tuple(opt.get("betas", (0.9, 0.999))))


def layer_decay_keys(decay: float) -> dict[str, dict[str, float]]:
    """mmengine ``paramwise_cfg.custom_keys``: stage-wise lr multipliers d, d^2, ... (the stem last)."""
    keys = {name: dict(lr_mult=decay ** (i + 1)) for i, name in enumerate(RESNET_STAGES)}
    keys.update({name: dict(lr_mult=decay ** (len(RESNET_STAGES) + 1)) for name in RESNET_STEM})
    return keys


def optim_wrapper(opt: dict[str, Any]) -> dict[str, Any]:
    """mmengine's ``optim_wrapper`` config of a profile's optimizer section."""
    wrapper: dict[str, Any] = dict(
        type="OptimWrapper", optimizer=_optimizer(opt),
        clip_grad=dict(max_norm=opt["clip_grad"], norm_type=2) if opt.get("clip_grad") else None)
    decay = opt.get("layer_decay")
    if decay is not None:
        if not 0 < float(decay) <= 1:
            raise SpecError(f"optimizer layer_decay must be in (0, 1], got {decay!r}")
        wrapper["paramwise_cfg"] = dict(custom_keys=layer_decay_keys(float(decay)))
    return wrapper


def param_schedulers(opt: dict[str, Any], iters: int) -> list[dict[str, Any]]:
    """mmengine's ``param_scheduler`` list, iteration-based, over ``iters`` iterations."""
    kind = opt.get("schedule", "poly")
    if kind not in SCHEDULES:
        raise SpecError(f"optimizer schedule {kind!r} unknown; valid: {', '.join(SCHEDULES)}")
    if kind == "poly":
        return [dict(type="PolyLR", eta_min=opt["eta_min"], power=opt["power"], begin=0, end=iters,
                     by_epoch=False)]
    warmup = min(int(opt.get("warmup_iters", 0)), iters)
    milestones = sorted({max(1, int(round(float(m) * iters))) for m in opt.get("milestones", (0.667, 0.917))})
    schedulers = []
    if warmup > 0:
        schedulers.append(dict(type="LinearLR", start_factor=float(opt.get("warmup_ratio", 0.001)),
                               by_epoch=False, begin=0, end=warmup))
    schedulers.append(dict(type="MultiStepLR", by_epoch=False, begin=0, end=iters,
                           milestones=milestones, gamma=float(opt.get("gamma", 0.1))))
    return schedulers


def apply_drop_path(model_cfg: dict[str, Any], rate: float | None) -> bool:
    """Set ``drop_path_rate`` on the backbone when its config has one; whether it applied."""
    if rate is None:
        return False
    backbone = model_cfg.get("backbone") or {}
    if "drop_path_rate" not in backbone:
        return False
    backbone["drop_path_rate"] = float(rate)
    return True
