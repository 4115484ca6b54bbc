"""The task seam: everything library-specific comes from a :class:`suite.tasks.Task`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

from suite.errors import SuiteError
from suite.tasks import get_task, library_config, library_config_path, task_of

ROOT = Path(__file__).resolve().parent.parent


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(SuiteError, match="unknown task 'depth'; valid: detection, segmentation"):
        get_task("depth")
    assert task_of({"task": "segmentation"}).scope == "mmseg"


def test_library_config_names_are_mmengines():
    cfg = library_config("mmseg::_base_/models/pspnet_r50-d8.py")
    assert cfg.model.decode_head.type == "PSPHead"
    with pytest.raises(FileNotFoundError, match="not found"):
        library_config_path("mmseg::_base_/models/nothing.py")
    with pytest.raises(ValueError, match="PACKAGE::PATH"):
        library_config_path("_base_/models/pspnet_r50-d8.py")


def test_segmentation_probe_batch_ground_truth_and_metrics():
    task = get_task("segmentation")
    inputs, samples = task.probe_batch((16, 24))
    assert inputs.shape == (1, 3, 16, 24) and len(samples) == 1
    gt = task.ground_truth(samples, "gt_seg")
    assert gt.shape == (1, 16, 24) and gt.dtype == torch.long
    record = task.result_metrics({"mIoU": 41.5, "aAcc": 80.0})
    assert record["miou"] == 41.5 and record["aacc"] == 80.0 and "boundary_iou" in record


def test_segmentation_model_config_from_the_task():
    cfg = get_task("segmentation").model_config("pspnet_r18", 21, 0.25, "BN", (32, 32))
    assert cfg["type"] == "EncoderDecoder" and cfg["decode_head"]["num_classes"] == 21
    assert tuple(cfg["data_preprocessor"]["size"]) == (32, 32)


@pytest.mark.parametrize("path", ["suite/train.py", "suite/distill/model.py"])
def test_training_code_never_names_the_library(path):
    tree = ast.parse((ROOT / path).read_text())
    for node in ast.walk(tree):  # docstrings may mention the libraries; the code may not
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body[0].value.value = ""
    code = ast.unparse(tree)  # without comments
    assert not re.search(r"mmseg|gt_sem_seg|conv_seg|IoUMetric|SegVisual|SegLocal", code)
