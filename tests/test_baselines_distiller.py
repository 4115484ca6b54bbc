"""Every competing method inside the suite's DistillationModel (tiny PSPNet-R18 <- R101 and
DeepLabV3+-R18 <- R101, random weights): it builds from the probed shapes, one training step
runs, distillation losses are finite, and no teacher parameter receives a gradient."""

from __future__ import annotations

import dataclasses

import pytest
import torch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

NAMES = ("kd", "skd", "sckd", "cirkd", "ifd", "fgkd", "cwt", "slimseg", "bglsseg", "fam",
         "crosskd", "bpkd", "ifvd", "tat", "sstkd", "c2vkd", "cwd")
FAST = {"cirkd": {"pixel_memory_size": 256, "region_memory_size": 64},
        "skd": {"d_conv_dim": 8}, "ifvd": {"d_conv_dim": 8}, "sstkd": {"d_conv_dim": 8}}
PAIRS = {"pspnet": ("pspnet_r18", "pspnet_r101"),
         "deeplabv3plus": ("deeplabv3plus_r18", "deeplabv3plus_r101")}


@pytest.fixture(scope="module")
def distill():
    dm = pytest.importorskip("suite.distill.model")
    models = pytest.importorskip("suite.models")
    from mmengine.registry import init_default_scope

    init_default_scope("mmseg")
    import mmseg.models  # noqa: F401  (registers the segmentors)

    return dm, models


def _batch(n: int = 2, size: int = 64):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    samples = []
    g = torch.Generator().manual_seed(0)
    for _ in range(n):
        d = SegDataSample()
        coarse = torch.randint(0, 21, (1, 1, 4, 4), generator=g).float()
        gt = torch.nn.functional.interpolate(coarse, size=(size, size), mode="nearest")[0].long()
        gt[:, :2] = 255
        d.gt_sem_seg = PixelData(data=gt)
        d.set_metainfo(dict(img_shape=(size, size), pad_shape=(size, size),
                            ori_shape=(size, size)))
        samples.append(d)
    return torch.randn(n, 3, size, size, generator=g), samples


@pytest.mark.parametrize("arch", list(PAIRS))
@pytest.mark.parametrize("name", NAMES)
def test_method_trains_inside_the_distiller(distill, name: str, arch: str) -> None:
    from suite.methods import build_method

    dm, models = distill
    torch.manual_seed(0)
    s_name, t_name = PAIRS[arch]
    spec = build_method(name, FAST.get(name, {}))
    model = dm.DistillationModel(
        student=models.segmentor_config(s_name, 21, 0.0625),
        teacher=models.segmentor_config(t_name, 21, 0.0625),
        method=dataclasses.asdict(spec), student_taps=models.taps(s_name),
        teacher_taps=models.taps(t_name), load_teacher_checkpoint=False, probe_size=(64, 64))
    model.train()
    inputs, samples = _batch()
    losses = model.loss(inputs, samples)
    for loss_name in spec.losses:
        value = losses[f"distill.{loss_name}"]
        assert value.dim() == 0 and torch.isfinite(value), loss_name
    total = sum(v for k, v in losses.items() if "loss" in k)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert any(p.grad is not None for p in model.student.parameters())


@pytest.mark.parametrize(("name", "width", "expected"), [("skd", 0.25, 16), ("skd", 1.0, 64),
                                                         ("sstkd", 0.0625, 4)])
def test_critic_width_follows_the_cells_width_multiplier(distill, name, width, expected) -> None:
    from suite.methods import build_method

    dm, models = distill
    spec = build_method(name)
    model = dm.DistillationModel(
        student=models.segmentor_config("pspnet_r18", 21, 0.0625),
        teacher=models.segmentor_config("pspnet_r101", 21, 0.0625),
        method=dataclasses.asdict(spec), student_taps=models.taps("pspnet_r18"),
        teacher_taps=models.taps("pspnet_r101"), load_teacher_checkpoint=False,
        probe_size=(32, 32), width=width)
    critic = next(m for m in model.modules() if type(m).__name__ == "HolisticDiscriminator")
    first = critic.blocks[0][0]
    assert first.out_channels == expected and first.in_channels == 21  # logits: the classes


def test_bglsseg_branch_width_follows_the_width_multiplier(distill) -> None:
    from suite.methods import build_method

    dm, models = distill
    model = dm.DistillationModel(
        student=models.segmentor_config("pspnet_r18", 21, 0.0625),
        teacher=models.segmentor_config("pspnet_r101", 21, 0.0625),
        method=dataclasses.asdict(build_method("bglsseg")), student_taps=models.taps("pspnet_r18"),
        teacher_taps=models.taps("pspnet_r101"), load_teacher_checkpoint=False,
        probe_size=(32, 32), width=0.5)
    convs = [m for n, m in model.named_modules() if "bglsseg" in n and isinstance(m, torch.nn.Conv2d)]
    assert convs[0].out_channels == 32
