"""Detection distillation methods (Table V): specs per task, the plan-time task and head checks,
every method x supported pair trained one step inside ``DistillationModel`` on tiny mmdet
detectors (finite losses, gradients into the student only), zero losses for an identical
teacher and student, and the dense-head helpers against hand computations."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pytest
import torch
import yaml
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.registry import MODELS, DefaultScope
from mmengine.structures import InstanceData
from torch import Tensor, nn

import baselines
from baselines.det_crosskd import CrossKDRegBoxLoss, remaining_layers
from baselines.det_gid import box_iou
from baselines.det_head import assign, branch_after, decode_level, level_priors
from suite.distill.model import DistillationModel
from suite.errors import SpecError
from suite.methods import build_method
from suite.methods.catalog import supported_tasks
from suite.methods.spec import GROUND_TRUTH, TAPS
from suite.models import taps
from suite.plan_checks import check_method_taps, check_method_task
from suite.tables import expand
from suite.tasks import get_task

WIDTH, SIZE, CLASSES = 0.125, 64, 3
PAIRS = {"gfl": ("gfl_r18", "gfl_r50"), "retinanet": ("retinanet_r50", "retinanet_r101"),
         "cascade": ("cascade_mask_rcnn_r50", "cascade_mask_rcnn_r101"),
         # the box-distribution variants LD's RetinaNet and two-stage recipes run on
         "retinagfl": ("retinagfl_r50", "retinagfl_r101"),
         "cascade_gfl": ("cascade_mask_rcnn_rpngfl_r50", "cascade_mask_rcnn_rpngfl_r101")}
SUPPORTED = {"fgd": ("gfl", "retinanet", "cascade"), "pkd": ("gfl", "retinanet", "cascade"),
             "skd": ("gfl", "retinanet", "cascade"), "sstkd": ("gfl", "retinanet", "cascade"),
             "bcd": ("gfl", "retinanet", "cascade"), "gid": ("gfl", "retinanet", "cascade"),
             "ld": ("gfl", "retinagfl", "cascade_gfl"), "crosskd": ("gfl", "retinanet", "cascade")}
# methods whose option ``two_stage`` picks upstream's setting (CrossKD: its RPN adaptation)
TWO_STAGE = ("fgd", "pkd", "gid", "crosskd")
CASES = [(m, p) for m, pairs in SUPPORTED.items() for p in pairs]
TASK = get_task("detection")
TASK.load_modules()


LD_RECIPES = {"gfl": "gfl", "retinagfl": "retinanet", "cascade_gfl": "two_stage"}


def _options(method: str, pair: str) -> dict:
    if method == "ld":
        return {"recipe": LD_RECIPES[pair]}
    return {"two_stage": True} if pair == "cascade" and method in TWO_STAGE else {}


def _config(model: str) -> dict:
    return TASK.model_config(model, CLASSES, WIDTH, "BN", (SIZE, SIZE))


def _batch(n: int = 2, seed: int = 0) -> tuple[Tensor, list[DetDataSample]]:
    """``n`` random 64 x 64 images, each with two boxes (and box-shaped masks)."""
    boxes = torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 20.0, 60.0, 44.0]])
    samples = []
    for _ in range(n):
        masks = np.zeros((2, SIZE, SIZE), dtype=np.uint8)
        for j, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
            masks[j, y1:y2, x1:x2] = 1
        s = DetDataSample(metainfo=dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE),
                                        pad_shape=(SIZE, SIZE), batch_input_shape=(SIZE, SIZE),
                                        scale_factor=(1.0, 1.0)))
        s.gt_instances = InstanceData(bboxes=boxes.clone(), labels=torch.tensor([0, 2]),
                                      masks=BitmapMasks(masks, SIZE, SIZE))
        samples.append(s)
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)), samples


def _model(method: str, student: str, teacher: str, options: dict | None = None,
           seed: int = 0) -> DistillationModel:
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope("mmdet"):
        return DistillationModel(
            student=_config(student), teacher=_config(teacher),
            method=asdict(build_method(method, options or {}, task="detection")),
            student_taps=taps(student), teacher_taps=taps(teacher),
            load_teacher_checkpoint=False, probe_size=(SIZE, SIZE), task="detection",
            width=WIDTH)


def _distill(losses: dict) -> dict[str, Tensor]:
    return {k: v for k, v in losses.items() if k.startswith("distill.loss")}


# ------------------------------------------------------------------ specs and tasks
def test_methods_declare_their_tasks() -> None:
    for name in ("fgd", "gid", "ld", "pkd"):
        assert supported_tasks(name) == ("detection",)
    for name in ("skd", "sstkd", "bcd", "crosskd"):
        assert supported_tasks(name) == ("segmentation", "detection")
    assert supported_tasks("cirkd") == ("segmentation",)
    assert set(baselines.DETECTION_METHOD_NAMES) | {"bcd"} == set(SUPPORTED)


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_detection_specs_read_detection_taps_and_ground_truth(name: str) -> None:
    spec = build_method(name, {}, task="detection")
    assert spec.name == name and spec.paper and spec.losses
    uses_gt = False
    for loss in spec.losses.values():
        assert "loss_weight" not in loss.kwargs and loss.weight > 0
        for inp in loss.inputs.values():
            if inp.source == "data":
                uses_gt = True
                assert inp.tap in GROUND_TRUTH["detection"]
            else:
                assert inp.tap in TAPS and inp.tap not in ("logits", "head_feature", "low_level")
    assert spec.needs_gt == uses_gt
    assert any(v == "detection" or "detection" in str(v) for v in spec.assumptions.values())
    if name in ("skd", "sstkd", "bcd", "gid"):  # adaptations / re-implementations are flagged
        assert spec.reimplementation and spec.unverified


def test_methods_serving_both_tasks_keep_their_segmentation_spec() -> None:
    seg, det = build_method("skd", {}), build_method("skd", {}, task="detection")
    assert {"loss_skd_pixel", "loss_skd_pair", "loss_skd_adv"} == set(seg.losses)
    assert set(det.losses) == {"loss_skd_pair"}
    assert det.losses["loss_skd_pair"].inputs["preds_S"].tap == "fpn"
    assert build_method("crosskd", {}).losses["loss_crosskd"].type == "crosskd"
    assert build_method("sstkd", {}, task="detection").losses[
        "loss_sstkd_structural"].kwargs["stage"] == 0
    seg_bcd, det_bcd = build_method("bcd", {}), build_method("bcd", {}, task="detection")
    assert seg_bcd.losses == det_bcd.losses and seg_bcd.connectors == det_bcd.connectors
    with pytest.raises(ValueError, match="valid options"):  # segmentation-only options refused
        build_method("skd", {"pixel_weight": 1.0}, task="detection")


@pytest.mark.parametrize("method, task, supported", [
    ("fgd", "segmentation", "detection"), ("pkd", "segmentation", "detection"),
    ("cirkd", "detection", "segmentation"), ("kd+bcd", "detection", "segmentation"),
])
def test_a_method_on_the_wrong_task_is_a_spec_error(method, task, supported) -> None:
    with pytest.raises(SpecError, match=f"supports the task\\(s\\) {supported}, not '{task}'"):
        build_method(method, {}, task=task)
    with pytest.raises(SpecError, match=f"^table t row r: .*supports the task\\(s\\) {supported}"):
        check_method_task(method, task, "table t row r")


def test_tables_refuse_a_method_of_another_task_at_plan_time(tmp_path, monkeypatch,
                                                             suite_cache) -> None:
    monkeypatch.setenv("SUITE_TABLES", str(tmp_path))
    det = {"name": "det", "task": "detection", "blocks": [
        {"dataset": "coco2017", "teacher": "gfl_r50", "student": "gfl_r18",
         "rows": [{"row": "fgd", "method": "fgd"}, {"row": "cirkd", "method": "cirkd"}]}]}
    seg = {"name": "seg", "task": "segmentation", "datasets": ["voc2012"],
           "teacher": "pspnet_r101", "student": "pspnet_r18",
           "rows": [{"row": "fgd", "method": "fgd"}]}
    for spec in (det, seg):
        (tmp_path / f"{spec['name']}.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match="row 'cirkd'.*supports the task\\(s\\) segmentation"):
        expand("det", "smoke")
    with pytest.raises(SpecError, match="row 'fgd'.*supports the task\\(s\\) detection"):
        expand("seg", "smoke")
    det["blocks"][0]["rows"] = [{"row": "fgd", "method": "fgd"}]
    (tmp_path / "det.yaml").write_text(yaml.safe_dump(det))
    cell = next(c for c in expand("det", "smoke") if c.row == "fgd")
    assert cell.config["method"]["losses"]["loss_fgd"]["type"] == "det_fgd"


def _record(method: str, options: dict | None = None) -> dict:
    return asdict(build_method(method, options or {}, task="detection"))


@pytest.mark.parametrize("method, options, pair, match", [
    ("ld", {}, "retinanet", "defined for dense heads GFLHead; the student retinanet_r50 has"),
    ("ld", {}, "cascade", "GFLHead; the student cascade_mask_rcnn_r50 has a RPNHead"),
    ("ld", {}, "retinagfl", "GFLHead; the student retinagfl_r50 has a TapRetinaGFLHead"),
    ("ld", {"recipe": "retinanet"}, "retinanet",
     "defined for dense heads TapRetinaGFLHead; the student retinanet_r50 has a TapRetinaHead"),
    ("ld", {"recipe": "two_stage"}, "cascade",
     "defined for dense heads RPNGFLHead; the student cascade_mask_rcnn_r50 has a RPNHead"),
    ("ld", {"recipe": "retinanet"}, "cascade_gfl", "TapRetinaGFLHead; the student "
     "cascade_mask_rcnn_rpngfl_r50 has a RPNGFLHead"),
    ("crosskd", {}, "cascade", "needs the student tap\\(s\\) \\['cls_feature', 'reg_feature'\\]"),
    ("crosskd", {"two_stage": True}, "gfl", "needs the student tap\\(s\\) \\['rpn_feature'\\]"),
    ("gid", {}, "cascade", "needs the student tap\\(s\\) \\['bbox_preds', 'cls_scores'\\]"),
    ("gid", {"two_stage": True}, "gfl", "needs the student tap\\(s\\) \\['rpn_bbox_preds'"),
])
def test_unsupported_pairs_are_refused_at_plan_time(method, options, pair, match) -> None:
    with pytest.raises(SpecError, match=match):
        check_method_taps(_record(method, options), *PAIRS[pair], "table5 row x")


def test_every_supported_pair_passes_the_plan_checks() -> None:
    for method, pair in CASES:
        check_method_taps(_record(method, _options(method, pair)), *PAIRS[pair], "table5")


def test_fgd_and_pkd_options_choose_upstreams_one_or_two_stage_setting() -> None:
    one = build_method("fgd", {}, task="detection").losses["loss_fgd"].kwargs
    two = build_method("fgd", {"two_stage": True}, task="detection").losses["loss_fgd"].kwargs
    assert (one["alpha"], one["beta"], one["gamma"], one["lambda_"]) == (1e-3, 5e-4, 5e-4, 5e-6)
    assert "levels" not in one and two["levels"] == [0, 1, 2, 3]
    assert (two["alpha"], two["beta"], two["gamma"], two["lambda_"]) == (5e-5, 2.5e-5, 5e-5, 5e-7)
    assert build_method("fgd", {"alpha": 0.1}, task="detection").losses[
        "loss_fgd"].kwargs["alpha"] == 0.1
    pkd = [build_method("pkd", o, task="detection").losses["loss_pkd"] for o in
           ({}, {"two_stage": True}, {"weight": 2.0})]
    assert [p.weight for p in pkd] == [10.0, 6.0, 2.0]
    assert pkd[0].kwargs["levels"] == [0, 1, 2, 3]
    gid = build_method("gid", {"two_stage": True}, task="detection").losses["loss_gid"]
    assert gid.inputs["cls_scores_S"].tap == "rpn_cls_scores"


# ------------------------------------------------------------------ one training step
@pytest.mark.parametrize("method, pair", CASES)
def test_method_trains_one_step_with_gradients_into_the_student_only(method, pair) -> None:
    model = _model(method, *PAIRS[pair], _options(method, pair))
    model.train()
    assert not model.teacher.training
    teacher_params = {id(p) for p in model.teacher.parameters()}
    assert not teacher_params & {id(p) for p in model.distill_losses.parameters()}
    assert not any(k.startswith("teacher") for k in model.distill_losses.state_dict())
    losses = model.loss(*_batch())
    distill = _distill(losses)
    assert set(distill) == {f"distill.{k}" for k in model.loss_specs}
    assert all(torch.isfinite(v).all() and v.dim() == 0 for v in distill.values())
    assert any(v.item() > 0 for v in distill.values())
    sum(distill.values()).backward()  # the distillation terms alone
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
    student = [p.grad for p in model.student.parameters() if p.grad is not None]
    assert student and all(torch.isfinite(g).all() for g in student)
    assert sum(g.abs().sum() for g in student) > 0


IDENTICAL = [("fgd", "gfl"), ("fgd", "cascade"), ("pkd", "retinanet"), ("skd", "gfl"),
             ("sstkd", "gfl"), ("bcd", "gfl"), ("gid", "gfl"), ("gid", "cascade"), ("ld", "gfl"),
             ("ld", "retinagfl"), ("ld", "cascade_gfl"),
             ("crosskd", "gfl"), ("crosskd", "retinanet"), ("crosskd", "cascade")]


@pytest.mark.parametrize("method, pair", IDENTICAL)
def test_identical_teacher_and_student_give_zero_losses(method, pair) -> None:
    student = PAIRS[pair][0]
    model = _model(method, student, student, _options(method, pair), seed=3)
    model.student.load_state_dict(model.teacher.state_dict())
    if "bcd_student" in model.connectors:  # the trainable alignment as the identity
        for conv in model.connectors["bcd_student"].align:
            nn.init.zeros_(conv.bias)
            with torch.no_grad():
                conv.weight.copy_(torch.eye(conv.in_channels)[:, :, None, None])
    model.eval()  # the same BatchNorm statistics on both sides
    distill = _distill(model.loss(*_batch()))
    # CrossKD's align_scale adds 1e-6 to the student's std: the crossed scores differ by ~1e-6
    tol = 1e-4 if method == "crosskd" else 1e-5
    for name, value in distill.items():
        assert abs(value.item()) < tol, (name, value.item())


# ------------------------------------------------------------------ dense-head helpers
def _detector(model: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope("mmdet"):
        return MODELS.build(_config(model)).eval()


def test_the_reused_layers_reproduce_the_teachers_outputs_from_its_own_features() -> None:
    for model in ("gfl_r18", "retinanet_r50"):
        det, tap = _detector(model), taps(model)
        feats = det.extract_feat(_batch(1)[0])
        modules = dict(det.named_modules())
        rec: dict[str, list[Tensor]] = {}
        hooks = [modules[tap[k]].register_forward_hook(
            lambda _m, _i, o, k=k, rec=rec: rec.setdefault(k, []).append(o))
            for k in ("cls_feature", "reg_feature")]
        cls_scores, bbox_preds = det.bbox_head(feats)
        for h in hooks:
            h.remove()
        cls_head = remaining_layers(det, tap, "cls_feature", "classifier")
        reg_head = remaining_layers(det, tap, "reg_feature", "regressor", per_level=True)
        assert len(cls_head) == 1 and len(reg_head) == (5 if model.startswith("gfl") else 1)
        for i in range(5):
            torch.testing.assert_close(cls_head[0](torch.relu(rec["cls_feature"][i])),
                                       cls_scores[i])
            torch.testing.assert_close(reg_head[i % len(reg_head)](
                torch.relu(rec["reg_feature"][i])), bbox_preds[i])
    det = _detector("gfl_r18")
    later = branch_after(det, "bbox_head.cls_convs.1.gn")
    assert later == [det.bbox_head.cls_convs[2], det.bbox_head.cls_convs[3]]


def test_the_rpn_crossing_reuses_the_teachers_rpn_convolutions() -> None:
    """CrossKD on a two-stage detector: the RPN's shared conv is the crossing point (mmdet's
    RPNHead applies its ReLU out of place); nothing lies between it and rpn_cls / rpn_reg."""
    det, tap = _detector("cascade_mask_rcnn_r50"), taps("cascade_mask_rcnn_r50")
    feats = det.extract_feat(_batch(1)[0])
    rec: list[Tensor] = []
    hook = dict(det.named_modules())[tap["rpn_feature"]].register_forward_hook(
        lambda _m, _i, o: rec.append(o))
    cls_scores, bbox_preds = det.rpn_head(feats)
    hook.remove()
    assert branch_after(det, tap["rpn_feature"]) == []
    cls_head = remaining_layers(det, tap, "rpn_feature", "rpn_classifier")
    reg_head = remaining_layers(det, tap, "rpn_feature", "rpn_regressor", per_level=True)
    assert len(cls_head) == len(reg_head) == 1
    assert (rec[0] < 0).any()  # recorded before the activation
    for i in range(5):
        torch.testing.assert_close(cls_head[0](torch.relu(rec[i])), cls_scores[i])
        torch.testing.assert_close(reg_head[0](torch.relu(rec[i])), bbox_preds[i])


def test_rpn_assignment_is_class_agnostic_over_the_sampled_anchors() -> None:
    """The RPN assigns every box as class 0 (the box of class 2 too) and weights only the
    anchors its random sampler drew (at most 256 an image, among the anchors inside the image:
    mmdet's ``allowed_border`` 0); ``avg_factor`` counts them."""
    head = _detector("cascade_mask_rcnn_r50").rpn_head
    maps = [torch.zeros(2, 1, SIZE // s, SIZE // s) for s in (4, 8, 16, 32, 64)]
    gt = [torch.tensor([[30.0, 20.0, 60.0, 44.0]])] * 2  # one box, of class 2
    torch.manual_seed(0)
    got = assign(head, maps, gt, [torch.tensor([2])] * 2, [(SIZE, SIZE)] * 2)
    pos = torch.cat([p.reshape(-1) for p in got.positives])
    weights = torch.cat([w.reshape(-1) for w in got.label_weights])
    assert pos.any() and bool(weights[pos].eq(1).all())
    assert set(weights.unique().tolist()) <= {0.0, 1.0}
    assert 0 < got.avg_factor == float(weights.sum()) <= 2 * 256
    # by hand, per image: max-IoU among the anchors inside the image (IoU >= 0.7, or the box's
    # best anchors when their IoU reaches 0.3), the sampler keeping every one of these few
    priors = torch.cat(level_priors(head, maps))
    inside = (priors[:, :2] >= 0).all(1) & (priors[:, 2:] < SIZE).all(1)
    iou = box_iou(priors, gt[0])[:, 0].where(inside, torch.tensor(-1.0))
    expect = inside & ((iou >= 0.7) | ((iou == iou.max()) & (iou >= 0.3)))
    for i in range(2):
        assert torch.equal(torch.cat([p[i] for p in got.positives]), expect)


def test_decoding_matches_the_box_coders_by_hand() -> None:
    retina = _detector("retinanet_r50").bbox_head
    maps = [torch.zeros(2, 1, s, s) for s in (8, 4, 2, 1, 1)]  # 64 x 64 at strides 8..128
    retina_priors = level_priors(retina, maps)
    assert retina_priors[0].shape == (8 * 8 * 9, 4)
    deltas = torch.zeros(2, 36, 8, 8)
    deltas[:, 2::4] = math.log(2.0)  # dw = log 2 for every anchor: twice as wide
    boxes = decode_level(retina, retina_priors[0], deltas, 8)
    p = retina_priors[0]
    cx, w = (p[:, 0] + p[:, 2]) / 2, p[:, 2] - p[:, 0]
    expect = torch.stack([cx - w, p[:, 1], cx + w, p[:, 3]], 1)
    torch.testing.assert_close(boxes, expect.expand(2, -1, -1))
    gfl = _detector("gfl_r18").bbox_head
    dist = torch.full((1, 4 * 17, 8, 8), -30.0)
    for e, bin_ in enumerate((1, 2, 3, 4)):  # left, top, right, bottom distances in bins
        dist[:, e * 17 + bin_] = 30.0
    anchors = level_priors(gfl, maps)[0]
    boxes = decode_level(gfl, anchors, dist, 8)[0]
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    expect = torch.cat([centres - torch.tensor([8.0, 16.0]), centres + torch.tensor([24.0, 32.0])], 1)
    torch.testing.assert_close(boxes, expect, atol=1e-4, rtol=0)


def test_retinanet_assignment_is_max_iou_with_the_best_anchor_of_each_box() -> None:
    head = _detector("retinanet_r50").bbox_head
    maps = [torch.zeros(1, 1, SIZE // s, SIZE // s) for s in (8, 16, 32, 64, 128)]
    gt = [torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 20.0, 60.0, 44.0]])]
    got = assign(head, maps, gt, [torch.tensor([0, 2])], [(SIZE, SIZE)])
    priors = torch.cat(level_priors(head, maps))
    iou = box_iou(priors, gt[0])
    expect = (iou.max(1)[0] >= 0.5) | (iou == iou.max(0, keepdim=True)[0]).any(1)
    assert torch.equal(torch.cat([p[0] for p in got.positives]), expect)
    assert got.avg_factor == float(expect.sum())
    weighted = expect | (iou.max(1)[0] < 0.4)  # positives and negatives; 0.4-0.5 is ignored
    assert torch.equal(torch.cat([w[0] for w in got.label_weights]), weighted.float())


def _giou_loss(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    lt, rb = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    union = (a[:, 2:] - a[:, :2]).prod(1) + (b[:, 2:] - b[:, :2]).prod(1) - inter + eps
    outer = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).prod(1) + eps
    return 1 - (inter / union - (outer - union) / outer)


def _delta_boxes(anchors: Tensor, deltas: Tensor) -> Tensor:
    """DeltaXYWH decoding (means 0, stds 1) written out."""
    c, wh = (anchors[:, :2] + anchors[:, 2:]) / 2, anchors[:, 2:] - anchors[:, :2]
    c = c + deltas[:, :2] * wh
    wh = wh * deltas[:, 2:].clamp(-4.135, 4.135).exp()
    return torch.cat([c - wh / 2, c + wh / 2], 1)


def test_crosskd_box_term_is_the_score_weighted_giou_of_decoded_boxes() -> None:
    from baselines.crosskd import align_scale

    head = _detector("retinanet_r50").bbox_head
    g = torch.Generator().manual_seed(5)
    sizes = [(4, 4), (2, 2), (1, 1), (1, 1), (1, 1)]
    f_s = [torch.randn(2, 4, h, w, generator=g).requires_grad_(True) for h, w in sizes]
    f_t = [torch.randn(2, 4, h, w, generator=g) for h, w in sizes]
    b_t = [0.2 * torch.randn(2, 36, h, w, generator=g) for h, w in sizes]
    c_t = [torch.randn(2, 27, h, w, generator=g) for h, w in sizes]
    lw = [torch.ones(2, h * w * 9) for h, w in sizes]
    lw[0][0, :5] = 0
    layer = nn.Conv2d(4, 36, 1)
    nn.init.normal_(layer.weight, std=0.05)
    loss = CrossKDRegBoxLoss(layer, teacher_dense_head=head)
    out = loss(f_s, f_t, b_t, c_t, label_weights=lw, avg_factor=7.0)
    priors = level_priors(head, c_t)
    ref = torch.zeros(())
    for i in range(5):
        crossed = layer(torch.relu(align_scale(f_s[i], f_t[i]))).detach()
        dx = crossed.permute(0, 2, 3, 1).reshape(-1, 4)
        dt = b_t[i].permute(0, 2, 3, 1).reshape(-1, 4)
        anchors = priors[i].repeat(2, 1)
        w = c_t[i].permute(0, 2, 3, 1).reshape(-1, 3).max(1)[0].sigmoid() * lw[i].reshape(-1)
        ref = ref + (w * _giou_loss(_delta_boxes(anchors, dx), _delta_boxes(anchors, dt))).sum()
    ref = ref / (7.0 + torch.finfo(torch.float32).eps)
    torch.testing.assert_close(out.detach(), ref, rtol=1e-5, atol=1e-6)
    out.backward()
    assert all(f.grad is not None for f in f_s) and layer.weight.grad is None


def test_ld_recipes_take_the_upstream_configs_weights_and_taps() -> None:
    specs = {r: build_method("ld", {"recipe": r}, task="detection") for r in
             ("gfl", "retinanet", "two_stage")}
    losses = {r: s.losses["loss_ld"] for r, s in specs.items()}
    assert {r: (loss.type, loss.weight, loss.kwargs["T"]) for r, loss in losses.items()} == {
        "gfl": ("det_ld", 0.25, 10.0), "retinanet": ("det_ld_retina", 5.0, 10.0),
        "two_stage": ("det_ld_rpn", 1.0, 10.0)}
    assert losses["retinanet"].kwargs["cls_weight"] == 10.0
    assert losses["retinanet"].kwargs["cls_T"] == 8.0
    assert losses["retinanet"].inputs["cls_scores_T"].tap == "cls_scores"
    assert "cls_weight" not in losses["gfl"].kwargs and "cls_scores_T" not in losses["gfl"].inputs
    assert losses["two_stage"].inputs["preds_S"].tap == "rpn_bbox_preds"
    assert losses["two_stage"].inputs["cls_scores_S"].tap == "rpn_cls_scores"
    assert not specs["gfl"].reimplementation
    assert specs["retinanet"].reimplementation and specs["two_stage"].reimplementation
    assert build_method("ld", {"recipe": "retinanet", "weight": 2.0},
                        task="detection").losses["loss_ld"].weight == 2.0
    with pytest.raises(ValueError, match="unknown recipe 'faster'; valid: gfl, retinanet"):
        build_method("ld", {"recipe": "faster"}, task="detection")
