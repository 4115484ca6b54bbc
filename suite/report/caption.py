"""Plain-text captions, legends and footnotes shared by every output format.

Writers convert these strings to their own markup (escaping for LaTeX, HTML, Markdown). The
caption states the protocol (seeds, statistic, checkpoint, split, profile) and how Params and
FLOPs are counted, and shouts when results ran on synthetic data (the profile's ``data``, not its
name), and again when results collapsed; the footnotes say which cells are
missing, partial, failed, running or collapsed, and why.
"""

from __future__ import annotations

import math

from suite.report.layout import Layout, block_students

SMOKE_WARNING = (
    "SMOKE PROFILE (synthetic data, not the paper's datasets): toy scale. This comparison checks the "
    "machinery only; the numbers are NOT comparable to the paper's."
)
# How Params and FLOPs are counted (suite.train.complexity: mmengine's analysis tools)
COMPLEXITY_CONVENTION = (
    "Params and FLOPs are the paper's network, measured from our model config at width 1.0 "
    "with the dataset's classes, whatever width the cells trained at. Params: every parameter "
    "(student or teacher; the auxiliary FCN head, used in training only, included); FLOPs: "
    "multiply-accumulate operations of one inference forward at 512\u00d7512 (one fused "
    "multiply-add counts as one FLOP, the fvcore/mmengine convention; the auxiliary head does "
    "not run in inference and is not counted), batch 1."
)
FLOPS_NOT_MEASURED = (
    "FLOPs not measured yet on this machine ({rows}): `python -m suite.params {table} --flops "
    "{datasets}` measures them (a forward pass at 512\u00d7512 per network, about 30 s for "
    "Table II's COCO-Stuff networks on one core) and later reports read them."
)
COMPLEXITY_NOTE = (
    "Params/FLOPs against the paper: at 512\u00d7512, PSPNet-18 counts 12.79 M / 54.3 G here "
    "(paper 15.24 M / 106.2 G) and PSPNet-101 67.97 M / 256.5 G (paper 70.43 M / 411.6 G). "
    "Counting the auxiliary head's FLOPs adds 0.6 G and 9.7 G, leaving it out of Params "
    "subtracts 0.15 M and 2.37 M; counting a multiply-add as two FLOPs doubles ours (108.6 G, "
    "513.0 G). No single one of these conventions reproduces both of the paper's columns: the "
    "paper's Params are about 2.45 M above ours for both networks, and its FLOPs 1.95\u00d7 (student) "
    "and 1.60\u00d7 (teacher) ours."
)
# Detection tables (Table V): Params of mmdet's detectors, FPS, and what AP^m means there
DETECTION_CONVENTION = (
    "Params are the paper's network, measured from our model config at width 1.0 with COCO's "
    "80 classes, whatever width the cells trained at: every parameter, ResNet's frozen stem and "
    "first stage included. FPS: ours is the deployed student at the profile's input size, batch "
    "1, on this machine's device and threads (``fps_record`` of each result), the paper's on its "
    "GPU: compare ratios between rows, not values."
)
DETECTION_NOTE = (
    "Params against the paper: RetinaNet and Cascade Mask R-CNN equal the paper's counts once "
    "ResNet's frozen stem and first stage (0.23 M, mmdet's frozen_stages=1) are left out; "
    "GFL-R50 / R18 count 32.44 / 19.42 M here against the paper's 43.57 / 30.57 M, 11.1 M apart "
    "in both, which no option of mmdet's GFL explains. AP^m: GFL and RetinaNet predict no "
    "masks, so ours is n/a beside the paper's printed value. LD needs box distributions: on "
    "RetinaNet and Cascade it runs the LD authors' recipes on teacher and student with the box "
    "branch swapped for distributions (RetinaGFL; the RPN-GFL of their Faster R-CNN recipe), "
    "flagged; CrossKD on Cascade crosses the RPN head (an adaptation, flagged)."
)
LIST_LIMIT = 20


def is_detection(layout: Layout) -> bool:
    """Whether the table's blocks are on a detection dataset (Table V)."""
    from suite.data import DATASETS

    return any(getattr(DATASETS.get(b.dataset or ""), "task", "") == "detection"
               for b in layout.table.blocks)


def title(layout: Layout) -> str:
    """``Table III: Comparison with KD methods (PSPNet-101 -> PSPNet-18)``."""
    return f"Table {layout.table.roman}: {layout.table.title}"


def smoke_warning(layout: Layout) -> str | None:
    """The prominent smoke warning when any result ran on synthetic data (the profile's ``data:
    synthetic``, whatever its name), or None for real-data results."""
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
    text = (f"{title(layout)}. {layout.table.metric_label}: ours beside the paper's number; "
            f"values printed as the paper does, value (+\u0394 over the baseline); "
            f"Diff = ours \u2212 paper, {tol}. {layout.protocol.text()}")
    if any(c.kind == "efficiency" and c.metric in ("params_m", "flops_g") for c in layout.columns):
        text += " " + (DETECTION_CONVENTION if is_detection(layout) else COMPLEXITY_CONVENTION)
    return text


def flops_not_measured(layout: Layout) -> str | None:
    """What to run when rows of ours have no FLOPs where the paper prints some; None when none
    lacks them (rows without any result planned, such as a model no library has, are not ours
    to measure)."""
    col = next((c for c in layout.columns if c.kind == "efficiency" and c.metric == "flops_g"),
               None)
    if col is None:
        return None
    rows = [i for i, _ in enumerate(layout.rows)
            if not math.isnan(layout.cell(i, col.key).paper)
            and layout.cell(i, col.key).status not in ("done", "absent")]
    if not rows:
        return None
    blocks = [layout.block(layout.rows[i].block) for i in rows]
    datasets = ",".join(dict.fromkeys(b.dataset for b in blocks if b is not None and b.dataset))
    labels = [layout.cell_label(i, col) for i in rows]
    return FLOPS_NOT_MEASURED.format(rows=_limited(labels, LIST_LIMIT), table=layout.name,
                                     datasets=datasets or "DATASET")


def legend(layout: Layout) -> str:
    """What the markers mean."""
    return ("Bold: best and underlined: second per column (ours and paper ranked separately, "
            "teachers excluded). \u2021: re-implementation (the paper's marks on its numbers; "
            "ours: the method has no official code). *: some weights or details unverified. "
            "\u2014: not run yet; n: finished seeds (n=k/m: k of m seeds finished)."
            + (" \u2020: collapsed (see the footnotes)." if layout.collapse_counts()[0] else ""))


def own_baselines(layout: Layout) -> list[str]:
    """``LD · RetinaNet R101 -> R50: over Student: RetinaGFL-R50`` for every row whose Δ is
    over a baseline other than its block's ``student`` row (``Layout.bases``)."""
    students = block_students(layout.rows)
    out = []
    for i, base in layout.bases.items():
        if base != students.get(layout.rows[i].block):
            lr, block = layout.rows[i], layout.block(layout.rows[i].block)
            where = f"{lr.ref.label} \u00b7 {block.title}" if block and block.title else lr.ref.label
            out.append(f"{where}: over {layout.rows[base].ref.label}")
    return out


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
    own = own_baselines(layout)
    if own:
        out.append("\u0394 over a row's own student (the row runs on other models than its "
                   "block's pair; the paper's \u0394 stays over the block's student): "
                   + _limited(own, limit) + ".")
    if any(c.kind == "efficiency" and c.metric in ("params_m", "flops_g") for c in layout.columns):
        out.append(DETECTION_NOTE if is_detection(layout) else COMPLEXITY_NOTE)
    unmeasured = flops_not_measured(layout)
    if unmeasured:
        out.append(unmeasured)
    out += [f"Paper note: {n}" for n in layout.table.notes]
    return out
