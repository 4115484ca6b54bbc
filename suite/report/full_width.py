"""The Params/FLOPs columns of a results frame: the paper's network, not the cell's width.

:func:`with_full_width` adds ``params_full_m`` and ``flops_full_g`` to a collect()-style frame:
for each row, its model at width 1.0 with its dataset's classes (:mod:`suite.params`). Params
are measured when the cache lacks them (well under a second a model); FLOPs come from the cache
only (``python -m suite.params TABLE --flops DATASET`` measures them), NaN where never measured.
Rows of a model or dataset the suite does not know get NaN.
"""

from __future__ import annotations

import math

import pandas as pd

from suite.report.frame import FULL_WIDTH


def full_width_values(model: str, dataset: str) -> dict[str, float]:
    """``{params_full_m, flops_full_g}`` of one (model, dataset); NaN where unknown."""
    from suite.data import DATASETS
    from suite.models import ARCHS
    from suite.params import full_width

    nan = math.nan
    if model not in ARCHS or dataset not in DATASETS:
        return {col: nan for col in FULL_WIDTH.values()}
    counts = full_width(model, dataset)
    return {full: float(counts.get(metric, nan)) for metric, full in FULL_WIDTH.items()}


def with_full_width(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the full-width columns filled for every (model, dataset) it holds."""
    if frame.empty or not {"model", "dataset"} <= set(frame.columns):
        return frame
    pairs = frame[["model", "dataset"]].astype(str).drop_duplicates()
    values = {(m, d): full_width_values(m, d) for m, d in zip(pairs["model"], pairs["dataset"])}
    keys = list(zip(frame["model"].astype(str), frame["dataset"].astype(str)))
    return frame.assign(**{col: [values[k][col] for k in keys] for col in FULL_WIDTH.values()})
