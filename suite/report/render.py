"""Entry points: render one table to files, or every table to one self-contained HTML page."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from suite.report.html import page_html
from suite.report.latex import render_latex
from suite.report.layout import Layout, build_layout
from suite.report.macros import render_macros
from suite.report.markdown import render_markdown
from suite.report.plots import png_bytes, save_figure
from suite.report.reference import TABLES

FORMATS: tuple[str, ...] = ("md", "tex", "png", "pdf", "html", "csv", "parquet")


def _formats(formats: Iterable[str] | str) -> list[str]:
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out = [f.strip().lower().lstrip(".") for f in items if f and f.strip()]
    unknown = sorted(set(out) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown format(s) {unknown}; valid: {', '.join(FORMATS)}")
    return list(dict.fromkeys(out))


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def write_layout(layout: Layout, out_dir: Path, formats: Iterable[str] | str) -> dict[str, Path]:
    """Write ``layout`` in every requested format under ``out_dir``; format -> file.

    ``tex`` also writes ``<table>_macros.tex`` (key ``macros``); ``png`` also writes the PDF of
    the same figure (key ``pdf``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / layout.name
    written: dict[str, Path] = {}
    wanted = _formats(formats)
    png: bytes | None = None  # the figure, drawn once for the PNG/PDF files and the HTML page
    for fmt in wanted:
        if fmt == "md":
            written["md"] = _write(stem.with_suffix(".md"), render_markdown(layout))
        elif fmt == "tex":
            written["tex"] = _write(stem.with_suffix(".tex"), render_latex(layout))
            written["macros"] = _write(out_dir / f"{layout.name}_macros.tex",
                                       render_macros(layout))
        elif fmt in ("png", "pdf") and "pdf" not in written:
            png_path = stem.with_suffix(".png") if "png" in wanted else None
            written["pdf"] = stem.with_suffix(".pdf")
            png = save_figure(layout, png_path, written["pdf"])
            if png_path is not None:
                written["png"] = png_path
        elif fmt == "html":
            png = png if png is not None else png_bytes(layout)
            page = page_html([layout], {layout.name: png},
                             f"BCD reproduction: Table {layout.table.roman}")
            written["html"] = _write(stem.with_suffix(".html"), page)
        elif fmt == "csv":
            written["csv"] = stem.with_suffix(".csv")
            layout.to_frame().to_csv(written["csv"], index=False)
        elif fmt == "parquet":
            written["parquet"] = stem.with_suffix(".parquet")
            layout.to_frame().to_parquet(written["parquet"], index=False)
    return written


def render_report(table: str, df: pd.DataFrame | None, out_dir: Path,
                  formats: Iterable[str] | str = ("md", "tex", "png", "html", "csv"),
                  tolerance: float = 0.5, tolerance_std: float = 2.0) -> dict[str, Path]:
    """Render ``table`` (``table1`` .. ``table5``) from a collect()-style frame.

    Any state of the store renders: cells not run yet print as "—" and are listed in the
    footnotes. ``tolerance`` (points, single seed) and ``tolerance_std`` (multiples of the seed
    std, n >= 2) set when a cell's difference to the paper is flagged. Formats: md, tex (plus
    ``<table>_macros.tex``), png (plus the PDF), pdf, html, csv, parquet. Returns format -> path.
    """
    layout = build_layout(table, df, tolerance=tolerance, tolerance_std=tolerance_std)
    return write_layout(layout, Path(out_dir), formats)


def render_html(tables: dict[str, pd.DataFrame | None], out_dir: Path,
                tolerance: float = 0.5, tolerance_std: float = 2.0,
                all_tables: bool = True, filename: str = "index.html") -> Path:
    """One self-contained HTML page over a results folder: every table, figure and provenance.

    ``tables`` maps table names to their collect() frames; with ``all_tables`` the tables it
    lacks are rendered too, as not run yet. Returns the page's path (``out_dir/index.html``).
    """
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; valid: {', '.join(TABLES)}")
    names = [t for t in TABLES if all_tables or t in tables]
    layouts = [build_layout(t, tables.get(t), tolerance=tolerance, tolerance_std=tolerance_std)
               for t in names]
    pngs = {lay.name: png_bytes(lay) for lay in layouts}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return _write(out_dir / filename, page_html(layouts, pngs, "BCD reproduction report"))
