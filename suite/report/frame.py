"""The input contract: normalise a results DataFrame and summarise its protocol.

``collect()`` (and :func:`suite.report.wandb_source.from_wandb`) return one row per expected cell
and seed. Renderers must never crash on a partial or empty frame, so :func:`normalize` fills
absent columns with neutral defaults and coerces types once, up front.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

METRICS: tuple[str, ...] = ("miou", "aacc", "ap_box", "ap_mask")
EFFICIENCY: tuple[str, ...] = ("params_m", "flops_g", "fps")
# the paper's network (width 1.0, the dataset's classes; suite.params) beside a result's own
# counts at the cell's width: efficiency column -> the frame column the reports print
FULL_WIDTH: dict[str, str] = {"params_m": "params_full_m", "flops_g": "flops_full_g"}
FULL_WIDTH_COLUMNS: tuple[str, ...] = tuple(FULL_WIDTH.values())
QUALITY: tuple[str, ...] = ("boundary_iou", "connectivity_error")  # suite.boundary_metrics
COST: tuple[str, ...] = ("cost_wall_s", "cost_device_s", "peak_host_mib", "peak_device_mib")
STATUSES: tuple[str, ...] = ("done", "missing", "failed", "running", "damaged")

# column -> default for a frame that lacks it
DEFAULTS: dict[str, object] = {
    "table": "",
    "block": 0,
    "row": "",
    "method": "none",
    "dataset": "",
    "model": "",
    "teacher_model": "",
    "seed": 0,
    "cell_id": "",
    "status": "missing",
    "reason": "",
    **{m: np.nan for m in METRICS + EFFICIENCY + FULL_WIDTH_COLUMNS},
    "wall_time_s": np.nan,
    "profile": "",
    "checkpoint": "",
    "split": "",
    "reimplementation": False,
    "unverified": False,
    "git_sha": "",
    "versions": "{}",
    "assumptions": "{}",
    "wandb_url": "",
    "wandb_mode": "disabled",
    "collapsed": False,
    "collapse_note": "",
    **{m: np.nan for m in QUALITY + COST},
    "cost_device": "",
    "data_source": "",
    "predictions_dir": "",
}
TEXT = ("table", "row", "method", "dataset", "model", "teacher_model", "cell_id", "status",
        "reason", "profile", "checkpoint", "split", "git_sha", "versions", "assumptions",
        "wandb_url", "wandb_mode", "collapse_note", "cost_device", "data_source", "predictions_dir")


def _dtype(default: object) -> object:
    """The pandas dtype of a column whose neutral value is ``default``."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    return object


def normalize(df: pd.DataFrame | None, table: str | None = None) -> pd.DataFrame:
    """A copy of ``df`` with every contract column present and typed.

    Rows of other tables are dropped when ``table`` is given (and the frame has a ``table``
    column with values). Unknown statuses count as ``missing``.
    """
    df = pd.DataFrame() if df is None else df.copy()
    n = len(df)
    for col, default in DEFAULTS.items():
        if col not in df.columns:
            df[col] = pd.Series([default] * n, index=df.index, dtype=_dtype(default))
    for col in TEXT:
        df[col] = df[col].fillna(DEFAULTS[col]).astype(str)
    df["method"] = df["method"].replace({"": "none", "nan": "none", "None": "none"})
    for col in ("block", "seed"):
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype(int)
    for col in METRICS + EFFICIENCY + FULL_WIDTH_COLUMNS + QUALITY + COST + ("wall_time_s",):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    for col in ("reimplementation", "unverified", "collapsed"):
        df[col] = df[col].fillna(False).astype(bool)
    df["status"] = df["status"].str.lower().where(df["status"].str.lower().isin(STATUSES),
                                                  "missing")
    if table is not None and n and (df["table"] != "").any():
        df = df[(df["table"] == table) | (df["table"] == "")]
    return df.reset_index(drop=True)


@dataclass(frozen=True)
class Protocol:
    """What a caption must state: seeds, statistic, checkpoint, split, profile."""

    n_min: int
    n_max: int
    checkpoints: tuple[str, ...]
    splits: tuple[str, ...]
    profiles: tuple[str, ...]
    finished: int
    synthetic: bool = False

    @property
    def smoke(self) -> bool:
        """Whether any result (or planned cell) ran on synthetic data (:func:`synthetic_rows`):
        the profile's data source decides, not its name."""
        return self.synthetic

    def text(self) -> str:
        """One plain-text sentence, e.g. ``n = 3 seeds per cell, mean ± std (sample), ...``."""
        seeds = (f"n = {self.n_min}" if self.n_min == self.n_max
                 else f"n = {self.n_min}\u2013{self.n_max}")
        stat = "mean \u00b1 sample std over seeds" if self.n_max > 1 else "single run per cell"

        def join(values: tuple[str, ...]) -> str:
            return "/".join(values) if values else "unknown"

        head = (f"Protocol: {seeds} seed(s) per cell, {stat}" if self.finished
                else "Protocol (planned; no finished run yet)")
        return (f"{head}; checkpoint: {join(self.checkpoints)}; split: {join(self.splits)}; "
                f"profile: {join(self.profiles)}.")


def protocol(df: pd.DataFrame) -> Protocol:
    """Summarise the protocol of the finished rows (or of all rows when none has finished)."""
    done = df[df["status"] == "done"]
    src = done if len(done) else df
    if len(done):
        keys = ["block", "row", "method", "dataset"]
        counts = done.groupby(keys, sort=False).size()
        n_min, n_max = int(counts.min()), int(counts.max())
    else:
        n_min = n_max = 0

    def values(col: str) -> tuple[str, ...]:
        return tuple(sorted(v for v in src[col].unique() if v))

    return Protocol(n_min, n_max, values("checkpoint"), values("split"), values("profile"),
                    len(done), bool(synthetic_rows(src).any()))


def synthetic_rows(df: pd.DataFrame) -> pd.Series:
    """Which rows ran on synthetic data: the result's ``data_source`` (the profile's ``data``:
    ``synthetic`` or ``real``), or, for a frame that does not record it, a profile other than
    ``paper`` (the built-in real-data profile)."""
    source = df["data_source"]
    unknown = (source == "") & (df["profile"] != "") & (df["profile"] != "paper")
    return (source == "synthetic") | unknown
