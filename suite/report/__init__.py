"""Reports of the reproduced tables I-V: Markdown, LaTeX (+ macros), PNG/PDF plots, HTML, CSV.

Public API:

* :func:`render_report` -- one table from a collect()-style frame to files (format -> path);
* :func:`render_html` -- one self-contained HTML page over all tables of a results folder;
* :func:`from_wandb` -- the same frame built from W&B runs instead of the local store.

Modules, one job each: ``reference`` (the paper's tables), ``frame`` (input contract),
``layout`` (our numbers laid into the paper's table: seeds, Δ, diffs, flags, ranks),
``grid``/``caption`` (cell strings and captions), ``markdown``, ``latex``, ``macros``,
``plots``, ``html``, ``quality`` (the companion table: Boundary IoU, connectivity error, cost,
paired seed differences), ``full_width`` (the Params/FLOPs of the paper's network,
:mod:`suite.params`), ``wandb_source``, ``synthetic`` (fixture frames), ``render`` (entry
points).
"""

from suite.report.layout import Layout, build_layout
from suite.report.reference import TABLES
from suite.report.render import FORMATS, render_html, render_report
from suite.report.wandb_source import from_wandb

__all__ = ["FORMATS", "TABLES", "Layout", "build_layout", "from_wandb", "render_html",
           "render_report"]
