"""Self-contained HTML: every table, its figure (base64 PNG), the provenance of every cell.

One section per table (``<section id="section-table3">`` holding ``<table id="table3">``), with
the same caption, legend and footnotes as the other formats; value cells carry the ids of the
runs behind them (hover) and W&B links when the runs were online; a collapsible provenance
table lists each result (git sha, package versions, assumptions, W&B run). No external asset.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
from pathlib import Path

import pandas as pd

from suite.report.caption import (
    caption,
    collapse_warning,
    footnotes,
    legend,
    smoke_warning,
    title,
)
from suite.report.grid import HTML, build_grid, html_text
from suite.report.layout import Layout
from suite.report.names import dataset_name
from suite.report.quality import body as quality_body
from suite.report.quality import build_quality, quality_caption, quality_title
from suite.report.quality import header as quality_header

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#111;
 background:#fff;max-width:1800px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
nav a{margin-right:1em}
.smoke-warning{background:#fde8e8;border:3px solid #c00;color:#900;font-weight:bold;
 padding:.6em 1em;margin:.6em 0;font-size:1.05em}
.collapse-warning{background:#fff4e0;border:3px solid #d60;color:#803000;font-weight:bold;
 padding:.6em 1em;margin:.6em 0}
.caption{font-style:italic;max-width:120ch}
.scroll{overflow-x:auto}
table.repro{border-collapse:collapse;font-size:13px;margin:.5em 0;
 border-top:2px solid #000;border-bottom:2px solid #000}
table.repro th,table.repro td{padding:3px 8px;text-align:right;white-space:nowrap}
table.repro th{border-bottom:1px solid #000;text-align:center}
table.repro td:first-child,table.repro th:first-child{text-align:left}
table.repro tr.rule-before td{border-top:1px solid #000}
table.repro tr.section td{text-align:left;font-style:italic;border-top:1px solid #000;
 background:#f4f4f4}
table.repro tr.kind-teacher td,table.repro tr.kind-reference td{color:#444}
td.best{font-weight:bold}td.second{text-decoration:underline}
td.flag{color:#c00;font-weight:bold;background:#fff1f1}
td.paper{color:#333;background:#fafafa}td.desc{text-align:center}
td.collapsed{background:#fff4e0}sup.collapsed{color:#d60;font-weight:bold}
.n{color:#666;font-size:.85em}.failed{color:#c00}.running{color:#a60}
.wandb{font-size:.75em;margin-left:.3em;color:#555}
.legend,.footnotes{font-size:12px;color:#333;max-width:140ch}
figure img{max-width:100%;border:1px solid #ddd}
table.predictions td,table.predictions th{padding:2px;font-size:11px;text-align:center}
img.pred{width:128px;image-rendering:pixelated;border:1px solid #ddd}
details.provenance{margin:1em 0}
table.prov{border-collapse:collapse;font-size:11px}
table.prov th,table.prov td{border:1px solid #ddd;padding:2px 5px;text-align:left;
 vertical-align:top}
table.prov td.json{max-width:40ch;overflow-wrap:anywhere;font-family:monospace}
"""

PROV_COLUMNS = ("cell_id", "row", "method", "dataset", "model", "teacher_model", "seed",
                "status", "reason", "health", "metrics", "profile", "checkpoint", "split", "git_sha",
                "versions", "assumptions", "wall_time_s", "wandb")
METRIC_KEYS = ("miou", "aacc", "ap_box", "ap_mask", "boundary_iou", "connectivity_error", "params_m",
               "flops_g", "fps")
LINK_LIMIT = 3


def _header(layout: Layout, header: list[tuple[str, str]]) -> str:
    top, sub = [], []
    i = 0
    while i < len(header):
        group, label = header[i]
        if not group:
            top.append(f'<th rowspan="2" scope="col">{html_text(label)}</th>')
            i += 1
            continue
        span = 1
        while i + span < len(header) and header[i + span][0] == group:
            span += 1
        top.append(f'<th colspan="{span}" scope="colgroup">{html_text(group)}</th>')
        sub += [f'<th scope="col">{html_text(s)}</th>' for _, s in header[i:i + span]]
        i += span
    return f"<thead><tr>{''.join(top)}</tr><tr>{''.join(sub)}</tr></thead>"


def _links(urls: tuple[str, ...]) -> str:
    """``W&B`` linking the run, or ``W&B 1 2 3`` linking each seed's run."""
    if not urls:
        return ""
    if len(urls) == 1:
        return f' <a class="wandb" href="{html.escape(urls[0])}" title="W&amp;B run">W&amp;B</a>'
    links = " ".join(f'<a href="{html.escape(u)}" title="W&amp;B run {k}">{k}</a>'
                     for k, u in enumerate(urls[:LINK_LIMIT], 1))
    more = "…" if len(urls) > LINK_LIMIT else ""
    return f' <span class="wandb">W&amp;B {links}{more}</span>'



def table_html(layout: Layout) -> str:
    """The ``<table id="<name>">`` element of a layout."""
    grid = build_grid(layout, HTML)
    width = len(grid.header)
    # (column, sub) of each printed position, to find the cell behind an "Ours" value
    positions: list[tuple[str, str] | None] = [None] + [("", "desc")] * len(
        layout.table.desc_columns)
    for col in layout.columns:
        subs = ("ours", "paper", "diff") if col.kind == "metric" else ("ours", "paper")
        positions += [(col.key, s) for s in subs]
    body = []
    for i, (lr, values, tags) in enumerate(zip(grid.rows, grid.body, grid.style)):
        if lr.section:
            body.append(f'<tr class="section"><td colspan="{width}">{html_text(lr.section)}'
                        "</td></tr>")
        classes = [f"kind-{lr.kind}"] + (["rule-before"] if lr.rule_before else []) + (
            ["extra"] if lr.extra else [])
        tds = []
        for pos, value, tag in zip(positions, values, tags):
            cls = [tag] if tag else []
            attrs, extra = "", ""
            if pos is not None:
                key, sub = pos
                cls.append(sub)
            if pos is not None and sub != "desc":
                c = layout.cell(i, key)
                if sub == "ours" and c.cell_ids:
                    tip = f"runs: {', '.join(c.cell_ids[:10])}"
                    if c.collapsed:
                        tip += "\ncollapsed: " + "; ".join(c.collapse_notes)
                        cls.append("collapsed")
                    attrs = f' title="{html.escape(tip)}"'
                    extra = _links(c.wandb_urls)
                if sub == "diff" and not math.isnan(c.tolerance):
                    attrs = f' title="tolerance {c.tolerance:.2f}"'
            cls_attr = f' class="{" ".join(cls)}"' if cls else ""
            tds.append(f"<td{cls_attr}{attrs}>{value}{extra}</td>")
        body.append(f'<tr class="{" ".join(classes)}">{"".join(tds)}</tr>')
    return (f'<table id="{layout.name}" class="repro">{_header(layout, grid.header)}'
            f"<tbody>{''.join(body)}</tbody></table>")


def _compact(text: str, cache: dict[str, str]) -> str:
    """``{"torch": "2.13.0"}`` -> ``torch=2.13.0`` (cached: the same JSON repeats a lot)."""
    if text not in cache:
        try:
            value = json.loads(text) if text else {}
        except (TypeError, ValueError):
            value = text
        if isinstance(value, dict):
            out = ", ".join(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}"
                            for k, v in value.items())
        else:
            out = str(value)
        cache[text] = html.escape(out)
    return cache[text]


def provenance_html(layout: Layout) -> str:
    """A collapsible table of every result behind the table (one line per cell and seed)."""
    frame = layout.results
    cache: dict[str, str] = {}
    head = "".join(f"<th>{c}</th>" for c in PROV_COLUMNS)
    lines = []
    for r in frame.itertuples(index=False):
        metrics = ", ".join(f"{m}={getattr(r, m):.2f}" for m in METRIC_KEYS
                            if not math.isnan(getattr(r, m)))
        if r.wandb_mode == "online" and r.wandb_url:
            wb = f'<a href="{html.escape(r.wandb_url)}">run</a>'
        else:
            wb = html.escape(r.wandb_mode or "")
        wall = "" if math.isnan(r.wall_time_s) else f"{r.wall_time_s:.0f}"
        cells = [html.escape(str(v)) for v in (r.cell_id, r.row, r.method, r.dataset, r.model,
                                               r.teacher_model, r.seed, r.status, r.reason)]
        cells.append(html.escape(f"collapsed: {r.collapse_note}") if r.collapsed else "")
        cells += [metrics, html.escape(r.profile), html.escape(r.checkpoint),
                  html.escape(r.split), f'<span title="{html.escape(r.git_sha)}">'
                  f"{html.escape(r.git_sha[:10])}</span>"]
        json_cells = [f'<td class="json">{_compact(r.versions, cache)}</td>',
                      f'<td class="json">{_compact(r.assumptions, cache)}</td>']
        lines.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "".join(json_cells)
                     + f"<td>{wall}</td><td>{wb}</td></tr>")
    counts = ", ".join(f"{v} {k}" for k, v in sorted(layout.status_counts.items()))
    summary = f"Provenance: {len(frame)} result(s){' (' + counts + ')' if counts else ''}"
    return (f'<details class="provenance" id="provenance-{layout.name}"><summary>{summary}'
            f'</summary><div class="scroll"><table class="prov"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(lines)}</tbody></table></div></details>")


def quality_html(layout: Layout) -> str:
    """The companion table (:mod:`suite.report.quality`): ``<table id="<name>-quality">``
    under its own heading and caption; "" when there is none."""
    qt = build_quality(layout)
    if qt is None:
        return ""
    header = quality_header(qt)
    top = ['<th rowspan="2" scope="col">Method</th>']
    top += [f'<th colspan="3" scope="colgroup">{html_text(label)}</th>' for _, label in qt.groups]
    top.append('<th rowspan="2" scope="col">Cost (wall)</th>')
    sub = "".join(f'<th scope="col">{html_text(s)}</th>' for _, s in header[1:-1])
    rows = "".join("<tr>" + "".join(f"<td>{html_text(v)}</td>" for v in line) + "</tr>"
                   for line in quality_body(qt))
    return (f'<h3 id="quality-{layout.name}">{html_text(quality_title(layout))}</h3>'
            f'<p class="caption">{html_text(quality_caption(layout, qt))}</p>'
            f'<div class="scroll"><table id="{layout.name}-quality" class="repro quality">'
            f"<thead><tr>{''.join(top)}</tr><tr>{sub}</tr></thead><tbody>{rows}</tbody>"
            "</table></div>")


def _png_uri(path: Path) -> str:
    """A ``data:image/png;base64,...`` URI of a PNG file ("" when it cannot be read)."""
    try:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return ""


def _prediction_columns(layout: Layout, done: pd.DataFrame) -> list[tuple[str, Path]]:
    """(label, predictions folder) of the rows to show, Figure 5/6 order: student, methods,
    teacher; the lowest finished seed of each row."""
    order = {"student": 0, "method": 1, "combination": 1, "ablation": 1, "teacher": 2}
    rows = sorted({int(r) for r in done["_row"]},
                  key=lambda i: (order.get(layout.rows[i].kind, 3), i))
    out = []
    for i in rows:
        mine = done[done["_row"] == i].sort_values("seed")
        lr = layout.rows[i]
        label = lr.ref.label.replace("Teacher: ", "Teacher ").replace("Student: ", "Student ")
        out.append((label, Path(mine["predictions_dir"].iloc[0])))
    return out


def predictions_html(layout: Layout, limit: int = 4) -> str:
    """The paper's Figure 5/6 from the cells' saved pictures (:mod:`suite.predictions`): per
    dataset, one line per validation image: the image, the ground truth with its boundary band
    lightened, then the student, each method and the teacher. "" without pictures."""
    from suite.predictions import sample_names

    frame = layout.frame
    done = frame[(frame["status"] == "done") & (frame["_row"] >= 0)
                 & (frame["predictions_dir"] != "")].drop_duplicates("_src")  # each result once
    parts = []
    for dataset in dict.fromkeys(done["dataset"].tolist()):
        columns = _prediction_columns(layout, done[done["dataset"] == dataset])
        names = next((sample_names(folder) for _, folder in columns if sample_names(folder)), [])
        if not names:
            continue
        head = "".join(f"<th>{html_text(c)}</th>" for c in ["Image", "Ground truth (band)"]
                       + [label for label, _ in columns])
        body = []
        for name in names[:limit]:
            first = columns[0][1]
            cells = [(first / f"{name}_image.png", "image"), (first / f"{name}_gt.png", "ground truth")]
            cells += [(folder / f"{name}_pred.png", label) for label, folder in columns]
            tds = "".join(
                f'<td><img class="pred" alt="{html.escape(f"{what}: {name}")}" src="{uri}"></td>'
                if (uri := _png_uri(path)) else "<td>\u2014</td>" for path, what in cells)
            body.append(f"<tr>{tds}</tr>")
        parts.append(f"<h4>{html_text(dataset_name(dataset))}</h4><div class=\"scroll\">"
                     f'<table class="predictions" id="predictions-{layout.name}-{dataset}">'
                     f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")
    if not parts:
        return ""
    note = ("The first validation images of each dataset (the same in every cell): input, "
            "ground truth with its Boundary IoU band (d = 2% of the diagonal) lightened, and the "
            "prediction of each finished row (lowest seed).")
    return (f'<div class="predictions" id="predictions-{layout.name}"><h3>Predictions</h3>'
            f'<p class="caption">{html_text(note)}</p>' + "".join(parts) + "</div>")


def section_html(layout: Layout, png: bytes | None = None) -> str:
    """One table's section: title, smoke warning, caption, table, notes, figure, provenance."""
    parts = [f'<section id="section-{layout.name}" class="table-section">',
             f"<h2>{html_text(title(layout))}</h2>"]
    warning = smoke_warning(layout)
    if warning:
        parts.append(f'<div class="smoke-warning" role="alert">\u26a0 {html_text(warning)}</div>')
    collapsed = collapse_warning(layout)
    if collapsed:
        parts.append(f'<div class="collapse-warning" role="alert">{html_text(collapsed)}</div>')
    parts.append(f'<p class="caption">{html_text(caption(layout))}</p>')
    parts.append(f'<div class="scroll">{table_html(layout)}</div>')
    parts.append(f'<p class="legend">{html_text(legend(layout))}</p>')
    notes = footnotes(layout)
    if notes:
        parts.append('<ul class="footnotes">' + "".join(f"<li>{html_text(n)}</li>" for n in notes)
                     + "</ul>")
    parts.append(quality_html(layout))
    parts.append(predictions_html(layout))
    if png:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<figure id="figure-{layout.name}"><img alt="{html.escape(title(layout))}'
                     f' figure" src="data:image/png;base64,{data}"></figure>')
    parts.append(provenance_html(layout))
    parts.append("</section>")
    return "\n".join(parts)


def page_html(layouts: list[Layout], pngs: dict[str, bytes], heading: str) -> str:
    """A complete, self-contained HTML document over several tables."""
    nav = " ".join(f'<a href="#section-{lay.name}">Table {lay.table.roman}</a>'
                   for lay in layouts)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = "\n".join(section_html(lay, pngs.get(lay.name)) for lay in layouts)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(heading)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(heading)}</h1><p>Generated {stamp} by suite.report.</p>"
            f"<nav>{nav}</nav>\n{sections}\n</body></html>\n")
