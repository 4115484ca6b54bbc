"""Model configs for the suite, taken from mmseg's shipped configs and scaled by the profile.

The architectures come from mmseg's own ``_base_/models`` files (loaded with
``mmseg::`` config names, :func:`suite.tasks.library_config`); the suite only applies what mmseg's per-depth configs apply
(``pspnet_r18-d8`` sets depth 18, head channels 128, ...) plus the profile's width multiplier and
the dataset's class count. Module names are therefore exactly mmseg's, which is what the
distillation taps refer to.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from mmengine.config import ConfigDict

from suite.tasks.library import library_config


@dataclass(frozen=True)
class Arch:
    """One segmentation architecture: mmseg base config + depth-specific overrides + taps."""

    base: str  # mmseg base model config, e.g. "mmseg::_base_/models/pspnet_r50-d8.py"
    depth: int
    head_channels: int
    aux_channels: int
    taps: dict[str, str | list[str]]
    c1_channels: int | None = None  # DeepLabV3+ low-level projection width


_RESNET_STAGES = ["backbone.layer1", "backbone.layer2", "backbone.layer3", "backbone.layer4"]

# ``head_feature_preact``: the BatchNorm output of the decode head's last ConvModule, i.e. the
# head feature before its ReLU (TaT distils the DeepLabV3+ decoder there; CrossKD crosses there).
# Recorded by a forward hook on the BN, so the head's ReLUs must not run in place (see
# ``segmentor_config``): an in-place ReLU would overwrite the recorded tensor.
_PSP_TAPS: dict[str, str | list[str]] = {
    "logits": "decode_head.conv_seg",
    "classifier": "decode_head.conv_seg",  # the module itself (CrossKD, C2VKD reuse it)
    "head_feature": "decode_head.bottleneck",
    "head_feature_preact": "decode_head.bottleneck.bn",
    "stages": _RESNET_STAGES,
    "low_level": "backbone.layer1",
}
_DLV3P_TAPS: dict[str, str | list[str]] = {
    "logits": "decode_head.conv_seg",
    "classifier": "decode_head.conv_seg",
    "head_feature": "decode_head.sep_bottleneck",
    "head_feature_preact": "decode_head.sep_bottleneck.1.pointwise_conv.bn",
    "stages": _RESNET_STAGES,
    "low_level": "backbone.layer1",
}

ARCHS: dict[str, Arch] = {
    # mmseg configs/pspnet/pspnet_r{18,50,101}-d8_*.py
    "pspnet_r18": Arch("mmseg::_base_/models/pspnet_r50-d8.py", 18, 128, 64, _PSP_TAPS),
    "pspnet_r50": Arch("mmseg::_base_/models/pspnet_r50-d8.py", 50, 512, 256, _PSP_TAPS),
    "pspnet_r101": Arch("mmseg::_base_/models/pspnet_r50-d8.py", 101, 512, 256, _PSP_TAPS),
    # mmseg configs/deeplabv3plus/deeplabv3plus_r{18,101}-d8_*.py
    "deeplabv3plus_r18": Arch(
        "mmseg::_base_/models/deeplabv3plus_r50-d8.py", 18, 128, 64, _DLV3P_TAPS, c1_channels=12
    ),
    "deeplabv3plus_r101": Arch(
        "mmseg::_base_/models/deeplabv3plus_r50-d8.py", 101, 512, 256, _DLV3P_TAPS, c1_channels=48
    ),
}


class UnknownModelError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def get_arch(name: str) -> Arch:
    if name not in ARCHS:
        raise UnknownModelError(f"unknown model {name!r}; valid: {', '.join(sorted(ARCHS))}")
    return ARCHS[name]


def scaled_channels(channels: int, width: float) -> int:
    """``channels`` times the width multiplier, at least 4 (every network of a cell shrinks alike)."""
    return max(4, int(round(channels * width)))


def stage_channels(depth: int, base: int) -> list[int]:
    """Output channels of the four ResNet stages (BasicBlock x1, Bottleneck x4)."""
    expansion = 1 if depth < 50 else 4
    return [base * expansion * 2**i for i in range(4)]


def segmentor_config(
    name: str,
    num_classes: int,
    width: float = 1.0,
    norm: str = "BN",
    pretrained: str | None = None,
    pretrained_prefix: str | None = None,
) -> dict[str, Any]:
    """The mmseg ``EncoderDecoder`` config dict of architecture ``name``.

    ``width`` multiplies every channel count (1.0 = the paper's model); ``norm`` is ``BN`` for one
    process or ``SyncBN`` under DDP; ``pretrained`` is a local checkpoint for the backbone
    (nothing is ever downloaded); ``pretrained_prefix`` selects the backbone's keys in a
    whole-model checkpoint (``backbone.``).
    """
    arch = get_arch(name)
    cfg = library_config(arch.base)
    model = copy.deepcopy(cfg.model.to_dict())
    norm_cfg = dict(type=norm, requires_grad=True)
    base = scaled_channels(64, width)
    stages = stage_channels(arch.depth, base)

    model["pretrained"] = None
    backbone = model["backbone"]
    backbone.update(depth=arch.depth, stem_channels=base, base_channels=base, norm_cfg=norm_cfg)
    init = dict(type="Pretrained", checkpoint=pretrained)
    if pretrained_prefix:
        init["prefix"] = pretrained_prefix
    backbone["init_cfg"] = init if pretrained else None

    head = model["decode_head"]
    head.update(
        in_channels=stages[3],
        channels=scaled_channels(arch.head_channels, width),
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        # mmcv's ConvModule defaults to an in-place ReLU, which would overwrite the recorded
        # ``head_feature_preact`` tap; out of place the numbers are identical
        act_cfg=dict(type="ReLU", inplace=False),
    )
    if arch.c1_channels is not None:
        head.update(c1_in_channels=stages[0], c1_channels=scaled_channels(arch.c1_channels, width))
    aux = model["auxiliary_head"]
    aux.update(
        in_channels=stages[2],
        channels=scaled_channels(arch.aux_channels, width),
        num_classes=num_classes,
        norm_cfg=norm_cfg,
    )
    return ConfigDict(model)  # attribute access (``test_cfg.mode``) as mmseg expects


def taps(name: str) -> dict[str, str | list[str]]:
    """Tap name -> module name(s) of architecture ``name`` (mmseg's module names)."""
    return dict(get_arch(name).taps)
