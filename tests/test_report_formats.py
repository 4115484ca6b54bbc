"""render_report over every table and format: files, CSV/Parquet contents, macros, plots."""

from __future__ import annotations

import re
from collections import Counter

import pandas as pd
import pytest

from suite.report import FORMATS, TABLES, render_report
from suite.report.layout import build_layout
from suite.report.macros import macro_names, render_macros
from suite.report.names import macro_name, macro_word
from suite.report.synthetic import result_rows, set_status, synthetic_frame

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def partial_frame(table: str) -> pd.DataFrame:
    """A store in mid-run: 2 seeds, one method missing, one failed, one seed running."""
    df = synthetic_frame(table, seeds=2, profile="smoke", wandb_mode="online")
    rows = [r for r in df["row"].unique() if r not in ("teacher", "student")]
    set_status(df, "missing", row=rows[0])
    set_status(df, "failed", row=rows[1], reason="NaN loss")
    set_status(df, "running", row=rows[-1], seed=1)
    return df


@pytest.mark.parametrize("table", TABLES)
def test_every_format_of_every_table(tmp_path, table):
    files = render_report(table, partial_frame(table), tmp_path, list(FORMATS))
    assert set(files) == set(FORMATS) | {"macros"}
    for fmt, path in files.items():
        assert path.exists() and path.stat().st_size > 0, fmt
    assert files["png"].read_bytes()[:8] == PNG_MAGIC
    assert files["pdf"].read_bytes()[:5] == b"%PDF-"
    md = files["md"].read_text()
    assert "SMOKE PROFILE" in md and "Failed" in md and "Missing" in md and "Running" in md
    assert "<!DOCTYPE html>" in files["html"].read_text()
    back = pd.read_parquet(files["parquet"])
    csv = pd.read_csv(files["csv"])
    assert len(back) == len(csv) > 0
    assert {"row", "column", "mean", "std", "n", "paper", "delta", "diff", "flagged",
            "status"} <= set(back.columns)


def test_formats_as_string_and_unknown_format(tmp_path):
    files = render_report("table4", None, tmp_path, "md, tex")
    assert set(files) == {"md", "tex", "macros"}
    with pytest.raises(ValueError, match="unknown format"):
        render_report("table4", None, tmp_path, ["docx"])
    with pytest.raises(ValueError, match="unknown table"):
        render_report("table9", None, tmp_path, ["md"])


def test_pdf_only_writes_no_png(tmp_path):
    files = render_report("table1", None, tmp_path, ["pdf"])
    assert set(files) == {"pdf"} and not (tmp_path / "table1.png").exists()


def test_csv_holds_the_reproduction_view(tmp_path):
    df = pd.concat([result_rows("table4", "student", "coco_stuff10k", [26.0, 27.0]),
                    result_rows("table4", "bcd", "coco_stuff10k", [30.0])], ignore_index=True)
    files = render_report("table4", df, tmp_path, ["csv", "parquet"], tolerance=0.5)
    out = pd.read_parquet(files["parquet"]).set_index("row")
    assert out.at["bcd", "mean"] == 30.0 and out.at["bcd", "paper"] == 29.22
    assert out.at["bcd", "delta"] == pytest.approx(3.5)
    assert out.at["bcd", "diff"] == pytest.approx(0.78) and out.at["bcd", "flagged"]
    assert out.at["student", "n"] == 2 and out.at["student", "std"] == pytest.approx(0.7071, 1e-3)
    assert out.at["kd", "status"] == "absent" and out.at["kd", "paper"] == 27.21


def test_macro_names_letters_only_and_unique_across_tables():
    assert macro_name("tat+bcd", "Ade", "miou") == "tatPlusBcdAdeMiou"
    assert macro_word("pspnet_r38") == "PspnetRThreeEight"
    names: list[str] = []
    for table in TABLES:
        text = render_macros(build_layout(table, synthetic_frame(table)))
        names += re.findall(r"\\newcommand\{\\([^}]*)\}", text)
    assert all(re.fullmatch(r"[A-Za-z]+", n) for n in names)
    assert not [n for n, k in Counter(names).items() if k > 1]
    assert {"bcdVocMiou", "tatPlusBcdAdeMiou", "bcdCocoStuffMiou", "ablationStudentVocMiou",
            "bcdGflROneEightCocoApBox", "espnetBcdFromMaskTwoFormerAdeMiou"} <= set(names)


def test_macro_values_follow_the_cells():
    df = pd.concat([result_rows("table3", "student", "voc2012", [70.0]),
                    result_rows("table3", "bcd", "voc2012", [74.0, 75.0, 76.0])],
                   ignore_index=True)
    text = render_macros(build_layout("table3", df))
    assert "\\newcommand{\\bcdVocMiou}{75.00}" in text
    assert "\\newcommand{\\bcdVocMiouStd}{1.00}" in text
    assert "\\newcommand{\\bcdVocMiouN}{3}" in text
    assert "\\newcommand{\\bcdVocMiouDelta}{+5.00}" in text
    assert "\\newcommand{\\bcdVocMiouPaper}{74.65}" in text
    assert "\\newcommand{\\bcdVocMiouDiff}{+0.35}" in text
    assert "\\newcommand{\\kdAdeMiou}{--}" in text  # not run yet
    names = macro_names(build_layout("table3", df))
    assert len(set(names.values())) == len(names)
