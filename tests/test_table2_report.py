"""Table II's report: a cell two blocks share renders in both, the large models without KD are
planned and placed in the paper's blocks, Params/FLOPs are the paper's network at full width."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import yaml

from suite.report.caption import FLOPS_NOT_MEASURED, footnotes
from suite.report.collect import collect_cells
from suite.report.layout import build_layout
from suite.report.markdown import render_markdown
from suite.report.reference import _table2
from suite.report.synthetic import result_rows, synthetic_frame
from suite.store import Store
from suite.tables import expand

SHARED_ROWS = [{"row": "{student}"}, {"row": "{student}", "method": "bcd"}]


def _ref_two_blocks():
    """A Table II reference of two VOC blocks (teachers R101 and R50) sharing student R18."""
    def block(teacher: str, bcd: float) -> dict:
        return {"dataset": "voc2012", "teacher": {"model": teacher, "miou": 77.0, "params_m": 70.0},
                "students": [{"model": "pspnet_r18", "baseline": 70.0, "bcd": bcd,
                              "params_m": 15.2}]}

    return _table2({"title": "two blocks", "blocks": [block("pspnet_r101", 72.0),
                                                      block("pspnet_r50", 71.0)]}, ())


def _row(layout, key: str, block: int) -> int:
    return next(i for i, r in enumerate(layout.rows) if r.key == key and r.block == block)


def _finish(store: Store, cell, miou: float) -> None:
    store.write_config(cell.id, cell.config)
    store.finish(cell.id, {"cell_id": cell.id, "status": "done", "miou": miou,
                           "params_m": 0.8})  # the cell's own (smoke) width


@pytest.fixture
def tables(tmp_path, monkeypatch, suite_cache):
    folder = tmp_path / "tables"
    folder.mkdir()
    monkeypatch.setenv("SUITE_TABLES", str(folder))
    return folder


def test_a_student_cell_two_blocks_share_renders_in_both_blocks(tables, tmp_path):
    from suite.params import full_width

    blocks = [{"dataset": "voc2012", "teacher": t, "students": ["pspnet_r18"], "rows": SHARED_ROWS}
              for t in ("pspnet_r101", "pspnet_r50")]
    (tables / "shared2.yaml").write_text(yaml.safe_dump(
        {"name": "shared2", "task": "segmentation", "blocks": blocks}))
    cells = expand("shared2", "smoke", require_roots=False)
    plain = [c for c in cells if c.role == "student"]
    assert len(plain) == 1 and plain[0].block == 0  # planned once, under the first block
    store = Store(tmp_path / "results")
    values = {("teacher", 0): 75.0, ("teacher", 1): 73.0, ("student", 0): 60.0,
              ("distill", 0): 62.0, ("distill", 1): 61.5}
    for c in cells:
        _finish(store, c, values[(c.role, c.block)])
    frame = collect_cells(cells, tmp_path / "results").assign(table="table2")
    lay = build_layout("table2", frame, reference=_ref_two_blocks())
    for block, bcd in ((0, 62.0), (1, 61.5)):
        i = _row(lay, "pspnet_r18", block)
        base, kd = lay.cell(i, "none.miou"), lay.cell(i, "bcd.miou")
        assert base.status == "done" and base.mean == 60.0 and base.n == 1
        assert kd.mean == bcd and kd.delta == pytest.approx(bcd - 60.0)
        assert lay.cell(_row(lay, "teacher", block), "none.miou").mean == 75.0 - 2 * block
    assert render_markdown(lay).split("\n### ")[0].count("60.00") == 2  # the main table
    # each result counted once: 5 results, no unplaced row, provenance without the copy
    assert lay.unplaced == 0 and len(lay.results) == 5 and lay.status_counts == {"done": 5}
    # Params: the paper's network (width 1.0, VOC's 21 classes), not the cell's 0.8 M
    params = lay.cell(_row(lay, "pspnet_r18", 1), "params_m")
    assert params.mean == pytest.approx(full_width("pspnet_r18", "voc2012")["params_m"])
    assert params.mean > 10 and params.paper == 15.2


def test_only_plain_results_of_the_same_dataset_and_model_are_shared():
    def rows(row, dataset, method, block, model, value):
        return result_rows("table2", row, dataset, [value], method=method, block=block,
                           model=model, teacher_model="pspnet_r101" if method != "none" else "")

    frame = pd.concat([rows("pspnet_r18", "voc2012", "none", 0, "pspnet_r18", 60.0),
                       rows("pspnet_r18", "voc2012", "bcd", 0, "pspnet_r18", 62.0)],
                      ignore_index=True)
    lay = build_layout("table2", frame, reference=_ref_two_blocks())
    second = _row(lay, "pspnet_r18", 1)
    assert lay.cell(second, "none.miou").mean == 60.0
    assert lay.cell(second, "bcd.miou").status == "absent"  # a distilled result is its block's
    # a block with its own baseline keeps it; another dataset or model is never borrowed
    own = pd.concat([frame, rows("pspnet_r18", "voc2012", "none", 1, "pspnet_r18", 59.0)],
                    ignore_index=True)
    assert build_layout("table2", own, reference=_ref_two_blocks()).cell(
        second, "none.miou").mean == 59.0
    for other in (rows("pspnet_r18", "cityscapes", "none", 0, "pspnet_r18", 50.0),
                  rows("pspnet_r18", "voc2012", "none", 0, "pspnet_r50", 50.0)):
        lay = build_layout("table2", other, reference=_ref_two_blocks())
        assert lay.cell(second, "none.miou").status == "absent"


def test_table2_plans_the_large_models_and_places_them_and_the_shared_baselines(
        suite_cache, tmp_path):
    cells = expand("table2", "smoke", require_roots=False)
    large = {(c.config["model"], c.config["dataset"], c.role) for c in cells
             if c.config["model"] in ("danet", "hrnet", "deeplabv3_r101")}
    assert large == {("danet", "voc2012", "student"), ("hrnet", "cityscapes", "student"),
                     ("deeplabv3_r101", "ade20k", "student")}
    store = Store(tmp_path)
    ade = {c.config["model"]: c for c in cells if c.role == "student"
           and c.config["dataset"] == "ade20k"}
    _finish(store, ade["espnet"], 20.0)
    _finish(store, ade["deeplabv3_r101"], 43.0)
    lay = build_layout("table2", collect_cells(cells, tmp_path))
    assert lay.unplaced == 0
    for key, block in (("danet", 0), ("hrnet", 1)):
        c = lay.cell(_row(lay, key, block), "none.miou")
        assert c.status == "missing" and not math.isnan(c.paper)  # planned, not run
    assert lay.cell(_row(lay, "deeplabv3_r101", 2), "none.miou").mean == 43.0
    segvit = lay.cell(_row(lay, "segvit", 4), "none.miou")
    assert segvit.status == "absent" and segvit.paper == 50.3  # no library has SegViT
    for block in (2, 3):  # PSPNet-R101 and Mask2Former blocks share the plain ESPNet
        assert lay.cell(_row(lay, "espnet", block), "none.miou").mean == 20.0
        mobile = lay.cell(_row(lay, "mobilenetv2", block), "none.miou")
        assert mobile.status == "missing"
    # Params at full width with the block's classes, beside the paper's
    hrnet = lay.cell(_row(lay, "hrnet", 1), "params_m")
    assert hrnet.mean == pytest.approx(65.86, abs=0.01) and hrnet.paper == 65.9
    r38 = [lay.cell(_row(lay, "pspnet_r38", b), "params_m") for b in (0, 1)]
    assert [c.paper for c in r38] == [58.6, 47.4]
    assert all(c.mean == pytest.approx(43.05, abs=0.01) for c in r38)
    assert "43.05" in render_markdown(lay)


def test_full_width_counts_are_cached_and_flops_measured_only_on_request(tmp_path,
                                                                          monkeypatch):
    import suite.params as params

    monkeypatch.setenv("SUITE_CACHE", str(tmp_path))
    seg = params.full_width("segformer_b0", "voc2012")
    assert seg["params_m"] == pytest.approx(3.72, abs=0.01) == seg["deployed_m"]
    assert "flops_g" not in seg
    assert params.full_width("segformer_b0", "ade20k", compute=False) == {}
    flops = params.full_width("segformer_b0", "coco_stuff10k", flops=True)
    assert flops["flops_g"] == pytest.approx(8.59, abs=0.05)  # paper: 8.4 G at 512x512
    assert flops["flops_input"] == [512, 512]

    def no_build(*_a, **_k):
        raise AssertionError("measured again")

    monkeypatch.setattr(params, "measure", no_build)
    assert params.full_width("segformer_b0", "voc2012") == seg
    assert params.full_width("segformer_b0", "coco_stuff10k", flops=True) == flops


def test_count_params_leaves_the_auxiliary_head_out_of_deployed():
    from suite.params import count_params

    net = torch.nn.Module()
    net.backbone = torch.nn.Linear(1000, 1000)  # 1,001,000
    net.auxiliary_head = torch.nn.Linear(1000, 100)  # 100,100
    assert count_params(net) == {"params_m": 1.1011, "deployed_m": 1.001}


def test_missing_flops_footnote_names_the_command():
    frame = synthetic_frame("table2")
    lay = build_layout("table2", frame)
    assert lay.cell(_row(lay, "segformer_b0", 4), "flops_g").mean == 8.4
    assert not any("suite.params" in n for n in footnotes(lay))
    unmeasured = frame.assign(flops_full_g=float("nan"))
    notes = [n for n in footnotes(build_layout("table2", unmeasured)) if "suite.params" in n]
    assert len(notes) == 1 and FLOPS_NOT_MEASURED.split("(")[0] in notes[0]
    assert "python -m suite.params table2 --flops coco_stuff10k" in notes[0]
