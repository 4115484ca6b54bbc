"""Markdown (GitHub-flavoured) rendering of one table's reproduction view."""

from __future__ import annotations

from suite.report.caption import (
    caption,
    collapse_warning,
    footnotes,
    legend,
    smoke_warning,
    title,
)
from suite.report.grid import MARKDOWN, build_grid, escape_markdown
from suite.report.layout import Layout
from suite.report.quality import body as quality_body
from suite.report.quality import build_quality, quality_caption, quality_title
from suite.report.quality import header as quality_header

STYLE = {"best": "**{}**", "second": "<u>{}</u>", "flag": "**{}**"}


def _cells(values: list[str]) -> str:
    return "| " + " | ".join(values) + " |"


def render_markdown(layout: Layout) -> str:
    """The table as the paper lays it out, ours beside the paper's numbers, with caption/notes."""
    grid = build_grid(layout, MARKDOWN)
    width = len(grid.header)
    lines = [f"## {escape_markdown(title(layout))}", ""]
    warning = smoke_warning(layout)
    if warning:
        lines += [f"> \u26a0\ufe0f **{escape_markdown(warning)}**", ""]
    collapsed = collapse_warning(layout)
    if collapsed:
        lines += [f"> \u2020 **{escape_markdown(collapsed)}**", ""]
    lines += [f"*{escape_markdown(caption(layout))}*", ""]
    head = [escape_markdown(f"{g} {s}".strip()).replace("^m", "<sup>m</sup>")
            .replace("^b", "<sup>b</sup>") for g, s in grid.header]
    lines += [_cells(head), _cells(["---"] + ["---:"] * (width - 1))]
    for lr, values, tags in zip(grid.rows, grid.body, grid.style):
        if lr.section:
            lines.append(_cells([f"**{escape_markdown(lr.section)}**"] + [""] * (width - 1)))
        elif lr.rule_before:
            lines.append(_cells([""] * width))
        lines.append(_cells([STYLE[t].format(v) if t and v else v
                             for v, t in zip(values, tags)]))
    lines += ["", escape_markdown(legend(layout)), ""]
    lines += [f"- {escape_markdown(n)}" for n in footnotes(layout)]
    lines += render_quality_markdown(layout)
    return "\n".join(lines).rstrip() + "\n"


def render_quality_markdown(layout: Layout) -> list[str]:
    """The companion table (:mod:`suite.report.quality`) as Markdown lines; none without one."""
    qt = build_quality(layout)
    if qt is None:
        return []
    head = [escape_markdown(f"{g} {s}".strip()) for g, s in quality_header(qt)]
    lines = ["", f"### {escape_markdown(quality_title(layout))}", "",
             f"*{escape_markdown(quality_caption(layout, qt))}*", "", _cells(head),
             _cells(["---"] + ["---:"] * (len(head) - 1))]
    lines += [_cells([escape_markdown(v) for v in row]) for row in quality_body(qt)]
    return lines
