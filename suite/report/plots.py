"""Matplotlib figures (Agg backend): Δ over the baseline per method and dataset with the paper's
values overlaid, and the Table I ablation as bars. Saved as PNG and PDF, or PNG bytes for HTML."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from suite.report.caption import title  # noqa: E402
from suite.report.layout import Layout  # noqa: E402
from suite.report.names import dataset_name, metric_name, model_name  # noqa: E402

DPI = 100
MAX_ROWS = 40  # x positions per figure; larger tables show the paper's rows first
SMOKE_NOTE = "SMOKE profile: synthetic toy data, not comparable to the paper"


def _mathtext(label: str) -> str:
    """``AP^m`` -> ``AP$^{m}$`` for matplotlib."""
    return re.sub(r"\^(\w+)", r"$^{\1}$", label)


def _title(layout: Layout, what: str) -> str:
    text = f"{title(layout)}\n{what}"
    return f"{text}\n[{SMOKE_NOTE}]" if layout.smoke else text


def _bar_label(layout: Layout, row: int) -> str:
    lr = layout.rows[row]
    label = lr.ref.label.replace("Teacher: ", "").replace("Student: ", "")
    block = layout.block(lr.block)
    base = layout.bases.get(row)
    own = layout.rows[base].ref.model if base is not None else None
    if own and block is not None and own != block.student_model:  # a row on its own student
        label = f"{label}\n({model_name(own)})"
    elif len(layout.table.blocks) > 1 and block is not None:
        tag = model_name(block.student_model) if block.student_model else (
            f"{dataset_name(block.dataset)}, T: {model_name(block.teacher_model)}")
        label = f"{label}\n({tag})" if tag else label
    return label


def delta_figure(layout: Layout) -> Figure:
    """Grouped bars of our Δ (error bar: std over seeds) per row, one colour per column; the
    paper's Δ as black diamonds on the same axes."""
    series = [c for c in layout.metric_columns if c.delta_from is not None]
    rows = [i for i, _ in enumerate(layout.rows)
            if any(not math.isnan(layout.cell(i, c.key).delta)
                   or not math.isnan(layout.cell(i, c.key).paper_delta) for c in series)]
    rows = sorted(rows, key=lambda i: layout.rows[i].extra)[:MAX_ROWS]
    rows.sort()
    width_in = max(6.0, (0.35 + 0.12 * len(series)) * len(rows) + 2)
    fig, ax = plt.subplots(figsize=(min(width_in, 20.0), 4.8))
    x = np.arange(len(rows))
    width = 0.8 / max(1, len(series))
    for k, col in enumerate(series):
        cells = [layout.cell(i, col.key) for i in rows]
        ours = np.array([c.delta for c in cells], dtype=float)
        err = np.array([c.std if c.n > 1 else np.nan for c in cells], dtype=float)
        paper = np.array([c.paper_delta for c in cells], dtype=float)
        pos = x - 0.4 + width * (k + 0.5)
        ax.bar(pos, np.nan_to_num(ours), width, yerr=np.nan_to_num(err), capsize=2,
               label=f"ours: {_mathtext(col.group)}", alpha=0.85)
        ax.scatter(pos, paper, marker="D", color="black", s=14, zorder=3,
                   label="paper" if k == 0 else None)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xticks(x, [_bar_label(layout, i) for i in rows], rotation=60, ha="right",
                  fontsize=7)
    metric = layout.table.metric_label.replace(" (%)", "")
    ax.set_ylabel(f"\u0394 {metric} over the baseline (points)")
    ax.set_title(_title(layout, f"\u0394 {metric} per method (bars: ours, \u25c6: paper)"),
                 fontsize=9, color="red" if layout.smoke else "black")
    if rows:
        ax.legend(fontsize=7, ncols=min(4, len(series) + 1))
    else:
        ax.text(0.5, 0.5, "no cell to plot yet", ha="center", va="center",
                transform=ax.transAxes)
    labels = [_bar_label(layout, i) for i in rows]
    _margins(fig, labels, rotated=True)
    return fig


def _margins(fig: Figure, labels: list[str], rotated: bool) -> None:
    """Fixed margins sized from the tick labels (cheaper than a constrained layout)."""
    width, height = fig.get_size_inches()
    longest = max((len(line) for lab in labels for line in lab.split("\n")), default=4)
    lines = max((lab.count("\n") + 1 for lab in labels), default=1)
    below = (0.055 * longest * 0.87 + 0.12 * lines if rotated else 0.16 * lines) + 0.45
    fig.subplots_adjust(left=0.9 / width, right=1 - 0.2 / width,
                        bottom=min(0.6, below / height), top=1 - 0.75 / height)


def ablation_figure(layout: Layout) -> Figure:
    """Table I: mIoU of the student and each component set, ours beside the paper's bars."""
    col = layout.metric_columns[0]
    rows = [i for i, r in enumerate(layout.rows) if r.kind in ("student", "ablation")]
    cells = [layout.cell(i, col.key) for i in rows]
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    x = np.arange(len(rows))
    ours = np.array([c.mean if c.has_value else np.nan for c in cells], dtype=float)
    err = np.array([c.std if c.n > 1 else np.nan for c in cells], dtype=float)
    paper = np.array([c.paper for c in cells], dtype=float)
    ax.bar(x - 0.2, np.nan_to_num(ours), 0.4, yerr=np.nan_to_num(err), capsize=3, label="ours")
    ax.bar(x + 0.2, np.nan_to_num(paper), 0.4, label="paper", color="lightgrey",
           edgecolor="black", hatch="//")
    teacher = next((i for i, r in enumerate(layout.rows) if r.kind == "teacher"), None)
    top = np.array([], dtype=float)
    if teacher is not None and not math.isnan(layout.cell(teacher, col.key).paper):
        top = np.array([layout.cell(teacher, col.key).paper])
        ax.axhline(top[0], color="black", linestyle="--", linewidth=0.8, label="teacher (paper)")
    values = np.concatenate([ours[~np.isnan(ours)], paper[~np.isnan(paper)], top])
    if values.size:
        ax.set_ylim(max(0.0, float(values.min()) - 3), float(values.max()) + 3)
    ax.set_xticks(x, [_bar_label(layout, i) for i in rows], fontsize=8)
    ax.set_ylabel(metric_name(col.metric) + " (%)")
    ax.set_title(_title(layout, "BCD component ablation"), fontsize=9,
                 color="red" if layout.smoke else "black")
    ax.legend(fontsize=8)
    _margins(fig, [_bar_label(layout, i) for i in rows], rotated=False)
    return fig


def figure(layout: Layout) -> Figure:
    """The figure of a table: the ablation bars for Table I, Δ bars for the others."""
    return ablation_figure(layout) if layout.name == "table1" else delta_figure(layout)


def save_figure(layout: Layout, png: Path | None, pdf: Path | None = None,
                dpi: int = DPI) -> bytes:
    """Draw the table's figure once; write it as PNG and/or PDF; return the PNG bytes.

    The bytes serve the HTML page, so a report that writes both draws the figure only once.
    """
    fig = figure(layout)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
        if png is not None:
            Path(png).write_bytes(buf.getvalue())
        if pdf is not None:
            fig.savefig(pdf, format="pdf")
    finally:
        plt.close(fig)
    return buf.getvalue()


def png_bytes(layout: Layout, dpi: int = DPI) -> bytes:
    """The table's figure as PNG bytes (for embedding in HTML)."""
    return save_figure(layout, None, None, dpi)
