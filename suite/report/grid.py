"""Format a :class:`~suite.report.layout.Layout` into a grid of cell strings for one output flavor.

A :class:`Flavor` says how a target spells the few symbols a table needs (±, ‡, †, dashes, check
marks, the minus sign, escaping); :func:`build_grid` applies it to every cell and returns the
strings plus a parallel grid of style tags (``best``, ``second``, ``flag``) that the Markdown,
LaTeX and HTML writers turn into bold, underline and colour.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from suite.report.layout import DECIMALS, OURS_DECIMALS, Cell, Layout, LayoutRow

LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "\u2192": r"$\rightarrow$", "\u00b1": r"$\pm$", "\u2212": r"$-$", "\u2014": "---",
    "\u2013": "--", "\u2021": r"\ddag{}", "\u2020": r"\dag{}", "\u00b7": r"$\cdot$",
    "\u0394": r"$\Delta$", "\u2713": r"\checkmark{}", "\u2717": r"$\times$", "\u26a0": "(!)",
    "|": r"$|$", "<": r"$<$", ">": r"$>$", "\u2265": r"$\geq$", "\u2264": r"$\leq$",
    "\u00d7": r"$\times$", "\u2026": r"\dots{}", "\u03b2": r"$\beta$", "\u2248": r"$\approx$",
}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in LATEX_SPECIAL))
_SUP_RE = re.compile(r"\^(\w+)")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def escape_latex(text: str) -> str:
    """Escape LaTeX specials and map the few non-ASCII symbols we print to LaTeX commands.

    Any other non-ASCII character (from free text such as a failure reason) becomes ``?`` so
    that pdflatex never stops on an unknown Unicode character.
    """
    return _NON_ASCII.sub("?", _LATEX_RE.sub(lambda m: LATEX_SPECIAL[m.group(0)], text))


def latex_text(text: str) -> str:
    """Like :func:`escape_latex`, but ``AP^m`` becomes ``AP$^{m}$``."""
    parts = _SUP_RE.split(text)
    return "".join(escape_latex(p) if i % 2 == 0 else f"$^{{{p}}}$" for i, p in enumerate(parts))


def escape_markdown(text: str) -> str:
    """Escape the characters that break a GitHub-flavoured Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def html_text(text: str) -> str:
    """HTML-escape, with ``AP^m`` as ``AP<sup>m</sup>``."""
    parts = _SUP_RE.split(text)
    return "".join(html.escape(p) if i % 2 == 0 else f"<sup>{html.escape(p)}</sup>"
                   for i, p in enumerate(parts))


@dataclass(frozen=True)
class Flavor:
    """How one output spells the table's symbols."""

    name: str
    text: Callable[[str], str]
    pm: str
    dagger: str
    star: str
    dash: str
    minus: str
    check: str
    cross: str
    flag: str
    n_fmt: str
    failed: str
    running: str
    collapsed: str = "\u2020"  # after our value when a seed's run collapsed


MARKDOWN = Flavor("md", escape_markdown, " \u00b1 ", "\u2021", "\\*", "\u2014", "\u2212",
                  "\u2713", "\u2717", " \u26a0", " (n={n})", "*failed*", "*running*")
LATEX = Flavor("tex", latex_text, r"$\pm$", r"$^{\ddagger}$", r"$^{*}$", "--", "$-$",
               r"\checkmark", r"$\times$", r" (!)", r" $_{{n={n}}}$", r"\textit{failed}",
               r"\textit{running}", r"$^{\dagger}$")
HTML = Flavor("html", html_text, " \u00b1 ", "<sup>\u2021</sup>", "<sup>*</sup>", "\u2014",
              "\u2212", "\u2713", "\u2717", " \u26a0", ' <span class="n">n={n}</span>',
              '<span class="failed">failed</span>', '<span class="running">running</span>',
              '<sup class="collapsed">\u2020</sup>')


def number(value: float, digits: int, flavor: Flavor, signed: bool = False) -> str:
    """``74.65``, or ``+3.87`` / ``−0.13`` with ``signed``; the flavor's minus sign."""
    if round(value, digits) == 0:
        value = 0.0  # never print "-0.00"
    s = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return s.replace("-", flavor.minus)


def ours_text(c: Cell, digits: int, flavor: Flavor) -> str:
    """Our cell as the paper prints a value: ``74.65 ± 0.12 (+3.87) (n=3)†‡`` (†: collapsed)."""
    if c.has_value:
        s = number(c.mean, digits, flavor)
        if c.n >= 2 and not math.isnan(c.std):
            s += flavor.pm + number(c.std, digits, flavor)
        if not math.isnan(c.delta):
            s += f" ({number(c.delta, digits, flavor, signed=True)})"
        if c.n >= 2 or c.status == "partial":
            n = f"{c.n}/{c.n_expected}" if c.status == "partial" else str(c.n)
            s += flavor.n_fmt.format(n=n)
    elif c.status == "failed":
        s = flavor.failed
    elif c.status == "running":
        s = flavor.running
    elif c.status == "na":
        s = "n/a"
    else:
        return flavor.dash
    if c.collapsed:
        s += flavor.collapsed
    if c.reimplementation:
        s += flavor.dagger
    if c.unverified:
        s += flavor.star
    return s


def paper_text(c: Cell, digits: int, flavor: Flavor) -> str:
    """The paper's number with its Δ and ‡ (``74.65 (+3.87)``)."""
    if math.isnan(c.paper):
        return flavor.dash
    s = number(c.paper, digits, flavor)
    if not math.isnan(c.paper_delta):
        s += f" ({number(c.paper_delta, digits, flavor, signed=True)})"
    return s + (flavor.dagger if c.paper_reimpl else "")


def diff_text(c: Cell, digits: int, flavor: Flavor) -> str:
    """Ours minus the paper, with the flavor's flag when outside the tolerance."""
    if math.isnan(c.diff):
        return flavor.dash
    return number(c.diff, digits, flavor, signed=True) + (flavor.flag if c.flagged else "")


def plain_value(c: Cell, digits: int, flavor: Flavor) -> str:
    """An efficiency value (Params/FLOPs/FPS): the number or a dash."""
    return number(c.mean, digits, flavor) if c.has_value else flavor.dash


def desc_text(value: object, flavor: Flavor) -> str:
    """A descriptive cell of Table I/III: ✓, ✗, a dash for none, or the text as printed."""
    if value is True:
        return flavor.check
    if value is False:
        return flavor.cross
    if value is None:
        return flavor.dash
    return flavor.text(str(value))


@dataclass
class Grid:
    """Header (group, sub) pairs, body strings and style tags, row-parallel to the layout."""

    header: list[tuple[str, str]]
    body: list[list[str]]
    style: list[list[str]]
    rows: list[LayoutRow]


def header(layout: Layout) -> list[tuple[str, str]]:
    """Plain-text (group, sub-label) pairs of every printed column."""
    first = "Model" if layout.name == "table2" else "Method"
    cols = [("", first)] + [("", label) for _, label in layout.table.desc_columns]
    for col in layout.columns:
        subs = ("Ours", "Paper", "Diff") if col.kind == "metric" else ("Ours", "Paper")
        cols += [(col.group, s) for s in subs]
    return cols


def build_grid(layout: Layout, flavor: Flavor) -> Grid:
    """Every printed cell of ``layout`` as a ``flavor`` string, plus its style tag."""
    body, style = [], []
    rank_tag = {1: "best", 2: "second"}
    for i, lr in enumerate(layout.rows):
        label = flavor.text(lr.ref.label)
        line, tags = [label], [""]
        for key, _ in layout.table.desc_columns:
            line.append(desc_text(lr.ref.desc.get(key), flavor) if key in lr.ref.desc else "")
            tags.append("")
        for col in layout.columns:
            c = layout.cell(i, col.key)
            digits = DECIMALS.get(col.metric, 2)
            if col.kind == "metric":
                ours = max(digits, OURS_DECIMALS)
                line += [ours_text(c, ours, flavor), paper_text(c, digits, flavor),
                         diff_text(c, ours, flavor)]
                tags += [rank_tag.get(c.rank, "") if c.has_value else "",
                         rank_tag.get(c.paper_rank, ""), "flag" if c.flagged else ""]
            else:
                paper = flavor.dash if math.isnan(c.paper) else number(c.paper, digits, flavor)
                line += [plain_value(c, digits, flavor), paper]
                tags += ["", ""]
        body.append(line)
        style.append(tags)
    return Grid(header(layout), body, style, layout.rows)
