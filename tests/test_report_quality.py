"""The companion table of every report (mIoU, Boundary IoU, Betti-0 error, cost, paired seed
statistics), the smoke banner that follows the data source, and the Params/FLOPs convention."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from suite.report import render_report
from suite.report.caption import COMPLEXITY_CONVENTION, SMOKE_WARNING, caption, footnotes
from suite.report.html import section_html
from suite.report.latex import render_latex
from suite.report.layout import build_layout
from suite.report.markdown import render_markdown
from suite.report.quality import build_quality, paired, value_text
from suite.report.synthetic import result_rows, synthetic_frame


def _rows(row: str, miou: list[float], biou: list[float], conn: list[float],
          wall: float = 60.0, device: str = "cpu", **extra: object) -> pd.DataFrame:
    df = result_rows("table3", row, "voc2012", miou, **extra)
    return df.assign(boundary_iou=biou, connectivity_error=conn, cost_wall_s=wall,
                     cost_device_s=2 * wall, cost_device=device)


@pytest.fixture()
def three_seeds() -> pd.DataFrame:
    """Student and two methods on VOC, 3 seeds each (values chosen to compute by hand)."""
    return pd.concat([
        _rows("student", [70.0, 71.0, 72.0], [50.0, 51.0, 52.0], [2.0, 2.0, 2.0]),
        # mIoU diffs 1, 1.5, 1: mean 7/6, sd sqrt(1/12), SE 1/6: beyond 2 SE
        _rows("bcd", [71.0, 72.5, 73.0], [53.0, 54.0, 55.0], [1.0, 1.5, 1.0]),
        # mIoU diffs 0.1, -0.1, 0.2: mean 1/15, SE 0.0882: within 2 SE
        _rows("kd", [70.1, 70.9, 72.2], [50.0, 51.0, 52.0], [2.0, 2.5, 1.5]),
    ], ignore_index=True)


def _row(layout, key: str) -> int:
    return next(i for i, r in enumerate(layout.rows) if r.key == key)


def test_paired_difference_and_standard_error_by_hand(three_seeds):
    lay = build_layout("table3", three_seeds)
    qt = build_quality(lay)
    bcd = qt.value(_row(lay, "bcd"), "voc2012.miou", "miou")
    assert bcd.paired.n == 3 and bcd.paired.mean == pytest.approx(7 / 6)
    assert bcd.paired.se == pytest.approx(math.sqrt(1 / 12) / math.sqrt(3))
    assert not bcd.paired.within_noise
    kd = qt.value(_row(lay, "kd"), "voc2012.miou", "miou")
    assert kd.paired.mean == pytest.approx(1 / 15) and kd.paired.within_noise
    conn = qt.value(_row(lay, "bcd"), "voc2012.miou", "connectivity_error")
    assert conn.delta == pytest.approx(-5 / 6)  # fewer spurious components than the student
    assert conn.paired.se == pytest.approx(math.sqrt(1 / 12) / math.sqrt(3))
    biou = qt.value(_row(lay, "bcd"), "voc2012.miou", "boundary_iou")
    assert biou.paired.se == 0.0 and biou.delta == pytest.approx(3.0)
    assert value_text(kd, 2) == "71.07 \u00b1 1.06 (+0.07 \u00b1 0.09 \u2248, n=3)"
    assert value_text(bcd, 2) == "72.17 \u00b1 1.04 (+1.17 \u00b1 0.17, n=3)"


def test_paired_uses_only_the_seeds_both_finished():
    assert paired({0: 2.0, 1: 3.0, 2: 9.0}, {0: 1.0, 1: 1.0}).mean == pytest.approx(1.5)
    one = paired({0: 2.0}, {0: 1.0})
    assert one.n == 1 and math.isnan(one.se) and not one.within_noise
    assert paired({0: 2.0}, {1: 1.0}) is None


def test_companion_table_in_markdown_latex_and_html(three_seeds):
    lay = build_layout("table3", three_seeds)
    md = render_markdown(lay)
    quality = md[md.index("### Table III (ours): boundary quality, connectivity and cost"):]
    head = next(x for x in quality.splitlines() if x.startswith("| Method"))
    assert "Pascal VOC 2012 BIoU" in head and "Pascal VOC 2012 \u03b20 err" in head
    assert "Cityscapes BIoU" in head and head.endswith("Cost (wall) |")
    bcd = next(x for x in quality.splitlines() if x.startswith("| BCD"))
    assert "54.00 \u00b1 1.00 (+3.00 \u00b1 0.00, n=3)" in bcd
    assert "1.167 \u00b1 0.289 (\u22120.833 \u00b1 0.167, n=3)" in bcd
    assert "3.0 min (3 runs)" in bcd
    assert "\u2248: within noise" in quality
    assert "This table took 9.0 min wall and 0.30 CPU-hours over 9 finished run(s)" in quality
    tex = render_latex(lay)
    assert "\\label{tab:table3-quality}" in tex and "$\\beta$0 err" in tex
    assert "$\\approx$" in tex and tex.count("\\begin{table}") == 2
    html = section_html(lay)
    assert 'id="table3-quality"' in html and "\u03b20 err" in html
    assert "+0.07 \u00b1 0.09 \u2248, n=3" in html


def test_single_seed_shows_plain_delta_and_gpu_hours():
    df = pd.concat([_rows("student", [70.0], [50.0], [2.0], wall=1800.0, device="cuda"),
                    _rows("bcd", [72.0], [53.5], [1.0], wall=3600.0, device="cuda")],
                   ignore_index=True)
    lay = build_layout("table3", df)
    md = render_markdown(lay)
    assert "| BCD | 72.00 (+2.00) | 53.50 (+3.50) | 1.000 (\u22121.000) |" in md
    assert "Single seed" in md and "3.00 GPU-hours" in md  # 2 x (1800 + 3600) s


def test_no_companion_without_results_or_miou():
    assert build_quality(build_layout("table3", None)) is None
    assert build_quality(build_layout("table5", synthetic_frame("table5"))) is None
    assert "(ours): boundary quality" not in render_markdown(build_layout("table4", None))


def test_results_without_new_measures_print_dashes():
    lay = build_layout("table4", synthetic_frame("table4"))
    md = render_markdown(lay)
    line = next(x for x in md[md.index("### Table IV (ours)"):].splitlines()
                if x.startswith("| BCD"))
    assert line.count("\u2014") == 2  # BIoU and β0 err not recorded; mIoU and cost are


def test_smoke_banner_follows_the_data_source_not_the_profile_name():
    real = synthetic_frame("table4", profile="paper2").assign(data_source="real")
    assert SMOKE_WARNING not in render_markdown(build_layout("table4", real)).replace("\\", "")
    fake = synthetic_frame("table4", profile="paper").assign(data_source="synthetic")
    assert "SMOKE PROFILE" in render_markdown(build_layout("table4", fake))
    signal = synthetic_frame("table4", profile="signal").assign(data_source="synthetic")
    assert build_layout("table4", signal).smoke
    # frames that do not record the source: any profile but ``paper`` counts as synthetic
    assert build_layout("table4", synthetic_frame("table4", profile="smoke")).smoke
    assert not build_layout("table4", synthetic_frame("table4", profile="paper")).smoke


def test_params_flops_convention_in_caption_and_note():
    lay = build_layout("table1", synthetic_frame("table1"))
    assert COMPLEXITY_CONVENTION in caption(lay)
    assert any("No single one of these conventions" in n for n in footnotes(lay))
    assert COMPLEXITY_CONVENTION not in caption(build_layout("table3", None))  # no such columns


def test_every_format_writes_the_companion(tmp_path, three_seeds):
    files = render_report("table3", three_seeds, tmp_path, ["md", "tex", "html"])
    for fmt in ("md", "tex", "html"):
        assert "boundary quality, connectivity and cost" in files[fmt].read_text()
