"""Distillation health: the measures on a hand-made collapsed and a healthy student, the probe
hook (log line, scalars, no trace on the model), the collapse verdict, status and reports."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.registry import MODELS
from mmseg.utils import register_all_modules
from seg_batch import batch as seg_batch
from torch import nn

import suite.distill.hooks  # noqa: F401  (registers the hooks)
import suite.distill.model  # noqa: F401  (registers DistillationModel)
from suite.distill.health import (
    DistillHealthHook,
    HealthConfig,
    feature_std,
    grad_norms,
    hook_config,
    majority_share,
    prediction_entropy,
    probe,
    since_iter,
    stage_stds,
    student_parameters,
    verdict,
)
from suite.metrics import majority
from suite.models import segmentor_config, taps

register_all_modules(init_default_scope=True)
WIDTH, SIZE, CLASSES = 0.125, 32, 5
STAGES = taps("pspnet_r18")["stages"]
LOGITS = taps("pspnet_r18")["logits"]


def _entropy(logits: list[float]) -> float:
    """-Σ p log p of softmax(logits), by hand."""
    e = [math.exp(v) for v in logits]
    p = [v / sum(e) for v in e]
    return -sum(q * math.log(q) for q in p)


def _segmentor(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    cfg = segmentor_config("pspnet_r18", CLASSES, WIDTH)
    cfg["data_preprocessor"]["size"] = (SIZE, SIZE)
    return MODELS.build(cfg)


def _collapse_head(model: nn.Module, cls: int = 2) -> None:
    """The decode head predicts ``cls`` everywhere, whatever the input."""
    conv = model.decode_head.conv_seg
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.bias[cls] = 50.0


def _raw_batch(n: int = 2) -> dict:
    """A batch as the train dataloader yields it (uint8 images, before the preprocessor)."""
    return {"inputs": [torch.randint(0, 256, (3, SIZE, SIZE), dtype=torch.uint8) for _ in range(n)],
            "data_samples": seg_batch(n, SIZE, CLASSES)[1]}


def _data(model: nn.Module, n: int = 2) -> dict:
    return model.data_preprocessor(_raw_batch(n), True)


# ----------------------------------------------------------------------------- the measures


def test_entropy_and_majority_of_constant_and_varied_logits():
    collapsed = torch.zeros(2, 4, 8, 8)
    collapsed[:, 2] = 5.0
    assert majority_share(collapsed) == (1.0, 2)
    assert prediction_entropy(collapsed) == pytest.approx(_entropy([0, 0, 5, 0]), rel=1e-5)

    healthy = torch.zeros(2, 4, 8, 8)
    for c in range(4):  # class c wins on the rows 2c, 2c+1
        healthy[:, c, 2 * c:2 * c + 2] = 3.0
    share, cls = majority_share(healthy)
    assert share == pytest.approx(0.25) and share < 0.98 and cls == 0
    assert prediction_entropy(healthy) == pytest.approx(_entropy([3, 0, 0, 0]), rel=1e-5)
    assert prediction_entropy(torch.zeros(1, 7, 3, 3)) == pytest.approx(math.log(7), rel=1e-6)


def test_feature_std_zero_for_constant_features_positive_for_varied():
    constant = torch.ones(2, 3, 4, 4) * torch.tensor([1.0, -2.0, 5.0])[None, :, None, None]
    assert feature_std(constant) == pytest.approx(0.0, abs=1e-7)  # per-channel offsets only
    x = torch.tensor([[0.0, 2.0], [1.0, 1.0]])  # (N=2, C=2): channel 0 std 0.5, channel 1 std 0.5
    assert feature_std(x) == pytest.approx(0.5)
    assert feature_std(torch.randn(2, 8, 4, 4)) > 0.5
    assert math.isnan(feature_std(torch.randn(1, 8)))
    assert list(stage_stds([constant, x])) == ["stage1", "stage2"]


def test_grad_norms_per_term_task_and_independent_terms():
    student, teacher = nn.Linear(3, 1, bias=False), nn.Linear(3, 1, bias=False)
    x = torch.tensor([[1.0, 2.0, 2.0]])
    losses = {
        "decode.loss_ce": student(x).sum(),  # gradient x: norm 3
        "aux.loss_ce": 2 * student(x).sum(),  # gradient 2x: norm 6
        "decode.acc_seg": torch.tensor(50.0),  # not a loss term
        "distill.loss_kd": teacher(x).sum(),  # does not depend on the student
        "distill.loss_const": torch.tensor(1.0),
    }
    norms = grad_norms(losses, list(student.parameters()))
    assert norms["decode.loss_ce"] == pytest.approx(3.0)
    assert norms["aux.loss_ce"] == pytest.approx(6.0)
    assert norms["task"] == pytest.approx(9.0)  # ‖x + 2x‖
    assert norms["distill.loss_kd"] == 0.0 and norms["distill.loss_const"] == 0.0
    assert norms["distill"] == 0.0 and "decode.acc_seg" not in norms
    assert student.weight.grad is None and teacher.weight.grad is None


def test_majority_of_pred_areas():
    assert majority(np.array([10, 980, 10])) == (pytest.approx(0.98), 1)
    share, cls = majority(np.zeros(3))
    assert math.isnan(share) and cls == -1


# ----------------------------------------------------------------------------- the probe


def _buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.named_buffers()}


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_probe_on_collapsed_and_healthy_students_leaves_no_trace():
    healthy = _segmentor(0)
    data = _data(healthy)
    before_b, before_p = _buffers(healthy), _params(healthy)
    torch.manual_seed(123)
    good = probe(healthy, data, STAGES, LOGITS)
    after_rng = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after_rng), "the probe must not consume the RNG"
    for k, v in _buffers(healthy).items():
        assert torch.equal(v, before_b[k]), k  # BN running stats and num_batches_tracked
    for k, v in _params(healthy).items():
        assert torch.equal(v, before_p[k]), k
    assert all(p.grad is None for p in healthy.parameters())
    assert good["majority_share"] < 0.98
    assert 0 < good["entropy"] <= math.log(CLASSES) + 1e-6
    assert good["entropy_max"] == pytest.approx(math.log(CLASSES))
    assert list(good["feature_std"]) == ["stage1", "stage2", "stage3", "stage4"]
    assert all(v > 1e-3 for v in good["feature_std"].values())
    assert {"decode.loss_ce", "aux.loss_ce", "task"} <= set(good["grad_norm"])
    assert good["grad_norm"]["decode.loss_ce"] > 0 and "distill" not in good["grad_norm"]

    collapsed = _segmentor(0)
    _collapse_head(collapsed, cls=2)
    handle = collapsed.backbone.layer4.register_forward_hook(lambda _m, _i, out: out * 0)
    try:
        bad = probe(collapsed, _data(collapsed), STAGES, LOGITS)
    finally:
        handle.remove()
    assert bad["majority_share"] == 1.0 and bad["majority_class"] == 2
    assert bad["entropy"] == pytest.approx(_entropy([0] * 2 + [50] + [0] * 2), abs=1e-6)
    assert bad["feature_std"]["stage4"] == 0.0 and bad["feature_std"]["stage3"] > 1e-3
    cfg = HealthConfig()
    assert verdict([{"iter": 1, **bad}], None, None, cfg)["collapsed"]
    assert not verdict([{"iter": 1, **good}], 0.5, "a", cfg)["collapsed"]


def _distiller(tmp_path, method: str = "kd"):
    from suite.distill.model import DistillationModel
    from suite.methods import build_method

    torch.manual_seed(0)
    teacher = MODELS.build(segmentor_config("pspnet_r101", CLASSES, WIDTH))
    ckpt = tmp_path / "teacher.pth"
    torch.save({"state_dict": teacher.state_dict()}, ckpt)
    student = segmentor_config("pspnet_r18", CLASSES, WIDTH)
    student["data_preprocessor"]["size"] = (SIZE, SIZE)
    return DistillationModel(
        student=student, teacher=segmentor_config("pspnet_r101", CLASSES, WIDTH),
        method=asdict(build_method(method, {})), student_taps=taps("pspnet_r18"),
        teacher_taps=taps("pspnet_r101"), teacher_checkpoint=str(ckpt), probe_size=(SIZE, SIZE),
        data_preprocessor=student["data_preprocessor"])


def test_probe_of_a_distillation_model_measures_the_student_only(tmp_path):
    model = _distiller(tmp_path, "bcd")
    params = student_parameters(model)
    student_ids = {id(p) for p in model.student.parameters()}
    assert params and all(id(p) in student_ids for p in params)
    others = [p for n, p in model.named_parameters() if not n.startswith("student.")]
    assert others and not {id(p) for p in others} & {id(p) for p in params}
    before_b = _buffers(model)
    rec = probe(model, _data(model), STAGES, LOGITS)
    norms = rec["grad_norm"]
    assert {"decode.loss_ce", "distill.loss_bd", "distill.loss_cd", "task", "distill"} <= set(norms)
    assert norms["distill.loss_bd"] > 0 and norms["task"] > 0
    assert all(p.grad is None for p in model.parameters())  # teacher, connectors, student
    for k, v in _buffers(model).items():
        assert torch.equal(v, before_b[k]), k
    assert not model.teacher.training and model.distill_losses.training


# ----------------------------------------------------------------------------- the hook


class _Visualizer:
    def __init__(self) -> None:
        self.calls: list[tuple[dict, int]] = []

    def add_scalars(self, scalars: dict, step: int = 0, **_: object) -> None:
        self.calls.append((scalars, step))


def _runner(model: nn.Module, iteration: int, max_iters: int, name: str) -> SimpleNamespace:
    logger = logging.getLogger(f"test-health-{name}")
    logger.setLevel(logging.INFO)
    dataset = SimpleNamespace(metainfo={"classes": ("a", "b", "c", "d", "e")})
    return SimpleNamespace(model=model, iter=iteration, max_iters=max_iters, logger=logger,
                           visualizer=_Visualizer(), message_hub=MessageHub.get_instance(name),
                           val_dataloader=SimpleNamespace(dataset=dataset))


def test_hook_logs_a_line_writes_scalars_and_restores_bn(caplog):
    model = _segmentor(1)
    model.train()
    hook = DistillHealthHook(interval=25, stages=STAGES, logits=LOGITS)
    assert [i for i in range(1, 121) if hook.due(i, 120)] == [1, 25, 50, 75, 100, 120]
    runner = _runner(model, 0, 120, "health-hook")
    hook.before_train(runner)
    before = _buffers(model)
    with caplog.at_level(logging.INFO, logger=runner.logger.name):
        hook.after_train_iter(runner, 0, _raw_batch())
        runner.iter = 1  # iteration 2: not probed
        hook.after_train_iter(runner, 1, _raw_batch())
    for k, v in _buffers(model).items():
        assert torch.equal(v, before[k]), k
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("health iter")]
    assert len(lines) == 1 and lines[0].startswith("health iter 1/120: grad_norm task ")
    assert "decode.loss_ce" in lines[0] and "entropy" in lines[0] and "majority" in lines[0]
    assert "feature_std stage1" in lines[0]
    (scalars, step), = runner.visualizer.calls
    assert step == 1
    assert {"health/grad_norm.decode.loss_ce", "health/grad_norm.task", "health/entropy",
            "health/majority_share", "health/feature_std.stage3"} <= set(scalars)
    assert [p["iter"] for p in hook.history] == [1]
    assert runner.message_hub.get_info("health.history")[0]["iter"] == 1

    # a resumed attempt keeps the probes up to its checkpoint (runner.iter: iterations done)
    resumed = DistillHealthHook(interval=25, stages=STAGES, logits=LOGITS)
    runner.iter = 1
    resumed.before_train(runner)
    assert [p["iter"] for p in resumed.history] == [1]
    runner.iter = 0
    resumed.before_train(runner)
    assert resumed.history == []

    hook.after_val_epoch(runner, {"mIoU": 20.0, "majority.share": 0.4, "majority.class": 1.0})
    assert hook.record["collapsed"] is False and hook.record["since_iter"] is None
    assert hook.record["val_majority_class"] == "b" and len(hook.record["history"]) == 1


def test_hook_verdict_of_a_collapsed_student_and_the_warning(caplog):
    model = _segmentor(2)
    _collapse_head(model, cls=4)
    hook = DistillHealthHook(interval=2, stages=STAGES, logits=LOGITS)
    runner = _runner(model, 0, 4, "health-collapsed")
    hook.before_train(runner)
    with caplog.at_level(logging.INFO, logger=runner.logger.name):
        for i in range(4):
            runner.iter = i
            hook.after_train_iter(runner, i, _raw_batch())
        hook.after_val_epoch(runner, {"majority.share": 0.999, "majority.class": 4})
    assert [p["iter"] for p in hook.history] == [1, 2, 4]
    assert sum("looks collapsed" in r.getMessage() for r in caplog.records) == 3
    rec = hook.record
    assert rec["collapsed"] and rec["since_iter"] == 1
    assert rec["reason"] == "majority class 'e' on 99.9% of val pixels"
    assert rec["last"]["majority_share"] == 1.0 and rec["val_majority_share"] == 0.999


def test_hook_config_from_the_cell_config():
    cfg = hook_config({"model": "pspnet_r18", "health": {"interval": 10}})
    assert cfg["type"] == "DistillHealthHook" and cfg["interval"] == 10
    assert cfg["majority_threshold"] == 0.98 and cfg["stages"] == STAGES
    assert hook_config({"model": "deeplabv3plus_r18"})["interval"] == 25
    with pytest.raises(ValueError, match="unknown health setting"):
        hook_config({"model": "pspnet_r18", "health": {"every": 3}})


# ----------------------------------------------------------------------------- the verdict


def _probe(it: int, share: float, std: float = 0.5) -> dict:
    return {"iter": it, "majority_share": share, "majority_class": 0,
            "feature_std": {"stage1": 0.4, "stage4": std}}


def test_since_iter_is_the_start_of_the_last_collapsed_stretch():
    cfg = HealthConfig()
    history = [_probe(1, 0.5), _probe(25, 0.99), _probe(50, 0.6), _probe(75, 0.99),
               _probe(100, 0.995)]
    assert since_iter(history, cfg) == 75
    assert since_iter(history[:3], cfg) is None
    assert since_iter([], cfg) is None
    assert since_iter([_probe(1, 0.2, std=1e-5), _probe(2, 0.2, std=1e-6)], cfg) == 1


def test_verdict_collapsed_by_validation_share_or_dead_features():
    cfg = HealthConfig(interval=25, majority_threshold=0.98, min_feature_std=1e-3)
    history = [_probe(1, 0.5), _probe(25, 0.99), _probe(50, 0.999)]
    rec = verdict(history, 0.995, "background", cfg)
    assert rec["collapsed"] and rec["since_iter"] == 25
    assert rec["reason"] == "majority class 'background' on 99.5% of val pixels"
    assert rec["last"] == history[-1] and rec["history"] == history

    healthy = verdict([_probe(1, 0.5), _probe(25, 0.7)], 0.6, "car", cfg)
    assert not healthy["collapsed"] and healthy["since_iter"] is None and healthy["reason"] == ""

    dead = verdict([_probe(1, 0.5), _probe(25, 0.5, std=1e-5)], 0.6, "car", cfg)
    assert dead["collapsed"] and dead["since_iter"] == 25
    assert "feature std below 0.001 at iter 25 (stage4 1.0e-05)" in dead["reason"]

    distilled = {"iter": 120, "entropy": 0.021, "entropy_max": 3.0445,
                 "grad_norm": {"task": 0.3, "distill": 8.1}}
    assert verdict([distilled], 0.99, "sky", cfg)["diagnosis"] == (
        "at iter 120: entropy 0.02 of 3.04 nats; grad norm distill 8.1 vs task 0.3 (27x)")
    assert verdict([], 0.99, "sky", cfg)["diagnosis"] == ""

    # collapsed on validation only: no training probe showed it
    late = verdict([_probe(1, 0.5), _probe(25, 0.6)], 0.99, "sky", cfg)
    assert late["collapsed"] and late["since_iter"] is None
    # an evaluated-only cell (imported teacher): no probe at all
    assert verdict([], 0.3, "sky", cfg)["collapsed"] is False


# ----------------------------------------------------------------------------- ids, status, report


def test_health_settings_do_not_change_the_cell_id():
    from suite.tables import cell_id

    cfg = {"role": "student", "dataset": "voc2012", "seed": 0, "health": None}
    assert cell_id(cfg) == cell_id({**cfg, "health": {"interval": 5}})
    assert cell_id(cfg) == cell_id({k: v for k, v in cfg.items() if k != "health"})


HEALTH = {"collapsed": True, "since_iter": 25,
          "reason": "majority class 'background' on 99.6% of val pixels",
          "diagnosis": "at iter 120: entropy 0.02 of 3.04 nats; grad norm distill 8.1 vs task 0.3 (27x)"}


def _store_with_result(tmp_path, health: dict | None):
    from suite.store import Store
    from suite.tables import Cell

    cfg = {"role": "distill", "model": "pspnet_r18", "dataset": "voc2012", "seed": 0,
           "profile": "smoke", "method_name": "kd", "teacher": {"model": "pspnet_r101"}}
    cell = Cell("c0ffee000001", cfg, "table3", "kd")
    store = Store(tmp_path)
    store.write_config(cell.id, cfg)
    store.mark(cell.id, "running", new_attempt=True)
    store.finish(cell.id, {"cell_id": cell.id, "status": "done", "miou": 12.5, "aacc": 50.0,
                           "health": health})
    return cell, store


def test_collect_and_status_show_a_collapsed_cell(tmp_path):
    from suite.commands import _status_line
    from suite.report.collect import collect_cells

    cell, store = _store_with_result(tmp_path, HEALTH)
    frame = collect_cells([cell], tmp_path)
    assert bool(frame.at[0, "collapsed"])
    assert frame.at[0, "collapse_note"] == (
        "majority class 'background' on 99.6% of val pixels since iter 25 (at iter 120: entropy "
        "0.02 of 3.04 nats; grad norm distill 8.1 vs task 0.3 (27x))")
    line = _status_line(cell, "done", store, "", "")
    assert "mIoU 12.50" in line and "COLLAPSED since iter 25" in line

    healthy, store2 = _store_with_result(tmp_path / "ok", {"collapsed": False})
    assert not bool(collect_cells([healthy], tmp_path / "ok").at[0, "collapsed"])
    assert "COLLAPSED" not in _status_line(healthy, "done", store2, "", "")


def _frame(collapsed: bool) -> pd.DataFrame:
    from suite.report.synthetic import result_rows

    note = "majority class 'wall' on 99.5% of val pixels since iter 25" if collapsed else ""
    return pd.concat([
        result_rows("table4", "student", "coco_stuff10k", [26.0]),
        result_rows("table4", "bcd", "coco_stuff10k", [30.0], collapsed=collapsed,
                    collapse_note=note),
    ], ignore_index=True)


def test_report_flags_a_collapsed_cell_in_md_tex_and_html(tmp_path):
    from suite.report import render_report

    files = render_report("table4", _frame(True), tmp_path, ["md", "tex", "html", "csv"])
    md = files["md"].read_text()
    assert "30.00 (+4.00)\u2020" in md
    assert "COLLAPSED: 1 of 2 finished cell(s)" in md
    assert ("Collapsed (\u2020): 1 cell(s): BCD \u00b7 COCO-Stuff 10K (seed 0): majority class "
            "'wall' on 99.5% of val pixels since iter 25.") in md
    assert "\u2020: collapsed" in md
    tex = files["tex"].read_text()
    assert "30.00 (+4.00)$^{\\dagger}$" in tex and "COLLAPSED: 1 of 2" in tex
    assert "Collapsed (\\dag{})" in tex
    page = files["html"].read_text()
    assert 'class="collapse-warning"' in page and '<sup class="collapsed">\u2020</sup>' in page
    assert "collapsed: majority class" in page
    csv = pd.read_csv(files["csv"]).set_index("row")
    assert csv.at["bcd", "collapsed"] == 1 and csv.at["student", "collapsed"] == 0


def test_report_of_healthy_cells_has_no_flag(tmp_path):
    from suite.report import render_report

    files = render_report("table4", _frame(False), tmp_path, ["md", "tex"])
    md, tex = files["md"].read_text(), files["tex"].read_text()
    assert "\u2020" not in md and "COLLAPSED" not in md
    assert "\\dagger" not in tex and "COLLAPSED" not in tex


def test_wandb_source_reads_the_health_summary():
    from suite.report.wandb_source import run_record

    cell = {"table": "table4", "row": "bcd", "method": "bcd", "dataset": "coco_stuff10k", "seed": 0}
    summary = {"miou": 30.0, "health.collapsed": 1, "health.since_iter": 25,
               "health.reason": "majority class 'wall' on 99.5% of val pixels",
               "health.diagnosis": "at iter 120: entropy 0.02 of 3.04 nats"}
    run = SimpleNamespace(config={"cell": cell}, summary_metrics=summary, state="finished",
                          url="", created_at="")
    rec = run_record(run)
    assert rec["collapsed"] and rec["collapse_note"] == (
        "majority class 'wall' on 99.5% of val pixels since iter 25 (at iter 120: entropy 0.02 "
        "of 3.04 nats)")
    run.summary_metrics = {"miou": 30.0, "health.collapsed": 0}
    assert run_record(run)["collapsed"] is False
