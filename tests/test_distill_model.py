"""DistillationModel on real mmseg segmentors: losses, frozen teacher, export, checkpoints."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
from mmengine.registry import MODELS
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

import suite.distill.model  # noqa: F401
from suite.distill.model import DistillationModel, TeacherCheckpointError
from suite.methods import build_method
from suite.models import segmentor_config, taps

register_all_modules(init_default_scope=True)
WIDTH, SIZE, CLASSES = 0.125, 32, 5


def _batch(n: int = 2):
    samples = []
    for _ in range(n):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, CLASSES, (1, SIZE, SIZE)))
        s.set_metainfo({"img_shape": (SIZE, SIZE), "ori_shape": (SIZE, SIZE), "pad_shape": (SIZE, SIZE)})
        samples.append(s)
    return torch.randn(n, 3, SIZE, SIZE), samples


def _teacher_ckpt(tmp_path, name="pspnet_r101", seed=0):
    torch.manual_seed(seed)
    teacher = MODELS.build(segmentor_config(name, CLASSES, WIDTH))
    path = tmp_path / f"{name}.pth"
    torch.save({"state_dict": teacher.state_dict()}, path)
    return path, teacher


def _build(tmp_path, method="bcd", options=None, student="pspnet_r18", teacher="pspnet_r101", ckpt=None):
    if ckpt is None:
        ckpt, _ = _teacher_ckpt(tmp_path, teacher)
    return DistillationModel(
        student=segmentor_config(student, CLASSES, WIDTH),
        teacher=segmentor_config(teacher, CLASSES, WIDTH),
        method=asdict(build_method(method, options or {})),
        student_taps=taps(student),
        teacher_taps=taps(teacher),
        teacher_checkpoint=str(ckpt),
        probe_size=(SIZE, SIZE),
    )


def test_loss_has_task_and_weighted_distill_terms_and_grads_only_in_student(tmp_path):
    model = _build(tmp_path)
    model.train()
    assert not model.teacher.training
    losses = model.loss(*_batch())
    assert {"decode.loss_ce", "aux.loss_ce", "distill.loss_bd", "distill.loss_cd"} <= set(losses)
    total = sum(v for k, v in losses.items() if "loss" in k)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.student.parameters())
    conn = list(model.connectors["bcd_student"].parameters())
    assert conn and all(p.grad is not None for p in conn)
    assert not list(model.connectors["bcd_teacher"].parameters())


def test_train_mode_reaches_the_student_and_never_the_teacher(tmp_path):
    model = _build(tmp_path)
    for _ in range(2):  # eval -> train -> eval, and a teacher someone switched to train mode
        model.eval()
        assert not any(m.training for m in model.modules())
        model.teacher.train()
        model.train()
        assert not any(m.training for m in model.teacher.modules())
        assert all(m.training for m in model.student.modules())
        assert all(m.training for m in model.connectors.modules())


def test_identical_teacher_and_student_give_zero_bcd_losses(tmp_path):
    ckpt, teacher = _teacher_ckpt(tmp_path, "pspnet_r18", seed=3)
    model = _build(tmp_path, student="pspnet_r18", teacher="pspnet_r18", ckpt=ckpt)
    model.student.load_state_dict(teacher.state_dict())
    for conv in model.connectors["bcd_student"].align:  # identity alignment
        torch.nn.init.zeros_(conv.bias)
        with torch.no_grad():
            conv.weight.copy_(torch.eye(conv.in_channels)[:, :, None, None])
    model.eval()  # same BN statistics on both sides
    losses = model.loss(*_batch())
    assert losses["distill.loss_bd"].abs().item() < 1e-5
    assert losses["distill.loss_cd"].abs().item() < 1e-5
    model.student.load_state_dict(MODELS.build(segmentor_config("pspnet_r18", CLASSES, WIDTH)).state_dict())
    losses = model.loss(*_batch())
    assert losses["distill.loss_bd"].item() > 0 and losses["distill.loss_cd"].item() > 0


def test_weight_decay_schedule_scales_distill_losses(tmp_path):
    model = _build(tmp_path)
    model.eval()
    batch = _batch()
    torch.manual_seed(0)
    model.set_progress(0, 10)
    first = model.loss(*batch)
    model.set_progress(9, 10)  # t = 10: alpha = 1 - 9/10
    last = model.loss(*batch)
    assert first["distill.alpha"].item() == pytest.approx(1.0)
    assert last["distill.alpha"].item() == pytest.approx(0.1)
    assert last["distill.loss_cd"].item() == pytest.approx(0.1 * first["distill.loss_cd"].item(), rel=1e-4)
    off = _build(tmp_path, options={"weight_decay": False})
    off.set_progress(9, 10)
    assert off.alpha == 1.0


def test_predict_is_the_student_and_export_holds_only_the_student(tmp_path):
    model = _build(tmp_path)
    model.eval()
    inputs, samples = _batch()
    with torch.no_grad():
        preds = model(inputs, samples, mode="predict")
        direct = model.student.predict(inputs, samples)
    assert torch.equal(preds[0].pred_sem_seg.data, direct[0].pred_sem_seg.data)
    state = model.student_state_dict()
    assert not any(k.startswith(("teacher", "connectors", "distill_losses")) for k in state)
    fresh = MODELS.build(segmentor_config("pspnet_r18", CLASSES, WIDTH))
    fresh.load_state_dict(state, strict=True)


def test_missing_or_mismatching_teacher_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(TeacherCheckpointError, match="not found"):
        _build(tmp_path, ckpt=tmp_path / "nope.pth")
    wrong, _ = _teacher_ckpt(tmp_path, "pspnet_r18")  # an R18 checkpoint for an R101 teacher
    with pytest.raises(TeacherCheckpointError, match="does not match"):
        _build(tmp_path, ckpt=wrong)


def test_deeplabv3plus_pair_builds_and_distills(tmp_path):
    model = _build(tmp_path, student="deeplabv3plus_r18", teacher="deeplabv3plus_r101")
    losses = model.loss(*_batch())
    assert torch.isfinite(losses["distill.loss_bd"]) and torch.isfinite(losses["distill.loss_cd"])


def test_runner_weight_init_keeps_the_loaded_teacher(tmp_path):
    # mmengine's Runner calls init_weights() on the whole model before training; the teacher
    # loaded from its checkpoint must survive it (it used to be re-initialised at random).
    ckpt, trained = _teacher_ckpt(tmp_path, seed=3)
    model = _build(tmp_path, method="kd", ckpt=ckpt)
    student_before = {k: v.clone() for k, v in model.student.state_dict().items()}
    model.init_weights()
    for key, value in trained.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[key], value), key
    # the student is still initialised by its own init_cfg
    changed = [k for k, v in model.student.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, student_before[k])]
    assert changed


def test_training_steps_record_forward_time_per_part(tmp_path):
    model = _build(tmp_path, method="kd")
    model.train()
    for _ in range(2):
        model.loss(*_batch())
    times = model.step_times.mean_ms()
    assert set(times) == {"teacher_forward", "student_forward", "distill.loss_kd"}
    assert model.step_times.steps == 2 and all(v > 0 for v in times.values())
    model.eval()
    model.loss(*_batch())  # evaluation-mode calls are not training steps
    assert model.step_times.steps == 2
