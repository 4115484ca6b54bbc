"""Detection families (mmdet): every variant builds at a smoke width, trains a step on the
detection task's probe batch, runs ``_forward`` in eval mode, records each declared tap with the
declared channels and stride per level; full width has exactly the parameters of mmdet's
unmodified config; Cascade Mask R-CNN's cost options reach the built model."""

from __future__ import annotations

import pytest
import torch
from mmengine.registry import MODELS, DefaultScope

from suite.distill.recorders import ModuleOutputsRecorder
from suite.errors import SpecError
from suite.families import FAMILIES, family_of
from suite.families.base import Tap
from suite.tasks import get_task, library_config

TASK = get_task("detection")
TASK.load_modules()
DETECTORS = sorted(v for f in FAMILIES.values() if f.task == "detection" for v in f.variants)
WIDTH, SIZE, CLASSES = 0.125, 128, 3  # 128 px: the stride-128 level is one cell, not clipped
SMOKE = {"cascade_mask_rcnn": dict(train_proposals=64, test_proposals=32, sampled_rois=32,
                                   max_per_img=10, score_thr=0.01)}


def build(name: str, width: float = WIDTH, device: str | None = None, classes: int = CLASSES,
          **options):
    cfg = family_of(name).config(name, classes, width, **options)
    with DefaultScope.overwrite_default_scope("mmdet"):
        if device is None:
            return MODELS.build(cfg)
        with torch.device(device):
            return MODELS.build(cfg)


def flat(specs: dict) -> list[tuple[str, int | None, Tap]]:
    return [(name, i if isinstance(spec, list) else None, tap) for name, spec in specs.items()
            for i, tap in enumerate(spec if isinstance(spec, list) else [spec])]


def check_taps(recorder: ModuleOutputsRecorder, specs: dict) -> None:
    for name, index, tap in flat(specs):
        got = recorder.get(name)
        if index is not None:
            assert isinstance(got, list) and len(got) == len(specs[name]), (name, type(got))
            got = got[index]
        assert got.shape[1] == tap.channels, (name, index, tap, tuple(got.shape))
        assert SIZE // got.shape[-2] == tap.stride, (name, index, tap, tuple(got.shape))


def test_the_six_table5_models_are_detection_families():
    # and the GFL-distribution variants LD distils (RetinaGFL, the GFL RPN)
    assert DETECTORS == ["cascade_mask_rcnn_r101", "cascade_mask_rcnn_r50",
                         "cascade_mask_rcnn_rpngfl_r101", "cascade_mask_rcnn_rpngfl_r50",
                         "gfl_r18", "gfl_r50", "retinagfl_r101", "retinagfl_r50",
                         "retinanet_r101", "retinanet_r50"]
    assert {f.name for f in FAMILIES.values() if f.task == "detection"} == {
        "gfl", "retinanet", "cascade_mask_rcnn"}
    assert family_of("pspnet_r18").task == "segmentation"


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_trains_a_step_and_records_declared_taps(name):
    torch.manual_seed(0)
    family = family_of(name)
    model = build(name, **SMOKE.get(family.name, {})).train()
    specs = family.taps(name, WIDTH, CLASSES)
    recorder = ModuleOutputsRecorder(model, family.tap_modules(name))
    inputs, samples = TASK.probe_batch((SIZE, SIZE))
    with DefaultScope.overwrite_default_scope("mmdet"):
        losses = model.loss(inputs, samples)
    total = sum(v.sum() if torch.is_tensor(v) else sum(x.sum() for x in v)
                for k, v in losses.items() if "loss" in k)
    assert torch.isfinite(total) and total > 0
    if family.masks:
        assert "s0.loss_mask" in losses and "s2.loss_mask" in losses
    check_taps(recorder, specs)  # the taps as the training forward records them
    total.backward()
    for part in ("backbone", "neck"):
        grads = [p.grad for p in getattr(model, part).parameters() if p.requires_grad]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in (p.grad for p in model.backbone.parameters()))

    recorder.reset()
    model.eval()
    with torch.no_grad(), DefaultScope.overwrite_default_scope("mmdet"):
        model._forward(inputs, samples)
    check_taps(recorder, specs)  # and as the teacher's (eval) forward records them


@pytest.mark.parametrize("name", ["gfl_r18", "retinanet_r50"])
def test_head_feature_taps_are_pre_activation(name):
    """``cls_feature`` holds negative values (no ReLU applied, none applied in place later), and
    the 4th stacked conv then the classifier on their ReLU give exactly ``cls_scores``."""
    torch.manual_seed(0)
    family = family_of(name)
    model = build(name).eval()
    modules = family.tap_modules(name)
    recorder = ModuleOutputsRecorder(model, {k: modules[k] for k in ("cls_feature", "cls_scores")})
    inputs, samples = TASK.probe_batch((SIZE, SIZE))
    with torch.no_grad():
        model._forward(inputs, samples)
    feats, scores = recorder.get("cls_feature"), recorder.get("cls_scores")
    assert all((f < 0).any() for f in feats)
    classifier = dict(model.named_modules())[modules["classifier"]]
    with torch.no_grad():
        torch.testing.assert_close(classifier(model.bbox_head.cls_convs[3](feats[0].relu())), scores[0])


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,source,change", [
    ("gfl_r50", "gfl/gfl_r50_fpn_1x_coco.py", {}),
    # no mmdet GFL-R18 config: mmdet's R18 configs change exactly these two things
    ("gfl_r18", "gfl/gfl_r50_fpn_1x_coco.py",
     {"backbone": {"depth": 18}, "neck": {"in_channels": [64, 128, 256, 512]}}),
    ("retinanet_r50", "retinanet/retinanet_r50_fpn_1x_coco.py", {}),
    ("retinanet_r101", "retinanet/retinanet_r101_fpn_1x_coco.py", {}),
    ("cascade_mask_rcnn_r50", "cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py", {}),
    ("cascade_mask_rcnn_r101", "cascade_rcnn/cascade-mask-rcnn_r101_fpn_1x_coco.py", {}),
])
def test_full_width_parameters_equal_mmdets_config(name, source, change):
    """Built on the meta device (no memory, no initialisation): only the count matters."""
    cfg = library_config(f"mmdet::{source}").model  # a ConfigDict, as mmdet's detectors expect
    for part, values in change.items():
        cfg[part].update(values)
    with DefaultScope.overwrite_default_scope("mmdet"), torch.device("meta"):
        reference = MODELS.build(cfg)
    ours = build(name, 1.0, device="meta", classes=80)  # mmdet's configs are COCO's
    assert _params(ours) == _params(reference)


def test_config_scales_every_width_and_applies_classes_everywhere():
    cfg = family_of("cascade_mask_rcnn_r50").config("cascade_mask_rcnn_r50", 7, 0.5)
    assert cfg["backbone"]["base_channels"] == cfg["backbone"]["stem_channels"] == 32
    assert cfg["neck"]["in_channels"] == [128, 256, 512, 1024] and cfg["neck"]["out_channels"] == 128
    roi = cfg["roi_head"]
    assert [h["num_classes"] for h in roi["bbox_head"]] == [7, 7, 7]
    assert [h["fc_out_channels"] for h in roi["bbox_head"]] == [512] * 3
    assert roi["mask_head"]["num_classes"] == 7 and roi["mask_head"]["conv_out_channels"] == 128
    gfl = family_of("gfl_r18").config("gfl_r18", 7, 0.125)
    assert gfl["neck"]["in_channels"] == [8, 16, 32, 64]
    assert gfl["bbox_head"]["feat_channels"] == 32 and gfl["bbox_head"]["num_classes"] == 7
    assert gfl["bbox_head"]["norm_cfg"]["num_groups"] == 16  # 2 channels a group
    assert family_of("gfl_r50").config("gfl_r50", 80)["bbox_head"]["norm_cfg"]["num_groups"] == 32


def test_backbone_init_is_local_and_pretrained_keeps_mmdets_frozen_stem():
    scratch = family_of("retinanet_r50").config("retinanet_r50", 80, 0.25, norm="SyncBN")
    backbone = scratch["backbone"]
    assert backbone["init_cfg"] is None and backbone["norm_cfg"]["type"] == "SyncBN"
    assert backbone["frozen_stages"] == -1 and backbone["norm_eval"] is False
    pre = family_of("retinanet_r50").config("retinanet_r50", 80, 0.25, pretrained="/ckpt/r50.pth",
                                            pretrained_prefix="backbone.")["backbone"]
    assert pre["init_cfg"] == dict(type="Pretrained", checkpoint="/ckpt/r50.pth", prefix="backbone.")
    assert pre["frozen_stages"] == 1 and pre["norm_eval"] is True
    for name in DETECTORS:
        text = str(family_of(name).config(name, 80, 0.25))
        assert "torchvision://" not in text and "open-mmlab" not in text


def test_cascade_cost_options_default_to_mmdet_and_reach_the_model():
    family = family_of("cascade_mask_rcnn_r50")
    paper = family.config("cascade_mask_rcnn_r50", 80, 0.125)
    mmdet = library_config("mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py").model
    assert paper["train_cfg"] == mmdet.train_cfg.to_dict()
    assert paper["test_cfg"] == mmdet.test_cfg.to_dict()
    model = build("cascade_mask_rcnn_r50", **SMOKE["cascade_mask_rcnn"])
    assert model.train_cfg.rpn_proposal.nms_pre == model.train_cfg.rpn_proposal.max_per_img == 64
    assert model.test_cfg.rpn.nms_pre == model.test_cfg.rpn.max_per_img == 32
    assert [s.num for s in model.roi_head.bbox_sampler] == [32, 32, 32]
    assert model.roi_head.test_cfg.max_per_img == 10 and model.roi_head.test_cfg.score_thr == 0.01
    with pytest.raises(SpecError, match="unknown detection option.*valid: train_proposals"):
        family.config("cascade_mask_rcnn_r50", 80, 0.125, proposals=10)
    with pytest.raises(SpecError, match="must be a positive integer"):
        family.config("cascade_mask_rcnn_r50", 80, 0.125, sampled_rois=0)
    with pytest.raises(SpecError, match="'score_thr' must be a score in"):
        family.config("cascade_mask_rcnn_r50", 80, 0.125, score_thr=1.5)
    gfl = family_of("gfl_r50").config("gfl_r50", 80, 0.125, max_per_img=5, score_thr=0)
    assert gfl["test_cfg"]["max_per_img"] == 5 and gfl["test_cfg"]["nms_pre"] == 1000
    assert gfl["test_cfg"]["score_thr"] == 0.0
    assert family_of("retinanet_r50").config("retinanet_r50", 80, 0.125)["test_cfg"] == \
        library_config("mmdet::retinanet/retinanet_r50_fpn_1x_coco.py").model.test_cfg.to_dict()


def test_shared_head_taps_name_their_module_once():
    modules = family_of("gfl_r50").tap_modules("gfl_r50")
    assert modules["cls_scores"] == modules["classifier"] == "bbox_head.gfl_cls"
    assert modules["cls_feature"] == "bbox_head.cls_convs.2.gn"
    assert modules["bbox_preds"] == [f"bbox_head.scales.{i}" for i in range(5)]
    assert modules["fpn"] == [f"neck[{i}]" for i in range(5)]
    assert family_of("retinanet_r50").tap_modules("retinanet_r50")["reg_feature"] == \
        "bbox_head.reg_convs.2.conv"
    taps = family_of("cascade_mask_rcnn_r50").taps("cascade_mask_rcnn_r50")
    assert [t.stride for t in taps["fpn"]] == [4, 8, 16, 32, 64]
    assert [t.stride for t in family_of("gfl_r18").taps("gfl_r18")["fpn"]] == [8, 16, 32, 64, 128]
