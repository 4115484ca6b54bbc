"""Every generated .tex compiles with pdflatex in a minimal document; booktabs, bold, markers.

Needs ``pdflatex`` (``bash reports/install-tools.sh``); skipped with a reason when absent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from suite.report import TABLES, render_report
from suite.report.latex import PACKAGES, render_latex
from suite.report.layout import build_layout
from suite.report.synthetic import result_rows, set_status, synthetic_frame

PDFLATEX = shutil.which("pdflatex")
needs_pdflatex = pytest.mark.skipif(
    PDFLATEX is None, reason="pdflatex not installed (run: bash reports/install-tools.sh)")


def _compile(folder: Path, body: str, preamble: str = "") -> Path:
    doc = folder / "doc.tex"
    doc.write_text(
        "\\documentclass{article}\n"
        f"\\usepackage{{{','.join(PACKAGES)}}}\n{preamble}\n"
        f"\\begin{{document}}\n{body}\n\\end{{document}}\n")
    proc = subprocess.run(
        [PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=folder,
        capture_output=True, text=True, timeout=60)
    log = (folder / "doc.log").read_text(errors="replace") if (folder / "doc.log").exists() else ""
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Undefined control sequence" not in log
    pdf = folder / "doc.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    return pdf


@needs_pdflatex
def test_all_tables_and_macros_compile_together(tmp_path):
    """Partial stores of all five tables, their tables and macro files in one document."""
    for table in TABLES:
        df = synthetic_frame(table, seeds=2, profile="smoke")
        rows = [r for r in df["row"].unique() if r not in ("teacher", "student")]
        set_status(df, "missing", row=rows[0])
        set_status(df, "failed", row=rows[1], reason="OOM: 100% of _memory_ & {braces}")
        set_status(df, "running", row=rows[2], seed=1)
        files = render_report(table, df, tmp_path, ["tex"])
        assert files["macros"].name == f"{table}_macros.tex"
    macros = "\n".join(f"\\input{{{t}_macros}}" for t in TABLES)
    tables = "\n".join(f"\\input{{{t}}}\\clearpage" for t in TABLES)
    text = ("BCD: \\bcdVocMiou{} ($\\pm$\\bcdVocMiouStd, n=\\bcdVocMiouN, "
            "\\bcdVocMiouDelta{} over the student; paper \\bcdVocMiouPaper, diff "
            "\\bcdVocMiouDiff). TAT+BCD on ADE20K: \\tatPlusBcdAdeMiou. GFL: "
            "\\bcdGflROneEightCocoApBox.")
    pdf = _compile(tmp_path, f"{text}\n{tables}", preamble=macros)
    assert pdf.stat().st_size > 10_000


@needs_pdflatex
def test_empty_store_tables_compile(tmp_path):
    body = []
    for table in TABLES:
        render_report(table, None, tmp_path, ["tex"])
        body.append(f"\\input{{{table}}}\\clearpage")
    _compile(tmp_path, "\n".join(body), preamble=f"\\input{{{TABLES[2]}_macros}}")


def test_latex_uses_styler_booktabs_bold_underline_and_markers():
    df = pd.concat([
        result_rows("table4", "student", "coco_stuff10k", [26.0]),
        result_rows("table4", "bcd", "coco_stuff10k", [29.5]),
        result_rows("table4", "tat+bcd", "coco_stuff10k", [29.0]),
        result_rows("table4", "sckd", "coco_stuff10k", [27.0], reimplementation=True,
                    unverified=True),
        result_rows("table4", "kd", "coco_stuff10k", [25.0]),  # paper 27.21: flagged
    ], ignore_index=True)
    tex = render_latex(build_layout("table4", df))
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert rule in tex
    assert "\\textbf{29.50 (+3.50)}" in tex  # best of ours
    assert "\\underline{29.00 (+3.00)}" in tex  # second of ours
    assert "\\textbf{29.60 (+3.27)}" in tex  # best of the paper (BPKD+BCD)
    assert "27.00 (+1.00)$^{\\ddagger}$$^{*}$" in tex  # our reimplementation + unverified
    assert "\\color{red} $-$2.21 (!)" in tex  # outside the tolerance
    kd_line = next(line for line in tex.splitlines() if line.startswith("KD &"))
    assert kd_line.index("25.00") < kd_line.index("27.21")  # ours beside the paper
    lines = tex.splitlines()
    # the paper's inner rules: after the teacher/student rows, before the joint methods
    for first in ("KD &", "TAT &"):
        at = next(i for i, line in enumerate(lines) if line.startswith(first))
        assert lines[at - 1] == "\\midrule", first


def test_latex_smoke_caption_and_reimpl_of_paper():
    tex = render_latex(build_layout("table3", synthetic_frame("table3", profile="smoke")))
    caption = next(line for line in tex.splitlines() if line.startswith("\\caption"))
    assert "\\textcolor{red}{SMOKE PROFILE" in caption and "profile: smoke" in caption
    assert "71.28 (+0.50)$^{\\ddagger}$" in tex  # the paper's double dagger on KD/VOC
