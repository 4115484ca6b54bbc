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
    return "\n".join(lines).rstrip() + "\n"
