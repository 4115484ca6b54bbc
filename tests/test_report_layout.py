"""Behaviour of the report layout: seeds statistics, Δ, diffs, tolerance flags, ranks, rules,
partial and empty stores. Frames are built here (no dependency on the lead's collect())."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from suite.report.caption import SMOKE_WARNING, caption, footnotes
from suite.report.grid import MARKDOWN, build_grid
from suite.report.layout import build_layout
from suite.report.markdown import render_markdown
from suite.report.reference import TABLES, ref_table
from suite.report.synthetic import result_rows, set_status, synthetic_frame


def _row(layout, key: str, block: int = 0) -> int:
    return next(i for i, r in enumerate(layout.rows) if r.key == key and r.block == block)


@pytest.fixture()
def table3_frame() -> pd.DataFrame:
    """Student 2 seeds, BCD 3 seeds, KD/CIRKD 1 seed, SKD failed, FAM running, rest missing."""
    parts = [
        result_rows("table3", "student", "voc2012", [70.0, 71.0]),
        result_rows("table3", "bcd", "voc2012", [74.0, 75.0, 76.0]),
        result_rows("table3", "kd", "voc2012", [72.0]),  # paper 71.28: diff +0.72 > 0.5
        result_rows("table3", "cirkd", "voc2012", [73.5]),  # paper 73.57: diff -0.07
        result_rows("table3", "tat+bcd", "voc2012", [75.1, 75.3]),  # diff +0.49 > 2 std = 0.28
        result_rows("table3", "skd", "voc2012", status="failed", seeds=2,
                    reason="RuntimeError: CUDA out of memory"),
        result_rows("table3", "fam", "voc2012", status="running"),
        result_rows("table3", "ifd", "cityscapes", status="missing", seeds=3),
    ]
    return pd.concat(parts, ignore_index=True)


def test_mean_std_n_and_delta_over_student(table3_frame):
    lay = build_layout("table3", table3_frame)
    student = lay.cell(_row(lay, "student"), "voc2012.miou")
    bcd = lay.cell(_row(lay, "bcd"), "voc2012.miou")
    assert (student.mean, student.n) == (70.5, 2)
    assert student.std == pytest.approx(math.sqrt(0.5))
    assert (bcd.mean, bcd.n, bcd.std) == (75.0, 3, pytest.approx(1.0))
    assert bcd.delta == pytest.approx(4.5)  # ours over our student
    assert bcd.paper == 74.65 and bcd.paper_delta == pytest.approx(74.65 - 70.78)
    assert bcd.diff == pytest.approx(0.35)
    grid = build_grid(lay, MARKDOWN)
    i = _row(lay, "bcd")
    ours = grid.header.index(("Pascal VOC 2012", "Ours"))
    paper = grid.header.index(("Pascal VOC 2012", "Paper"))
    assert grid.body[i][ours] == "75.00 \u00b1 1.00 (+4.50) (n=3)"
    assert grid.body[i][paper] == "74.65 (+3.87)"  # as the paper prints it


def test_tolerance_flags_single_seed_and_std(table3_frame):
    lay = build_layout("table3", table3_frame, tolerance=0.5, tolerance_std=2.0)
    kd = lay.cell(_row(lay, "kd"), "voc2012.miou")
    cirkd = lay.cell(_row(lay, "cirkd"), "voc2012.miou")
    bcd = lay.cell(_row(lay, "bcd"), "voc2012.miou")
    tat = lay.cell(_row(lay, "tat+bcd"), "voc2012.miou")
    assert kd.flagged and kd.tolerance == 0.5  # |0.72| > 0.5 points, one seed
    assert not cirkd.flagged
    assert not bcd.flagged and bcd.tolerance == pytest.approx(2.0)  # |0.35| < 2 std = 2.0
    assert tat.diff == pytest.approx(0.49)
    assert tat.flagged and tat.tolerance == pytest.approx(2 * math.sqrt(0.02))  # 0.49 > 0.28
    loose = build_layout("table3", table3_frame, tolerance=1.0, tolerance_std=4.0)
    assert not loose.cell(_row(loose, "kd"), "voc2012.miou").flagged
    assert not loose.cell(_row(loose, "tat+bcd"), "voc2012.miou").flagged
    md = render_markdown(lay)
    assert "**+0.72 \u26a0**" in md  # the flagged diff is marked


def test_best_bold_second_underlined(table3_frame):
    lay = build_layout("table3", table3_frame)
    ranks = {lay.rows[i].key: c.rank for (i, k), c in lay.cells.items()
             if k == "voc2012.miou" and c.rank}
    assert ranks == {"tat+bcd": 1, "bcd": 2}  # 75.20, 75.00 (teacher excluded)
    paper = {lay.rows[i].key: c.paper_rank for (i, k), c in lay.cells.items()
             if k == "voc2012.miou" and c.paper_rank}
    assert paper == {"ifvd+bcd": 1, "tat+bcd": 2}  # 74.82, 74.71: teacher excluded
    md = render_markdown(lay)
    assert "**74.82 (+4.04)**" in md and "<u>74.71 (+3.93)</u>" in md


def test_ties_share_the_rank():
    df = pd.concat([result_rows("table4", "student", "coco_stuff10k", [26.0]),
                    result_rows("table4", "kd", "coco_stuff10k", [28.0]),
                    result_rows("table4", "bcd", "coco_stuff10k", [29.0]),
                    result_rows("table4", "tat", "coco_stuff10k", [29.0])], ignore_index=True)
    lay = build_layout("table4", df)
    ranks = {lay.rows[i].key: c.rank for (i, _), c in lay.cells.items() if c.rank}
    assert ranks == {"bcd": 1, "tat": 1, "kd": 2}


def test_partial_store_renders_and_says_what_is_missing(table3_frame):
    lay = build_layout("table3", table3_frame)
    assert lay.cell(_row(lay, "skd"), "voc2012.miou").status == "failed"
    assert lay.cell(_row(lay, "fam"), "voc2012.miou").status == "running"
    assert lay.cell(_row(lay, "ifd"), "cityscapes.miou").status == "missing"
    notes = "\n".join(footnotes(lay))
    assert "Missing (not run yet" in notes and "IFD \u00b7 Cityscapes" in notes
    assert "Failed: 1 cell(s)" in notes and "CUDA out of memory" in notes
    assert "Running: 1 cell(s): FAM \u00b7 Pascal VOC 2012" in notes
    md = render_markdown(lay)
    assert "*failed*" in md and "*running*" in md
    # cells absent from the store print a dash, the paper's value stays
    assert "| SCKD | L2L | \u2717 | \u2014 | \u2014 | \u2014 | 72.33 (+1.55) |" in md


def test_partial_seeds_show_k_of_m():
    df = synthetic_frame("table4", seeds=3)
    set_status(df, "running", row="bcd", seed=2)
    lay = build_layout("table4", df)
    c = lay.cell(_row(lay, "bcd"), "miou")
    assert (c.status, c.n, c.n_expected) == ("partial", 2, 3)
    assert "(n=2/3)" in render_markdown(lay)
    assert any("BCD (2 of 3 seeds)" in n for n in footnotes(lay))


@pytest.mark.parametrize("table", TABLES)
def test_empty_store_never_crashes(table):
    for df in (None, pd.DataFrame(), pd.DataFrame(columns=["table", "row", "status"])):
        lay = build_layout(table, df)
        ref = ref_table(table)
        assert len(lay.rows) == len(ref.rows)
        assert all(not c.has_value for c in lay.cells.values())
        md = render_markdown(lay)
        assert "No cell of this table has run yet" in md
        assert "\u2014" in md


def test_layout_matches_the_paper_table3():
    lay = build_layout("table3", None)
    keys = [r.key for r in lay.rows]
    assert keys[:3] == ["teacher", "student", "kd"]
    assert lay.rows[2].rule_before  # rule after the teacher/student rows
    assert [r.key for r in lay.rows if r.rule_before] == ["kd", "ifvd"]  # lower half: joint
    header = build_grid(lay, MARKDOWN).header
    assert [h[1] for h in header[:5]] == ["Method", "KD manner", "GT mask", "Boundary",
                                          "Context"]
    body = build_grid(lay, MARKDOWN).body
    tat_bcd = body[keys.index("tat+bcd")]
    assert tat_bcd[:5] == ["TAT + BCD", "W2W", "\u2717", "B", "P&O"]
    kd_paper = body[keys.index("kd")][header.index(("Pascal VOC 2012", "Paper"))]
    assert kd_paper == "71.28 (+0.50)\u2021"  # the paper's double dagger


def test_table4_lower_half_and_table1_ablation_rows():
    t4 = build_layout("table4", None)
    assert [r.key for r in t4.rows if r.rule_before] == ["kd", "tat"]
    t1 = build_layout("table1", None)
    assert [r.key for r in t1.rows] == ["teacher", "student", "bd", "cd", "bd+cd", "bd+cd+wd"]
    assert [r.key for r in t1.rows if r.rule_before] == ["bd"]  # no "combination" rule
    assert t1.rows[5].ref.desc == {"bd": True, "cd": True, "wd": True}


def test_table2_delta_is_over_the_baseline_column():
    df = pd.concat([
        result_rows("table2", "pspnet_r38", "voc2012", [72.0], method="none"),
        result_rows("table2", "pspnet_r38", "voc2012", [75.5], method="bcd"),
        result_rows("table2", "espnet", "ade20k", [20.0], method="none", block=3),
        result_rows("table2", "espnet", "ade20k", [24.0], method="bcd", block=3),
    ], ignore_index=True)
    lay = build_layout("table2", df)
    bcd = lay.cell(_row(lay, "pspnet_r38"), "bcd.miou")
    assert bcd.delta == pytest.approx(3.5) and bcd.paper_delta == pytest.approx(75.15 - 72.65)
    esp = lay.cell(_row(lay, "espnet", block=3), "bcd.miou")  # Mask2Former teacher block
    assert esp.paper == 24.26 and esp.delta == pytest.approx(4.0)
    assert lay.cell(_row(lay, "espnet", block=2), "bcd.miou").status == "absent"
    sections = [r.section for r in lay.rows if r.section]
    assert len(sections) == 5 and "Mask2Former" in sections[3]
    seg = lay.cell(_row(lay, "segformer_b0"), "none.miou")
    assert seg.paper_reimpl  # baseline_reimpl in the reference


def test_table5_blocks_and_efficiency_columns():
    df = synthetic_frame("table5", seeds=1)
    lay = build_layout("table5", df)
    assert [c.key for c in lay.columns] == ["ap_mask", "ap_box", "params_m", "fps"]
    student = _row(lay, "student", block=1)
    assert lay.cell(student, "fps").paper == 16.1
    assert lay.cell(student, "params_m").has_value
    bcd = lay.cell(_row(lay, "bcd", block=2), "ap_box")
    assert bcd.paper_delta == pytest.approx(38.5 - 37.4)


def test_our_flags_mark_reimplementation_and_unverified():
    df = pd.concat([result_rows("table4", "student", "coco_stuff10k", [26.0]),
                    result_rows("table4", "sckd", "coco_stuff10k", [27.0],
                                reimplementation=True, unverified=True)], ignore_index=True)
    lay = build_layout("table4", df)
    c = lay.cell(_row(lay, "sckd"), "miou")
    assert c.reimplementation and c.unverified
    assert "27.00 (+1.00)\u2021\\*" in render_markdown(lay)


def test_caption_states_protocol_and_smoke():
    df = synthetic_frame("table4", seeds=3, profile="smoke")
    lay = build_layout("table4", df)
    text = caption(lay)
    assert "n = 3 seed(s) per cell" in text and "mean \u00b1 sample std" in text
    assert "checkpoint: last" in text and "split: test" in text and "profile: smoke" in text
    md = render_markdown(lay)
    assert SMOKE_WARNING in md.replace("\\", "")
    assert md.index("SMOKE PROFILE") < md.index("| Method")  # before the table
    paper = build_layout("table4", synthetic_frame("table4", seeds=1, profile="paper"))
    assert "SMOKE" not in render_markdown(paper)
    assert "single run per cell" in caption(paper)


def test_extra_rows_and_unplaced_results():
    df = pd.concat([result_rows("table4", "cwd", "coco_stuff10k", [27.5]),
                    result_rows("table4", "cwd+bcd", "coco_stuff10k", [28.5]),
                    result_rows("table4", "kd", "coco_stuff10k", [27.0], block=7)],
                   ignore_index=True)
    lay = build_layout("table4", df)
    extra = [r for r in lay.rows if r.extra]
    assert [r.key for r in extra] == ["cwd", "cwd+bcd"]
    assert extra[1].kind == "combination"
    assert lay.unplaced == 1  # block 7 does not exist
    assert any("Rows not in the paper: CWD; CWD + BCD" in n for n in footnotes(lay))


def test_other_tables_rows_are_ignored():
    df = pd.concat([synthetic_frame("table4"), synthetic_frame("table3")], ignore_index=True)
    lay = build_layout("table4", df)
    assert set(lay.frame["table"]) == {"table4"}
    assert all(c.status == "done" for (i, _), c in lay.cells.items()
               if lay.rows[i].kind != "reference")


def test_minimal_frame_with_few_columns():
    df = pd.DataFrame({"row": ["student", "bcd", "bcd"], "dataset": ["voc2012"] * 3,
                       "seed": [0, 0, 1], "status": ["done", "done", "weird"],
                       "miou": [70.0, 74.0, None]})
    lay = build_layout("table1", df)
    c = lay.cell(_row(lay, "bd+cd+wd"), "miou")
    assert c.status == "absent"  # "bcd" is not a Table I row: shown as an extra row
    extra = lay.cell(_row(lay, "bcd"), "miou")
    assert (extra.status, extra.n, extra.n_expected) == ("partial", 1, 2)  # unknown -> missing
    assert extra.delta == pytest.approx(4.0)


def test_a_row_on_its_own_models_has_its_delta_over_its_own_student():
    """Table V's LD on RetinaNet runs on RetinaGFL: its Δ is over the RetinaGFL student (a row
    not in the paper), the paper's Δ stays over the paper's student; the row's teacher and
    student show as teacher/student rows with their models."""
    def rows(row, values, model, method="none", teacher="retinanet_r101", **extra):
        return result_rows("table5", row, "coco2017", values, method=method, block=2,
                           metric="ap_box", model=model, teacher_model=teacher, **extra)

    df = pd.concat([
        rows("student", [30.0], "retinanet_r50"),
        rows("pkd", [31.0], "retinanet_r50", method="pkd"),
        rows("teacher_retinagfl_r101", [36.0], "retinagfl_r101", teacher="retinagfl_r101"),
        rows("student_retinagfl", [32.0], "retinagfl_r50"),
        rows("ld", [33.5], "retinagfl_r50", method="ld", teacher="retinagfl_r101"),
    ], ignore_index=True)
    lay = build_layout("table5", df)
    ld, pkd = lay.cell(_row(lay, "ld", 2), "ap_box"), lay.cell(_row(lay, "pkd", 2), "ap_box")
    assert ld.delta == pytest.approx(1.5) and pkd.delta == pytest.approx(1.0)
    assert ld.paper_delta == pytest.approx(37.8 - 37.4)
    extra = {r.key: r for r in lay.rows if r.extra}
    assert (extra["teacher_retinagfl_r101"].kind, extra["student_retinagfl"].kind) == \
        ("teacher", "student")
    assert extra["student_retinagfl"].ref.label == "Student: RetinaGFL-R50"
    own = lay.cell(_row(lay, "student_retinagfl", 2), "ap_box")
    assert own.has_value and math.isnan(own.delta)
    notes = " ".join(footnotes(lay))
    assert "over a row's own student" in notes and "LD" in notes
    assert "over Student: RetinaGFL-R50" in notes
    from suite.report.plots import _bar_label  # the Δ plot names the student the row ran on

    assert _bar_label(lay, _row(lay, "ld", 2)) == "LD\n(RetinaGFL-R50)"
    assert _bar_label(lay, _row(lay, "pkd", 2)) == "PKD\n(RetinaNet-R50)"
