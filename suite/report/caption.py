"""Plain-text captions, legends and footnotes shared by every output format.

Writers convert these strings to their own markup (escaping for LaTeX, HTML, Markdown). The
caption states the protocol (seeds, statistic, checkpoint, split, profile), and shouts when the
profile is ``smoke``, and again when results collapsed; the footnotes say which cells are
missing, partial, failed, running or collapsed, and why.
"""

from __future__ import annotations

from suite.report.layout import Layout

SMOKE_WARNING = (
    "SMOKE PROFILE (not the paper profile): synthetic data at toy scale. This comparison checks the machinery only; "
    "the numbers are NOT comparable to the paper's."
)
LIST_LIMIT = 20


def title(layout: Layout) -> str:
    """``Table III: Comparison with KD methods (PSPNet-101 -> PSPNet-18)``."""
    return f"Table {layout.table.roman}: {layout.table.title}"


def smoke_warning(layout: Layout) -> str | None:
    """The prominent smoke-profile warning, or None for real (paper-profile) results."""
    return SMOKE_WARNING if layout.smoke else None


def collapse_warning(layout: Layout) -> str | None:
    """``COLLAPSED: 2 of 40 finished cells ...`` when any result collapsed, else None."""
    bad, done = layout.collapse_counts()
    if not bad:
        return None
    return (f"COLLAPSED: {bad} of {done} finished cell(s) of this table collapsed (\u2020): the "
            "student predicts one class almost everywhere or its features lost their variance. "
            "Their numbers measure a failed run, not the method; the footnotes say why.")


def caption(layout: Layout) -> str:
    """Title, metric, the reproduction convention and the protocol, in one paragraph."""
    tol = (f"flagged (\u26a0) when |diff| > {layout.tolerance_std:g} std for n \u2265 2 seeds, "
           f"else > {layout.tolerance:g} points")
    return (f"{title(layout)}. {layout.table.metric_label}: ours beside the paper's number; "
            f"values printed as the paper does, value (+\u0394 over the baseline); "
            f"Diff = ours \u2212 paper, {tol}. {layout.protocol.text()}")


def legend(layout: Layout) -> str:
    """What the markers mean."""
    return ("Bold: best and underlined: second per column (ours and paper ranked separately, "
            "teachers excluded). \u2021: re-implementation (the paper's marks on its numbers; "
            "ours: the method has no official code). *: some weights or details unverified. "
            "\u2014: not run yet; n: finished seeds (n=k/m: k of m seeds finished)."
            + (" \u2020: collapsed (see the footnotes)." if layout.collapse_counts()[0] else ""))


def _limited(items: list[str], limit: int) -> str:
    shown = "; ".join(items[:limit])
    more = len(items) - limit
    return shown + (f"; \u2026 and {more} more" if more > 0 else "")


def footnotes(layout: Layout, limit: int = LIST_LIMIT) -> list[str]:
    """Sentences on what is missing, partial, failed or running, unplaced results and notes."""
    pending = layout.pending()
    total = sum(1 for i in range(len(layout.rows)) for c in layout.metric_columns
                if layout.cell(i, c.key).status != "absent")
    out = []
    if layout.frame.empty:
        out.append("No cell of this table has run yet: every value of ours is \u2014.")
    if pending["missing"]:
        out.append(f"Missing (not run yet, \u2014): {len(pending['missing'])} of {total} cell(s): "
                   + _limited(pending["missing"], limit) + ".")
    if pending["partial"]:
        out.append(f"Partial (some seeds not finished): {len(pending['partial'])} cell(s): "
                   + _limited(pending["partial"], limit) + ".")
    if pending["failed"]:
        out.append(f"Failed: {len(pending['failed'])} cell(s): "
                   + _limited(pending["failed_reasons"] or pending["failed"], limit) + ".")
    elif pending["failed_reasons"]:
        out.append("Failed seeds: " + _limited(pending["failed_reasons"], limit) + ".")
    if pending["running"]:
        out.append(f"Running: {len(pending['running'])} cell(s): "
                   + _limited(pending["running"], limit) + ".")
    elif pending["running_seeds"]:
        out.append("Running seeds: " + _limited(pending["running_seeds"], limit) + ".")
    collapsed = layout.collapsed_runs()
    if collapsed:
        out.append(f"Collapsed (\u2020): {len(collapsed)} cell(s): " + _limited(collapsed, limit)
                   + ".")
    if pending["absent"] and not layout.frame.empty:
        out.append(f"Paper-only (no result in the store): {len(pending['absent'])} cell(s): "
                   + _limited(pending["absent"], limit) + ".")
    if layout.unplaced:
        out.append(f"{layout.unplaced} result rows match no column of this table and are not "
                   "shown (see the CSV/Parquet export of the input).")
    extra = [r.ref.label for r in layout.rows if r.extra]
    if extra:
        out.append("Rows not in the paper: " + _limited(extra, limit) + ".")
    out += [f"Paper note: {n}" for n in layout.table.notes]
    return out
