"""GFL box-distribution heads (RetinaGFL, RPN-GFL): built through their families' configs, a
training step and a prediction; the box loss and the prediction decoding against hand
computations (softmax integral times the level's stride from the anchor centres, GIoU);
``baselines.det_head`` assigns and decodes them; taps and parameter counts follow the extra
regression channels; the configs differ from the base variants only in the head."""

from __future__ import annotations

import functools

import pytest
import torch
from mmdet.models.dense_heads import RPNHead
from mmengine.registry import MODELS, DefaultScope
from mmengine.structures import InstanceData
from torch import Tensor

from baselines.det_head import assign, decode_level, is_distribution_head, is_rpn, level_priors
from suite.distill.recorders import ModuleOutputsRecorder
from suite.errors import SpecError
from suite.families import family_of
from suite.nets.distribution_heads import RPNGFLHead, TapRetinaGFLHead
from suite.report.names import model_name
from suite.tasks import get_task

TASK = get_task("detection")
TASK.load_modules()
WIDTH, SIZE, CLASSES, REG_MAX = 0.125, 64, 3, 16
BINS = 4 * (REG_MAX + 1)
SMOKE = dict(train_proposals=64, test_proposals=32, sampled_rois=32, max_per_img=10,
             score_thr=0.01)
# variant -> (base variant, head attribute, anchors per location, regressor, its kernel size)
VARIANTS = {
    "retinagfl_r50": ("retinanet_r50", "bbox_head", 9, "retina_reg", 3),
    "retinagfl_r101": ("retinanet_r101", "bbox_head", 9, "retina_reg", 3),
    "cascade_mask_rcnn_rpngfl_r50": ("cascade_mask_rcnn_r50", "rpn_head", 3, "rpn_reg", 1),
    "cascade_mask_rcnn_rpngfl_r101": ("cascade_mask_rcnn_r101", "rpn_head", 3, "rpn_reg", 1),
}
STUDENTS = ("retinagfl_r50", "cascade_mask_rcnn_rpngfl_r50")


def options(name: str) -> dict:
    """Smoke test options: few proposals (Cascade); every score kept (an untrained RetinaNet
    scores below mmdet's 0.05)."""
    return SMOKE if family_of(name).name == "cascade_mask_rcnn" else dict(score_thr=0.0)


def build(name: str, width: float = WIDTH, classes: int = CLASSES, device: str | None = None):
    cfg = family_of(name).config(name, classes, width, **options(name))
    with DefaultScope.overwrite_default_scope("mmdet"):
        if device is None:
            model = MODELS.build(cfg)
            model.init_weights()
            return model
        with torch.device(device):
            return MODELS.build(cfg)


@functools.cache
def head_of(name: str):
    """The (initialised, eval-mode) distribution head of a smoke-width ``name``."""
    torch.manual_seed(0)
    return getattr(build(name), VARIANTS[name][1]).eval()


def meta(size: int = SIZE) -> dict:
    return dict(img_shape=(size, size), pad_shape=(size, size), batch_input_shape=(size, size),
                scale_factor=(1.0, 1.0), ori_shape=(size, size))


def hand_giou(a: Tensor, b: Tensor) -> Tensor:
    """GIoU of row-aligned ``x1, y1, x2, y2`` boxes (Rezatofighi et al., CVPR 2019)."""
    def area(x):
        return (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    iw = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    ih = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = iw * ih
    union = area(a) + area(b) - inter
    ew = torch.maximum(a[:, 2], b[:, 2]) - torch.minimum(a[:, 0], b[:, 0])
    eh = torch.maximum(a[:, 3], b[:, 3]) - torch.minimum(a[:, 1], b[:, 1])
    return inter / union - (ew * eh - union) / (ew * eh)


def hand_boxes(anchors: Tensor, logits: Tensor, stride: int) -> Tensor:
    """``M x 4`` boxes: per edge the softmax mean over bins 0..reg_max, times the stride, from
    the anchor centre (left, top, right, bottom)."""
    probs = logits.reshape(-1, 4, REG_MAX + 1).softmax(-1)
    dist = (probs * torch.arange(REG_MAX + 1.0)).sum(-1) * stride
    cx, cy = (anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2
    return torch.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1)


def to_map(rows: Tensor, h: int, w: int) -> Tensor:
    """``(H*W*A) x C`` rows (mmdet's anchor order) -> ``1 x (A*C) x H x W``."""
    return rows.reshape(h, w, -1).permute(2, 0, 1)[None]


# ---------------------------------------------------------------- configs, names, taps, params

@pytest.mark.parametrize("name", VARIANTS)
def test_config_is_the_base_variants_with_the_head_swapped(name):
    base, attr = VARIANTS[name][:2]
    ours = family_of(name).config(name, 80, 0.25).to_dict()
    ref = family_of(base).config(base, 80, 0.25).to_dict()
    head, ref_head = ours.pop(attr), ref.pop(attr)
    assert ours == ref  # backbone, neck, RoI heads, train / test configs: unchanged
    changed = {"type", "reg_max", "bbox_coder", "reg_decoded_bbox", "loss_bbox"}
    assert {k: v for k, v in head.items() if k not in changed} == \
        {k: v for k, v in ref_head.items() if k not in changed}
    assert head["type"] == ("TapRetinaGFLHead" if attr == "bbox_head" else "RPNGFLHead")
    assert head["reg_max"] == REG_MAX and head["reg_decoded_bbox"] is True
    assert head["bbox_coder"] == dict(type="DistancePointBBoxCoder")  # replaced, not merged
    assert head["loss_bbox"] == dict(type="GIoULoss", loss_weight=2.0)
    assert family_of(name).name == family_of(base).name
    assert model_name(name) != name and "GFL" in model_name(name)


@pytest.mark.parametrize("name", VARIANTS)
def test_regression_taps_and_parameters_carry_the_extra_channels(name):
    """Built on the meta device at full width (80 classes): the regressor has A * 4 * 17
    outputs, the declared taps say so, and the only extra parameters are its extra channels."""
    base, attr, anchors, regressor, kernel = VARIANTS[name]
    family = family_of(name)
    ours, ref = build(name, 1.0, 80, "meta"), build(base, 1.0, 80, "meta")
    head = getattr(ours, attr)
    conv = getattr(head, regressor)
    assert conv.out_channels == anchors * BINS and conv.kernel_size == (kernel, kernel)
    taps, base_taps = family.taps(name, 1.0, 80), family.taps(base, 1.0, 80)
    reg_taps = ("bbox_preds", "regressor") if attr == "bbox_head" else \
        ("rpn_bbox_preds", "rpn_regressor")
    for tap in reg_taps:
        assert all(t.module == f"{attr}.{regressor}" and t.channels == anchors * BINS
                   for t in taps[tap])
    assert {k: v for k, v in taps.items() if k not in reg_taps} == \
        {k: v for k, v in base_taps.items() if k not in reg_taps}
    extra = anchors * (BINS - 4) * (256 * kernel * kernel + 1)  # weights and biases
    params = [sum(p.numel() for p in m.parameters()) for m in (ours, ref)]
    assert params[0] - params[1] == extra


def test_heads_are_their_base_heads_and_refuse_a_delta_coder():
    retina, rpn = head_of("retinagfl_r50"), head_of("cascade_mask_rcnn_rpngfl_r50")
    assert isinstance(retina, TapRetinaGFLHead) and isinstance(rpn, RPNGFLHead)
    assert isinstance(rpn, RPNHead) and is_rpn(rpn) and not is_rpn(retina)
    for head in (retina, rpn):
        assert is_distribution_head(head) and head.reg_max == REG_MAX
        assert type(head.bbox_coder).__name__ == "DistancePointBBoxCoder"
    cfg = family_of("cascade_mask_rcnn_rpngfl_r50").config("cascade_mask_rcnn_rpngfl_r50", 3,
                                                           WIDTH)["rpn_head"]
    with DefaultScope.overwrite_default_scope("mmdet"):
        with pytest.raises(SpecError, match="reg_decoded_bbox must be True"):
            MODELS.build({**cfg, "reg_decoded_bbox": False})
        with pytest.raises(SpecError, match="bbox_coder must be DistancePointBBoxCoder"):
            MODELS.build({**cfg, "bbox_coder": dict(type="DeltaXYWHBBoxCoder")})
        with pytest.raises(SpecError, match="reg_max must be a positive integer"):
            MODELS.build({**cfg, "reg_max": 0})


# ---------------------------------------------------------------- training step and prediction

@pytest.mark.parametrize("name", STUDENTS)
def test_detector_trains_a_step_records_taps_and_predicts(name):
    torch.manual_seed(0)
    family = family_of(name)
    attr, anchors, regressor = VARIANTS[name][1], VARIANTS[name][2], VARIANTS[name][3]
    model = build(name).train()
    specs = family.taps(name, WIDTH, CLASSES)
    recorder = ModuleOutputsRecorder(model, family.tap_modules(name))
    inputs, samples = TASK.probe_batch((SIZE, SIZE))
    with DefaultScope.overwrite_default_scope("mmdet"):
        losses = model.loss(inputs, samples)
    keys = ("loss_cls", "loss_bbox") if attr == "bbox_head" else ("loss_rpn_cls", "loss_rpn_bbox")
    assert set(keys) <= set(losses)
    for key in keys:
        assert len(losses[key]) == 5 and all(torch.isfinite(v) for v in losses[key])
    assert sum(losses[keys[1]]) > 0  # the probe's boxes have positive anchors
    for tap, spec in specs.items():
        got = recorder.get(tap)
        got = got if isinstance(got, list) else [got]
        spec = spec if isinstance(spec, list) else [spec]
        assert [g.shape[1] for g in got] == [s.channels for s in spec], tap
        assert [g.shape[-2] for g in got] == [-(-SIZE // s.stride) for s in spec], tap
    total = sum(v.sum() if torch.is_tensor(v) else sum(x.sum() for x in v)
                for k, v in losses.items() if "loss" in k)
    total.backward()
    conv = getattr(getattr(model, attr), regressor)
    assert conv.out_channels == anchors * BINS
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in model.backbone.parameters() if p.requires_grad)

    model.eval()
    with torch.no_grad(), DefaultScope.overwrite_default_scope("mmdet"):
        out = model.predict(inputs, samples)[0].pred_instances
        proposals = getattr(model, attr).predict(model.extract_feat(inputs), samples,
                                                 rescale=False)[0]
    for result in (out, proposals):
        boxes = result.bboxes
        assert boxes.ndim == 2 and boxes.shape[1] == 4 and torch.isfinite(boxes).all()
        assert ((boxes >= 0) & (boxes <= SIZE)).all()  # clipped to the image
    assert len(proposals) > 0


# ---------------------------------------------------------------- box loss by hand

@pytest.mark.parametrize("name,stride", [("retinagfl_r50", 16), ("cascade_mask_rcnn_rpngfl_r50", 8)])
def test_box_loss_of_one_positive_anchor_is_weighted_giou_over_avg_factor(name, stride):
    """One level of 2 x 2 locations, random logits, one positive anchor: loss_bbox =
    2.0 * (1 - GIoU(integral-decoded box, GT)) / avg_factor."""
    head = head_of(name)
    a = head.num_base_priors
    torch.manual_seed(1)
    n = 2 * 2 * a
    anchors = torch.rand(1, n, 2) * 32
    anchors = torch.cat([anchors, anchors + 8 + torch.rand(1, n, 2) * 24], -1)
    logits = torch.randn(n, BINS) * 2
    bbox_pred = to_map(logits, 2, 2).requires_grad_(True)
    cls_score = torch.randn(1, a * head.cls_out_channels, 2, 2)
    pos, gt = 5, torch.tensor([3.0, 7.0, 41.0, 30.0])
    targets, weights = torch.zeros(1, n, 4), torch.zeros(1, n, 4)
    targets[0, pos], weights[0, pos] = gt, 1.0
    labels = torch.full((1, n), head.num_classes, dtype=torch.long)
    labels[0, pos] = 0
    label_weights = torch.ones(1, n)
    avg = 3.0
    loss_cls, loss_bbox = head.loss_by_feat_single(cls_score, bbox_pred, anchors, labels,
                                                   label_weights, targets, weights, stride, avg)
    box = hand_boxes(anchors[0, pos:pos + 1], logits[pos:pos + 1], stride)
    expected = 2.0 * (1 - hand_giou(box, gt[None]))[0] / avg
    torch.testing.assert_close(loss_bbox, expected)
    assert torch.isfinite(loss_cls) and loss_cls > 0
    loss_bbox.backward()  # only the positive anchor's logits receive a gradient
    grad = bbox_pred.grad[0].permute(1, 2, 0).reshape(n, BINS)
    assert grad[pos].abs().sum() > 0 and grad[torch.arange(n) != pos].abs().sum() == 0
    # no positive: zero box loss, still part of the graph
    _, none = head.loss_by_feat_single(cls_score, bbox_pred, anchors, labels, label_weights,
                                       targets, torch.zeros_like(weights), stride, avg)
    assert none.item() == 0.0 and none.requires_grad


@pytest.mark.parametrize("name", STUDENTS)
def test_loss_by_feat_decodes_each_level_with_its_stride(name):
    """The whole head loss on random logits (a 128 px image: the RPN's 64 px anchors of
    stride 8 fit inside it), per level: the hand GIoU loss over the positive anchors of mmdet's
    own assignment (the same sampler seed), decoded at that level's stride."""
    head, size = head_of(name), 2 * SIZE
    strides = [int(s[0]) for s in head.prior_generator.strides]
    sizes = [(-(-size // s), -(-size // s)) for s in strides]
    a = head.num_base_priors
    torch.manual_seed(2)
    cls_scores = [torch.randn(1, a * head.cls_out_channels, h, w) for h, w in sizes]
    bbox_preds = [torch.randn(1, a * BINS, h, w) * 2 for h, w in sizes]
    gts = [InstanceData(bboxes=torch.tensor([[8.0, 12.0, 80.0, 100.0], [60.0, 40.0, 120.0, 88.0],
                                             [20.0, 80.0, 48.0, 104.0]]),
                        labels=torch.tensor([0, 0, 0]))]
    torch.manual_seed(3)
    losses = head.loss_by_feat(cls_scores, bbox_preds, gts, [meta(size)])
    key = "loss_bbox" if name.startswith("retina") else "loss_rpn_bbox"
    torch.manual_seed(3)
    anchors, valid = head.get_anchors(sizes, [meta(size)], device="cpu")
    _, _, targets, weights, avg = head.get_targets(anchors, valid, gts, [meta(size)])
    levels_with_positives = 0
    for level, stride in enumerate(strides):
        pos = weights[level][0, :, 0] > 0
        levels_with_positives += bool(pos.any())
        rows = bbox_preds[level][0].permute(1, 2, 0).reshape(-1, BINS)
        boxes = hand_boxes(anchors[0][level][pos], rows[pos], stride)
        expected = 2.0 * (1 - hand_giou(boxes, targets[level][0][pos])).sum() / avg
        torch.testing.assert_close(losses[key][level], expected)
    assert levels_with_positives >= 2  # strides of several levels are exercised


# ---------------------------------------------------------------- prediction by hand

@pytest.mark.parametrize("name", STUDENTS)
def test_prediction_places_integral_times_stride_from_the_anchor_centre(name):
    """Logits peaked at bin k on every edge: each anchor's box is its centre -/+ k * stride.
    One anchor of the stride-16 level scores high; the prediction's first box is its box,
    and ``decode_level`` gives every anchor's box the same way."""
    head = head_of(name)
    strides = [int(s[0]) for s in head.prior_generator.strides]
    sizes = [(-(-SIZE // s), -(-SIZE // s)) for s in strides]
    a, c = head.num_base_priors, head.cls_out_channels
    k = torch.tensor([1, 2, 1, 0])  # left, top, right, bottom bins
    peaked = torch.full((4, REG_MAX + 1), -30.0)
    peaked[torch.arange(4), k] = 30.0
    bbox_preds = [to_map(peaked.reshape(1, -1).expand(h * w * a, -1), h, w) for h, w in sizes]
    cls_scores = [torch.full((1, a * c, h, w), -12.0) for h, w in sizes]
    level, y, x, anchor, cls = strides.index(16), 2, 1, a - 1, c - 1
    cls_scores[level][0, anchor * c + cls, y, x] = 12.0
    stride = strides[level]
    priors = level_priors(head, bbox_preds)
    index = (y * sizes[level][1] + x) * a + anchor
    cx, cy = ((priors[level][index, :2] + priors[level][index, 2:]) / 2).tolist()
    expected = torch.tensor([cx - 1 * stride, cy - 2 * stride, cx + 1 * stride, cy])
    assert 0 <= expected.min() and expected.max() <= SIZE  # no clipping involved

    cfg = head.test_cfg
    with torch.no_grad():
        result = head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=[meta()], cfg=cfg,
                                      rescale=False)[0]
    torch.testing.assert_close(result.bboxes[0], expected)
    assert int(result.labels[0]) == (cls if not is_rpn(head) else 0)
    torch.testing.assert_close(result.scores[0], torch.sigmoid(torch.tensor(12.0)))

    for p, b, s in zip(priors, bbox_preds, strides):
        boxes = decode_level(head, p, b, s)[0]
        centres = (p[:, :2] + p[:, 2:]) / 2
        offsets = torch.tensor([-1.0, -2.0, 1.0, 0.0]) * s
        torch.testing.assert_close(boxes, centres.repeat(1, 2) + offsets)
    torch.testing.assert_close(decode_level(head, priors[level], bbox_preds[level], stride)[0, index],
                               expected)


# ---------------------------------------------------------------- baselines.det_head

@pytest.mark.parametrize("name", STUDENTS)
def test_det_head_assign_gives_per_level_positives_and_avg_factor(name):
    head = head_of(name)
    strides = [int(s[0]) for s in head.prior_generator.strides]
    maps = [torch.zeros(2, 4, -(-SIZE // s), -(-SIZE // s)) for s in strides]
    boxes = [torch.tensor([[4.0, 6.0, 40.0, 50.0]]), torch.tensor([[30.0, 20.0, 60.0, 44.0]])]
    labels = [torch.tensor([1]), torch.tensor([0])]
    torch.manual_seed(0)
    targets = assign(head, maps, boxes, labels, [(SIZE, SIZE)] * 2)
    a = head.num_base_priors
    for m, pos, lw in zip(maps, targets.positives, targets.label_weights):
        assert pos.shape == lw.shape == (2, m.shape[-2] * m.shape[-1] * a)
    positives = sum(int(p.sum()) for p in targets.positives)
    assert all(sum(int(p[i].sum()) for p in targets.positives) > 0 for i in range(2))
    if is_rpn(head):  # random sampler: avg_factor counts the sampled anchors (label weight 1)
        assert targets.avg_factor == sum(float(w.sum()) for w in targets.label_weights)
        assert targets.avg_factor > positives
    else:  # pseudo sampler: the positive anchors
        assert targets.avg_factor == positives
