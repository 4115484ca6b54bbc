"""The ``cost`` record of a cell, the boundary/connectivity keys of its result, and
``suite plan --estimate``: one tiny cell trained for real, the estimator on hand-made results."""

from __future__ import annotations

import json
import math
import time

from suite.cli import main
from suite.cost import CostMeter, device_seconds, peak_rss_mib
from suite.estimate import estimate, predict, summary_lines
from suite.store import Store
from suite.tables import expand


def test_meter_counts_wall_and_cpu_time():
    meter = CostMeter.start()
    end = time.process_time() + 0.05
    while time.process_time() < end:  # burn 50 ms of CPU
        pass
    rec = meter.record()
    assert rec["wall_s"] >= 0.04 and rec["cpu_s"] >= 0.04
    assert rec["peak_host_mib"] > 10 and rec["peak_host_scope"] in ("cell", "process")
    assert rec["device"] == "cpu" and "gpu_s" not in rec
    assert peak_rss_mib() > 10
    assert device_seconds(rec) == rec["cpu_s"]
    assert device_seconds({"device": "cuda", "gpu_s": 7.0, "cpu_s": 99.0}) == 7.0


def _fake_result(store: Store, cell, wall: float, cpu: float) -> None:
    folder = store.cell_dir(cell.id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps({
        "cell_id": cell.id, "status": "done", "config": cell.config, "miou": 1.0,
        "cost": {"wall_s": wall, "cpu_s": cpu, "device": "cpu"}}))


def test_estimate_from_finished_cells_of_the_same_model_and_method(tmp_path):
    cells = expand("table3", "smoke")
    store = Store(tmp_path)
    voc = [c for c in cells if c.config["dataset"] == "voc2012"]
    teacher = next(c for c in voc if c.role == "teacher")
    kd = next(c for c in voc if c.row == "kd")
    _fake_result(store, kd, wall=10.0, cpu=20.0)
    mine = next(e for e in estimate(cells, store) if e.cell.id == kd.id)
    assert (mine.state, mine.basis, mine.wall_s) == ("done", "measured", 10.0)
    # KD on Cityscapes: same model, method and profile, another dataset
    kd_city = next(c for c in cells if c.row == "kd" and c.config["dataset"] == "cityscapes")
    from suite.estimate import finished

    guess = predict(kd_city, finished(tmp_path))
    assert (guess.wall_s, guess.device_s, guess.n) == (10.0, 20.0, 1)
    assert guess.basis == "same model, method, profile"
    # no finished teacher anywhere: nothing to compare a teacher with
    assert math.isnan(predict(teacher, finished(tmp_path)).wall_s)
    text = "\n".join(summary_lines(estimate(cells, store)))
    assert "without a finished cell to compare" in text and "table total:" in text


def test_tiny_cell_records_quality_and_cost_and_plan_estimates(tiny_profile, tmp_path, capsys):
    results = tmp_path / "results"
    code = main(["run", "table1", "--profile", tiny_profile, "--executor", "debug", "--wandb",
                 "disabled", "--results", str(results), "--only", "row=student"])
    assert code == 0
    cells = expand("table1", tiny_profile)
    student = next(c for c in cells if c.row == "student")
    res = Store(results).result(student.id)
    assert 0.0 <= res["boundary_iou"] <= 100.0 and res["connectivity_error"] >= 0.0
    assert res["metrics"]["bIoU"] == res["boundary_iou"]
    per_class = res["quality"]["boundary_iou"]
    assert per_class and set(per_class) <= set(res["quality"]["iou"]) | set(per_class)
    assert set(res["quality"]["connectivity_error"]) >= set(per_class)
    cost = res["cost"]
    assert cost["wall_s"] > 0 and cost["cpu_s"] > 0 and cost["peak_host_mib"] > 0
    assert cost["device"] == "cpu"
    capsys.readouterr()
    assert main(["plan", "table1", "--profile", tiny_profile, "--results", str(results),
                 "--estimate"]) == 0
    out = capsys.readouterr().out
    assert "cost per cell" in out
    assert "done: 1 cells" in out and "to run: 5 cells" in out
    # the teacher and the BCD rows (role distill) have no finished cell of their kind yet
    assert "5 cell(s) without a finished cell to compare" in out
    out_dir = tmp_path / "report"
    assert main(["report", "table1", "--profile", tiny_profile, "--results", str(results),
                 "--format", "md", "--out", str(out_dir)]) == 0
    md = (out_dir / "table1.md").read_text()
    quality = md[md.index("### Table I (ours)"):]
    line = next(x for x in quality.splitlines() if x.startswith("| Student"))
    assert f"{res['boundary_iou']:.2f}" in line and f"{res['connectivity_error']:.3f}" in line
    assert "This table took" in quality and "CPU-hours over 1 finished run(s)" in quality
    assert "SMOKE PROFILE" in md  # the tiny profile's data is synthetic
    pictures = Store(results).cell_dir(student.id) / "predictions"
    assert len(list(pictures.glob("*_pred.png"))) == 4  # the tiny profile has 4 val images
    assert main(["report", "table1", "--profile", tiny_profile, "--results", str(results),
                 "--format", "html", "--out", str(out_dir)]) == 0
    html = (out_dir / "table1.html").read_text()
    assert 'id="predictions-table1-voc2012"' in html and html.count('class="pred"') == 4 * 3


def test_results_without_time_are_skipped():
    from suite.estimate import observed

    assert observed({"config": {"role": "student"}}) is None
    assert observed({"config": {"role": "student"}, "wall_time_s": 3.0}).wall_s == 3.0
