"""Table II: BCD between every teacher/student pair of the spec (tiny width and crop), the
Mask2Former logit adapter, stride-aware fusion, and tap errors at plan time."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
from mmengine.registry import MODELS
from mmseg.utils import register_all_modules
from seg_batch import batch

from suite.blocks import table_blocks
from suite.distill.connectors import AlignedStageFusion
from suite.distill.model import DistillationModel
from suite.errors import SpecError
from suite.methods import build_method
from suite.models import segmentor_config, taps
from suite.nets.mask2former import MaskClassLogits
from suite.plan_checks import check_method_taps
from suite.tables import expand, load_table, resolve_method

register_all_modules(init_default_scope=True)
WIDTH, SIZE, CLASSES = 0.0625, 32, 5
PAIRS = sorted({(b.teacher, s) for b in table_blocks(load_table("table2")) for s in b.students})


@pytest.mark.parametrize(("teacher", "student"), PAIRS)
def test_bcd_between_table2_pair(teacher, student):
    torch.manual_seed(0)
    model = DistillationModel(
        student=segmentor_config(student, CLASSES, WIDTH),
        teacher=segmentor_config(teacher, CLASSES, WIDTH),
        method=asdict(build_method("bcd", {})), student_taps=taps(student),
        teacher_taps=taps(teacher), probe_size=(SIZE, SIZE), load_teacher_checkpoint=False,
        width=WIDTH)
    model.train()
    losses = model.loss(*batch(2, SIZE))
    assert torch.isfinite(losses["distill.loss_bd"]) and torch.isfinite(losses["distill.loss_cd"])
    sum(v for k, v in losses.items() if "loss" in k).backward()
    align = model.connectors["bcd_student"].align
    assert all(c.weight.grad is not None for c in align)
    assert all(p.grad is None for p in model.teacher.parameters())


def test_table2_plans_every_block_of_the_paper():
    cells = expand("table2", "smoke", require_roots=False)
    distill = {(c.block, c.config["teacher"]["model"], c.config["model"])
               for c in cells if c.role == "distill"}
    assert len(distill) == 3 + 3 + 3 + 3 + 2
    assert {t for _, t, _ in distill} == {"pspnet_r101", "mask2former_r50", "deeplabv3plus_r101"}
    assert all(c.row == c.config["model"] for c in cells if c.role != "teacher")


def test_mask2former_logits_are_mmseg_semantic_inference_in_log_space():
    torch.manual_seed(0)
    cls, masks = torch.randn(2, 7, CLASSES + 1), torch.randn(2, 7, 8, 8)
    logits = MaskClassLogits()(cls, masks)
    expected = torch.einsum("nqk,nqhw->nkhw", cls.softmax(-1)[..., :-1], masks.sigmoid())
    assert logits.shape == (2, CLASSES, 8, 8)
    torch.testing.assert_close(logits.exp(), expected)
    # the tap a KD loss reads: its argmax is the prediction of mmseg's predict()
    model = MODELS.build(segmentor_config("mask2former_r50", CLASSES, WIDTH)).eval()
    inputs, samples = batch(1, SIZE)
    recorded = {}
    model.decode_head.logits.register_forward_hook(lambda _m, _i, o: recorded.update(z=o))
    with torch.no_grad():
        pred = model.predict(inputs, samples)[0].seg_logits.data
    z = torch.nn.functional.interpolate(recorded["z"].exp(), size=(SIZE, SIZE), mode="bilinear")
    assert pred.shape == (CLASSES, SIZE, SIZE)
    assert (z[0].argmax(0) == pred.argmax(0)).float().mean() > 0.99


def test_stride_aware_fusion_is_unchanged_for_resnet_pairs_and_matches_sizes_otherwise():
    torch.manual_seed(0)
    feats = [torch.randn(2, 4, 16, 16), torch.randn(2, 8, 8, 8), torch.randn(2, 8, 8, 8),
             torch.randn(2, 16, 8, 8)]
    plain = AlignedStageFusion([4, 8, 8, 16], [8, 8, 16, 16])
    strided = AlignedStageFusion([4, 8, 8, 16], [8, 8, 16, 16], in_strides=[4, 8, 8, 8],
                                 out_strides=[4, 8, 8, 8])
    strided.load_state_dict(plain.state_dict())
    torch.testing.assert_close(strided(feats), plain(feats))
    # ESPNet-like student (strides 2, 4, 8, 8) under a ResNet-d8 teacher: the teacher's 1/8 size
    esp = [torch.randn(2, 4, 32, 32), torch.randn(2, 8, 16, 16), torch.randn(2, 8, 8, 8),
           torch.randn(2, 16, 8, 8)]
    fused = AlignedStageFusion([4, 8, 8, 16], [8, 8, 16, 16], in_strides=[2, 4, 8, 8],
                               out_strides=[4, 8, 8, 8])(esp)
    assert fused.shape == (2, 48, 8, 8)


def test_a_tap_the_model_lacks_is_a_spec_error_at_plan_time():
    tat = resolve_method("tat", {})  # reads head_feature_preact, which Mask2Former lacks
    with pytest.raises(SpecError, match=r"teacher tap\(s\) \['head_feature_preact'\].*mask2former"):
        check_method_taps(tat, "segformer_b0", "mask2former_r50", "table x row 'tat'")
    c2vkd = resolve_method("c2vkd", {})  # reuses the teacher's per-pixel classifier
    with pytest.raises(SpecError, match="reuses the teacher's \\['classifier'\\]; mask2former_r50"):
        check_method_taps(c2vkd, "segformer_b0", "mask2former_r50", "table x row 'c2vkd'")
    check_method_taps(tat, "segformer_b0", "pspnet_r101", "fine")
