"""Object detection and instance segmentation with mmdetection: detectors from mmdet's configs
(:mod:`suite.families.gfl`, :mod:`~suite.families.retinanet`,
:mod:`~suite.families.cascade_mask_rcnn`), mmdet's COCO dataset configs and pipelines
(:func:`suite.data.mmdet_config.mmdet_dataset_config`), mmdet's ``CocoMetric``.

Profile options: the profile's ``detection:`` section maps a model family to keyword options of
its ``config``; the planner copies the cell's family entry into the cell config's ``detection``
(absent, every option keeps mmdet's value)::

    detection:
      cascade_mask_rcnn: {train_proposals: 300, test_proposals: 100, sampled_rois: 64}
      gfl: {score_thr: 0.01}

Cascade Mask R-CNN takes ``train_proposals`` (mmdet: 2000), ``test_proposals`` (1000),
``sampled_rois`` (512), ``max_per_img`` (100) and ``score_thr`` (0.05); GFL and RetinaNet
``nms_pre`` (1000), ``max_per_img`` (100) and ``score_thr`` (0.05). An option a family lacks
is an error naming the valid ones.

Ground truth a distillation loss may ask for (``Input(source="data", tap=KIND)``):

``gt_boxes``    per image, an ``N_i x 4`` float tensor of boxes ``x1, y1, x2, y2`` in input pixels
                (the resized image the network sees; padding adds only to the right and bottom)
``gt_labels``   per image, the ``N_i`` class indices (long)
``img_shapes``  per image, ``(h, w)`` of the padded batch input (``batch_input_shape``, set by
                mmdet's data preprocessor; ``img_shape`` when a sample has none): the extent
                the FPN maps cover, against which box coordinates are scaled onto a level's grid
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from suite.errors import SpecError, SuiteError
from suite.tasks.base import Task, loaders

GROUND_TRUTH = ("gt_boxes", "gt_labels", "img_shapes")
# result key -> CocoMetric's item (``coco/bbox_mAP`` under a Runner, ``bbox_mAP`` alone)
COCO_ITEMS = {"": "mAP", "_50": "mAP_50", "_75": "mAP_75", "_s": "mAP_s", "_m": "mAP_m",
              "_l": "mAP_l"}


def _family(model: str) -> Any:
    from suite.families import family_of

    family = family_of(model)
    if family.task != "detection":
        from suite.families import FAMILIES

        valid = ", ".join(v for f in FAMILIES.values() if f.task == "detection" for v in f.variants)
        raise SpecError(f"model {model!r} is a {family.task} model; detection models: {valid}")
    return family


def has_masks(config: dict[str, Any]) -> bool:
    """Whether the cell's model (the student of a distillation cell) predicts instance masks."""
    return bool(_family(config["model"]).masks)


def coco_ap(metrics: dict[str, float], kind: str, item: str) -> float:
    """CocoMetric's ``{kind}_{item}`` (``coco/`` prefix or none) in percent; NaN when absent
    or when COCO reports -1 (no ground truth of that size)."""
    for key in (f"coco/{kind}_{item}", f"{kind}_{item}"):
        if key in metrics:
            value = float(metrics[key])
            return round(100.0 * value, 6) if value >= 0 else float("nan")
    return float("nan")


class DetectionTask(Task):
    """The ``detection`` task (mmdet scope)."""

    name = "detection"
    scope = "mmdet"
    flops = False  # Params only: a two-stage detector's forward needs image metadata

    def load_modules(self) -> None:
        from mmdet.utils import register_all_modules

        import suite.nets.det_heads  # noqa: F401  (TapGFLHead, TapRetinaHead)
        import suite.nets.distribution_heads  # noqa: F401  (TapRetinaGFLHead, RPNGFLHead)

        register_all_modules(init_default_scope=False)

    def model_config(self, model: str, num_classes: int, width: float, norm: str,
                     crop: tuple[int, int], pretrained: str | None = None,
                     pretrained_prefix: str | None = None,
                     options: dict[str, Any] | None = None) -> dict[str, Any]:
        """The family's mmdet config with mmdet's ``DetDataPreprocessor`` (ImageNet mean/std,
        BGR to RGB, batches padded to a multiple of 32, masks padded too when the model has a
        mask head); ``crop`` is the data pipeline's business, not the model's."""
        family = _family(model)
        cfg = family.config(model, num_classes, width, norm=norm, pretrained=pretrained,
                            pretrained_prefix=pretrained_prefix, **dict(options or {}))
        pre = cfg["data_preprocessor"]
        pre.update(pad_size_divisor=32)
        if family.masks:
            pre.update(pad_mask=True)
        return cfg

    def dataloaders(self, config: dict[str, Any], root: str, batch_size: int) -> dict[str, Any]:
        """mmdet's COCO dataset config pointed at ``root`` at the profile's crop (masks loaded
        for a model with a mask head); the global batch split as for segmentation."""
        base = self._dataset(config, root)
        return loaders(base, batch_size)

    def evaluator(self, config: dict[str, Any], cell_dir: Path) -> list[dict[str, Any]]:
        """mmdet's ``CocoMetric`` of the dataset config (its annotation file under the cell's
        ``data_root``): ``bbox``, plus ``segm`` for a model with a mask head."""
        root = config.get("data_root")
        if not root:
            raise SuiteError("the detection evaluator needs the cell's data_root (the COCO "
                             "annotations it scores against)")
        metric = self._dataset(config, root).val_evaluator.to_dict()
        metric.update(metric=["bbox", "segm"] if has_masks(config) else ["bbox"],
                      format_only=False)
        return [metric]

    @staticmethod
    def _dataset(config: dict[str, Any], root: str) -> Any:
        from suite.data.mmdet_config import mmdet_dataset_config

        return mmdet_dataset_config(root, tuple(config["crop"]),
                                    num_workers=int(config.get("num_workers", 0)),
                                    with_mask=has_masks(config))

    def teacher_forward(self, teacher: Any, inputs: Tensor, data_samples: list[Any]) -> Any:
        """Backbone and neck, then the dense head (GFL, RetinaNet) or the RPN head (Cascade):
        every teacher tap lies there. A two-stage detector's RoI heads are not run: no tap reads
        them, and mmdet's tensor-mode Cascade RoI head fails on horizontally flipped training
        samples (``merge_aug_masks`` flips a tensor with a negative step)."""
        feats = teacher.extract_feat(inputs)
        head = getattr(teacher, "bbox_head", None) if not getattr(teacher, "with_rpn", False) \
            else teacher.rpn_head
        return head(feats) if head is not None else feats

    def visualizer(self, name: str, vis_backends: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(type="DetLocalVisualizer", name=name, vis_backends=vis_backends)

    def visualization_hook(self) -> dict[str, Any]:
        return dict(type="DetVisualizationHook", draw=False)

    def ground_truth(self, data_samples: list[Any], kind: str) -> list[Any]:
        """``gt_boxes``, ``gt_labels`` or ``img_shapes`` of the batch (module docstring)."""
        if kind == "gt_boxes":
            from mmdet.structures.bbox import get_box_tensor

            return [get_box_tensor(d.gt_instances.bboxes).float() for d in data_samples]
        if kind == "gt_labels":
            return [d.gt_instances.labels.long() for d in data_samples]
        if kind == "img_shapes":
            return [tuple(int(v) for v in d.metainfo.get("batch_input_shape",
                                                         d.metainfo["img_shape"])[:2])
                    for d in data_samples]
        raise SuiteError(f"detection has no ground truth {kind!r}; valid: {', '.join(GROUND_TRUTH)}")

    def probe_batch(self, size: tuple[int, int]) -> tuple[Tensor, list[Any]]:
        """One ``size`` image (fixed pseudo-random values) with two boxes of classes 0 and 1 and
        their box-shaped masks, and the metainfo mmdet's heads read (``img_shape``,
        ``ori_shape``, ``pad_shape``, ``batch_input_shape``, ``scale_factor``): enough for
        ``_forward`` and ``loss`` of every detection family (two classes at least)."""
        import numpy as np
        from mmdet.structures import DetDataSample
        from mmdet.structures.mask import BitmapMasks
        from mmengine.structures import InstanceData

        h, w = (int(v) for v in size)
        boxes = torch.tensor([[w / 8, h / 8, w / 2, h / 2], [w / 2, h / 4, w * 7 / 8, h * 7 / 8]])
        masks = np.zeros((2, h, w), dtype=np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.round().long().tolist()):
            masks[i, y1:y2, x1:x2] = 1
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                                             batch_input_shape=(h, w), scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([0, 1]),
                                           masks=BitmapMasks(masks, h, w))
        inputs = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
        return inputs, [sample]

    def result_metrics(self, metrics: dict[str, float]) -> dict[str, Any]:
        """``ap_box``, ``ap_box_50``, ``ap_box_75``, ``ap_box_s``/``_m``/``_l`` from CocoMetric's
        ``bbox_*`` items and the same ``ap_mask*`` from its ``segm_*`` items, in percent (NaN
        when not measured: no mask head; no detection above ``score_thr`` in the whole
        validation set, where CocoMetric reports nothing; no ground truth of a size)."""
        out = {}
        for kind, prefix in (("bbox", "ap_box"), ("segm", "ap_mask")):
            for suffix, item in COCO_ITEMS.items():
                out[prefix + suffix] = coco_ap(metrics, kind, item)
        return out
