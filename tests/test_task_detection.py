"""The detection task (mmdet): model config, data and evaluator configs, probe batch, ground
truth kinds, CocoMetric's keys as result metrics, Params without FLOPs, and a distillation
model between two detectors that reads the task's ground truth."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.evaluator import Evaluator
from mmengine.registry import MODELS, DefaultScope
from mmengine.structures import InstanceData

from suite.errors import SpecError, SuiteError
from suite.methods.spec import Input, LossSpec, MethodSpec, S, T
from suite.models import taps
from suite.tasks import get_task, task_of
from suite.train import complexity

TASK = get_task("detection")
TASK.load_modules()
WIDTH, CLASSES = 0.125, 3


def test_detection_is_a_task_of_mmdet():
    assert task_of({"task": "detection"}) is TASK and TASK.scope == "mmdet"
    assert TASK.flops is False and get_task("segmentation").flops is True
    assert TASK.visualizer("v", [])["type"] == "DetLocalVisualizer"
    assert TASK.visualization_hook() == dict(type="DetVisualizationHook", draw=False)


def test_model_config_preprocessor_and_options():
    gfl = TASK.model_config("gfl_r18", 80, WIDTH, "BN", (64, 64))
    pre = gfl["data_preprocessor"]
    assert pre["type"] == "DetDataPreprocessor" and pre["pad_size_divisor"] == 32
    assert pre["mean"] == [123.675, 116.28, 103.53] and pre["std"] == [58.395, 57.12, 57.375]
    assert pre["bgr_to_rgb"] is True and not pre.get("pad_mask", False)
    cascade = TASK.model_config("cascade_mask_rcnn_r50", 80, WIDTH, "BN", (64, 64),
                                options={"sampled_rois": 16})
    assert cascade["data_preprocessor"]["pad_mask"] is True
    assert [s["sampler"]["num"] for s in cascade["train_cfg"]["rcnn"]] == [16, 16, 16]
    with pytest.raises(SpecError, match="'pspnet_r18' is a segmentation model; detection models:"):
        TASK.model_config("pspnet_r18", 80, WIDTH, "BN", (64, 64))
    with pytest.raises(SpecError, match="unknown detection option"):
        TASK.model_config("gfl_r18", 80, WIDTH, "BN", (64, 64), options={"sampled_rois": 16})
    with pytest.raises(SpecError, match="segmentation models take no options"):
        get_task("segmentation").model_config("pspnet_r18", 21, WIDTH, "BN", (64, 64),
                                              options={"max_per_img": 5})


@pytest.mark.parametrize("model,masks", [("retinanet_r50", False), ("cascade_mask_rcnn_r50", True)])
def test_dataloaders_and_evaluator_from_mmdets_coco_configs(model, masks, tmp_path):
    config = {"task": "detection", "model": model, "crop": [96, 128], "num_workers": 0,
              "data_root": str(tmp_path)}
    loaders = TASK.dataloaders(config, str(tmp_path), batch_size=4)
    train, val = loaders["train_dataloader"], loaders["val_dataloader"]
    assert train["batch_size"] == 4 and val["batch_size"] == 1
    assert train["dataset"]["type"] == "CocoDataset" and train["dataset"]["data_root"] == str(tmp_path)
    loads = [t for t in train["dataset"]["pipeline"] if t["type"] == "LoadAnnotations"][0]
    assert loads.get("with_mask", False) is masks  # coco_detection.py loads boxes only
    resize = [t for t in train["dataset"]["pipeline"] if t["type"] == "Resize"][0]
    assert tuple(resize["scale"]) == (128, 96)  # (w, h): the profile's crop
    (metric,) = TASK.evaluator(config, tmp_path / "cell")
    assert metric["type"] == "CocoMetric" and metric["format_only"] is False
    assert metric["metric"] == (["bbox", "segm"] if masks else ["bbox"])
    assert metric["ann_file"] == str(tmp_path / "annotations" / "instances_val2017.json")
    with pytest.raises(SuiteError, match="needs the cell's data_root"):
        TASK.evaluator({**config, "data_root": None}, tmp_path / "cell")


def test_probe_batch_runs_every_family_and_its_ground_truth():
    inputs, samples = TASK.probe_batch((96, 128))
    assert inputs.shape == (1, 3, 96, 128) and len(samples) == 1
    meta = samples[0].metainfo
    for key in ("img_shape", "ori_shape", "pad_shape", "batch_input_shape"):
        assert tuple(meta[key]) == (96, 128)
    assert tuple(meta["scale_factor"]) == (1.0, 1.0)
    gt = samples[0].gt_instances
    boxes = TASK.ground_truth(samples, "gt_boxes")
    assert len(boxes) == 1 and boxes[0].shape == (2, 4) and boxes[0].dtype == torch.float32
    torch.testing.assert_close(boxes[0], torch.tensor([[16.0, 12.0, 64.0, 48.0],
                                                       [64.0, 24.0, 112.0, 84.0]]))
    assert TASK.ground_truth(samples, "gt_labels")[0].tolist() == [0, 1]
    assert TASK.ground_truth(samples, "img_shapes") == [(96, 128)]
    assert gt.masks.masks.shape == (2, 96, 128)
    # each mask is its box: 48 x 36 pixels
    assert gt.masks.masks[0].sum() == 48 * 36 and gt.masks.masks[0][12:48, 16:64].all()
    # fixed values: the same batch every time
    assert torch.equal(inputs, TASK.probe_batch((96, 128))[0])


def test_ground_truth_of_a_loaded_batch():
    """mmdet's loaded samples carry ``HorizontalBoxes``; ``img_shapes`` is the padded batch input
    (``batch_input_shape``), falling back to ``img_shape`` before the preprocessor ran."""
    _, (a,) = TASK.probe_batch((64, 64))
    _, (b,) = TASK.probe_batch((64, 64))
    b.gt_instances = InstanceData(bboxes=HorizontalBoxes(torch.tensor([[1.0, 2.0, 3.0, 4.0]])),
                                  labels=torch.tensor([5], dtype=torch.int32))
    b.set_metainfo({"img_shape": (50, 60), "batch_input_shape": (64, 96)})
    boxes = TASK.ground_truth([a, b], "gt_boxes")
    assert [tuple(x.shape) for x in boxes] == [(2, 4), (1, 4)]
    assert boxes[1].tolist() == [[1.0, 2.0, 3.0, 4.0]]
    labels = TASK.ground_truth([a, b], "gt_labels")
    assert labels[1].dtype == torch.long and labels[1].tolist() == [5]
    assert TASK.ground_truth([a, b], "img_shapes") == [(64, 64), (64, 96)]
    del b.batch_input_shape
    assert TASK.ground_truth([b], "img_shapes") == [(50, 60)]
    with pytest.raises(SuiteError, match="no ground truth 'gt_seg'; valid: gt_boxes, gt_labels, "
                                         "img_shapes"):
        TASK.ground_truth([a], "gt_seg")


def test_result_metrics_from_cocometric_keys():
    nan = float("nan")
    metrics = {"coco/bbox_mAP": 0.374, "coco/bbox_mAP_50": 0.561, "coco/bbox_mAP_75": 0.4,
               "coco/bbox_mAP_s": 0.2, "coco/bbox_mAP_m": 0.41, "coco/bbox_mAP_l": -1.0,
               "coco/segm_mAP": 0.325, "coco/segm_mAP_50": 0.5}
    rec = TASK.result_metrics(metrics)
    assert rec["ap_box"] == pytest.approx(37.4) and rec["ap_box_50"] == pytest.approx(56.1)
    assert rec["ap_box_75"] == pytest.approx(40.0) and rec["ap_box_s"] == pytest.approx(20.0)
    assert rec["ap_box_m"] == pytest.approx(41.0) and math.isnan(rec["ap_box_l"])  # -1: no GT
    assert rec["ap_mask"] == pytest.approx(32.5) and rec["ap_mask_50"] == pytest.approx(50.0)
    assert math.isnan(rec["ap_mask_75"])
    assert set(rec) == {f"ap_{k}{s}" for k in ("box", "mask")
                        for s in ("", "_50", "_75", "_s", "_m", "_l")}
    plain = TASK.result_metrics({"bbox_mAP": 0.25})  # CocoMetric without an Evaluator's prefix
    assert plain["ap_box"] == 25.0 and math.isnan(plain["ap_mask"])
    assert all(math.isnan(v) for v in TASK.result_metrics({"mIoU": nan}).values())


def test_result_metrics_of_mmdets_cocometric_under_an_evaluator(tmp_path):
    """The real keys: mmdet's CocoMetric in mmengine's Evaluator (as the Runner runs it) scores
    a perfect box and mask prediction of a 20 x 20 object (a small one)."""
    ann = {"images": [{"id": 1, "file_name": "a.jpg", "height": 64, "width": 64}],
           "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20],
                            "area": 400, "iscrowd": 0,
                            "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]]}]}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    with DefaultScope.overwrite_default_scope("mmdet"):  # the Runner's default scope
        evaluator = Evaluator([dict(type="CocoMetric", ann_file=str(tmp_path / "ann.json"),
                                    metric=["bbox", "segm"])])
    evaluator.dataset_meta = {"classes": ("a", "b")}
    mask = np.zeros((1, 64, 64), dtype=bool)
    mask[0, 10:30, 10:30] = True
    pred = {"img_id": 1, "ori_shape": (64, 64),
            "pred_instances": {"bboxes": torch.tensor([[10.0, 10.0, 30.0, 30.0]]),
                               "scores": torch.tensor([0.9]), "labels": torch.tensor([0]),
                               "masks": torch.from_numpy(mask)}}
    evaluator.process([pred])
    metrics = evaluator.evaluate(1)
    assert metrics["coco/bbox_mAP"] == 1.0 and metrics["coco/segm_mAP"] == 1.0
    rec = TASK.result_metrics(metrics)
    assert rec["ap_box"] == rec["ap_box_50"] == rec["ap_box_s"] == rec["ap_mask"] == 100.0
    assert math.isnan(rec["ap_box_m"]) and math.isnan(rec["ap_mask_l"])  # no medium/large GT


def test_params_without_flops_for_detectors():
    with DefaultScope.overwrite_default_scope("mmdet"):
        model = MODELS.build(TASK.model_config("cascade_mask_rcnn_r50", CLASSES, WIDTH, "BN",
                                               (64, 64)))
    count = sum(p.numel() for p in model.parameters())
    assert complexity(model, [64, 64], flops=TASK.flops) == {"params_m": round(count / 1e6, 4)}


def test_batch_size_of_a_loader_with_mmdets_batch_sampler():
    """mmdet's train loader groups images by aspect ratio in a batch sampler: the loader has no
    ``batch_size`` of its own, the profile's batch check reads the sampler's."""
    from mmdet.datasets.samplers import AspectRatioBatchSampler
    from torch.utils.data import DataLoader, SequentialSampler

    from suite.train import loader_batch_size

    data = list(range(8))
    grouped = DataLoader(data, batch_sampler=AspectRatioBatchSampler(SequentialSampler(data), 3))
    assert grouped.batch_size is None and loader_batch_size(grouped) == 3
    assert loader_batch_size(DataLoader(data, batch_size=4)) == 4


def test_distillation_between_detectors_reads_taps_and_ground_truth():
    """GFL-R50 -> GFL-R18: FGD on the FPN levels (boxes and the padded input's shape from the
    task) and PKD; the probe learns per-level channels; gradients reach the student only."""
    import suite.distill.model  # noqa: F401  (registers DistillationModel)

    fpn = {"preds_S": S("fpn"), "preds_T": T("fpn")}
    method = MethodSpec(name="det-test", losses={
        "fgd": LossSpec("det_fgd", 1.0, {**fpn, "gt_bboxes": Input("data", "gt_boxes"),
                                         "img_shape": Input("data", "img_shapes")},
                        channels_from="fpn"),
        "pkd": LossSpec("pkd", 1.0, dict(fpn))})
    student = TASK.model_config("gfl_r18", CLASSES, WIDTH, "BN", (128, 128))
    teacher = TASK.model_config("gfl_r50", CLASSES, WIDTH, "BN", (128, 128))
    with DefaultScope.overwrite_default_scope("mmdet"):
        model = MODELS.build(dict(
            type="DistillationModel", student=student, teacher=teacher,
            method=dataclasses.asdict(method), student_taps=taps("gfl_r18"),
            teacher_taps=taps("gfl_r50"), load_teacher_checkpoint=False, probe_size=(128, 128),
            width=WIDTH, task="detection"))
        assert len(model.distill_losses["fgd"].gc_t) == 5  # one per FPN level, from the probe
        (x, a), (_, b) = TASK.probe_batch((128, 128)), TASK.probe_batch((128, 128))
        # two images: PKD standardises over N x H x W, a single value on the 1 x 1 level at batch 1
        losses = model.train().loss(torch.cat([x, x.flip(-1)]), a + b)
    assert {"distill.fgd", "distill.pkd", "loss_cls", "loss_bbox", "loss_dfl"} <= set(losses)
    total = sum(v.sum() if torch.is_tensor(v) else sum(x.sum() for x in v)
                for k, v in losses.items() if "loss" in k or k in ("distill.fgd", "distill.pkd"))
    assert torch.isfinite(total) and losses["distill.fgd"] > 0
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(p.grad is not None for p in model.student.neck.parameters())


def test_teacher_forward_of_cascade_on_flipped_training_samples_fills_its_taps():
    """A distillation step runs the teacher on training samples, horizontally flipped ones
    included: the task runs backbone, neck and RPN (every tap), not mmdet's tensor-mode RoI
    head, which cannot take a flipped sample. A single-stage teacher runs its dense head."""
    from suite.distill.recorders import ModuleOutputsRecorder

    for name, head in (("cascade_mask_rcnn_r50", "rpn_cls_scores"), ("retinanet_r50", "cls_scores")):
        with DefaultScope.overwrite_default_scope("mmdet"):
            model = MODELS.build(TASK.model_config(name, CLASSES, WIDTH, "BN", (64, 64))).eval()
        inputs, samples = TASK.probe_batch((64, 64))
        samples[0].set_metainfo(dict(flip=True, flip_direction="horizontal"))
        wanted = {k: v for k, v in taps(name).items() if k in ("stages", "fpn", head)}
        recorder = ModuleOutputsRecorder(model, wanted)
        with torch.no_grad():
            TASK.teacher_forward(model, inputs, samples)
        assert len(recorder.get("stages")) == 4 and len(recorder.get("fpn")) == 5
        assert len(recorder.get(head)) == 5  # one output per FPN level


def test_cascade_distillation_step_on_flipped_samples():
    """The step that failed when the teacher ran mmdet's whole tensor-mode forward: a Cascade
    R101 -> R50 PKD step on a batch holding a horizontally flipped image."""
    import suite.distill.model  # noqa: F401  (registers DistillationModel)

    method = MethodSpec(name="det-test", losses={
        "pkd": LossSpec("pkd", 1.0, {"preds_S": S("fpn"), "preds_T": T("fpn")})})
    with DefaultScope.overwrite_default_scope("mmdet"):
        model = MODELS.build(dict(
            type="DistillationModel",
            student=TASK.model_config("cascade_mask_rcnn_r50", CLASSES, WIDTH, "BN", (64, 64)),
            teacher=TASK.model_config("cascade_mask_rcnn_r101", CLASSES, WIDTH, "BN", (64, 64)),
            method=dataclasses.asdict(method), student_taps=taps("cascade_mask_rcnn_r50"),
            teacher_taps=taps("cascade_mask_rcnn_r101"), load_teacher_checkpoint=False,
            probe_size=(64, 64), width=WIDTH, task="detection"))
    (x, a), (_, b) = TASK.probe_batch((64, 64)), TASK.probe_batch((64, 64))
    b[0].set_metainfo(dict(flip=True, flip_direction="horizontal"))
    a[0].set_metainfo(dict(flip=False, flip_direction=None))
    losses = model.train().loss(torch.cat([x, x.flip(-1)]), a + b)
    assert torch.isfinite(losses["distill.pkd"])
