"""from_wandb builds the collect() frame from W&B runs; tested with a fake public API."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from suite.report import from_wandb, render_report
from suite.report.frame import DEFAULTS
from suite.report.layout import build_layout


@dataclass
class FakeRun:
    """The attributes of ``wandb.apis.public.Run`` that from_wandb reads."""

    id: str
    config: dict[str, Any]
    summary_metrics: dict[str, Any]
    state: str = "finished"
    created_at: str = "2024-01-01T00:00:00"
    group: str = ""
    metadata: dict[str, Any] = field(default_factory=lambda: {"git": {"commit": "c0ffee" * 6}})

    @property
    def url(self) -> str:
        return f"https://wandb.ai/lab/bcd/runs/{self.id}"


class FakeApi:
    """Stands in for ``wandb.Api()``: ``runs(project)`` returns the runs given."""

    def __init__(self, runs: list[FakeRun]) -> None:
        self._runs = runs
        self.projects: list[str] = []

    def runs(self, project: str) -> list[FakeRun]:
        self.projects.append(project)
        return self._runs


def _run(run_id: str, row: str, seed: int, miou: float | None, state: str = "finished",
         table: str = "table3", dataset: str = "voc2012", created: str = "2024-01-01",
         **cell: Any) -> FakeRun:
    method = "none" if row in ("teacher", "student") else row
    config = {"cell": {"table": table, "row": row, "method": method, "dataset": dataset,
                       "model": "pspnet_r18", "teacher": "pspnet_r101", "seed": seed,
                       "profile": "paper", "cell_id": f"{row}-{dataset}-{seed}",
                       "checkpoint": "last", "split": "val", **cell},
              "versions": {"torch": "2.13.0"}, "assumptions": {"crop": 512}}
    summary = {} if miou is None else {"miou": miou, "aacc": 90.0, "params_m": 15.24}
    return FakeRun(run_id, config, summary, state, created, group=f"{row}-{dataset}-{seed}")


@pytest.fixture()
def runs() -> list[FakeRun]:
    return [
        _run("s0", "student", 0, 70.0),
        _run("s1", "student", 1, 71.0),
        _run("b0a", "bcd", 0, None, state="crashed", created="2024-01-01"),  # first attempt
        _run("b0b", "bcd", 0, 74.5, created="2024-01-02"),  # requeued attempt finished
        _run("k0", "kd", 0, None, state="running"),
        _run("c0", "cirkd", 0, None, state="failed"),
        _run("other", "kd", 0, 27.0, table="table4", dataset="coco_stuff10k"),
        FakeRun("nocell", {"lr": 0.01}, {"miou": 1.0}),  # not a suite run
    ]


def test_from_wandb_with_monkeypatched_api(monkeypatch, runs):
    api = FakeApi(runs)
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(Api=lambda: api))
    df = from_wandb("lab/bcd", "table3")
    assert api.projects == ["lab/bcd"]
    assert set(DEFAULTS) <= set(df.columns)
    assert set(df["table"]) == {"table3"}
    assert len(df) == 5  # 2 student seeds, bcd (finished attempt wins), kd, cirkd
    by = df.set_index(["row", "seed"])
    assert by.at[("bcd", 0), "status"] == "done" and by.at[("bcd", 0), "miou"] == 74.5
    assert by.at[("bcd", 0), "wandb_url"].endswith("/b0b")
    assert by.at[("kd", 0), "status"] == "running"
    assert by.at[("cirkd", 0), "status"] == "failed"
    assert "failed" in by.at[("cirkd", 0), "reason"]
    assert by.at[("student", 1), "teacher_model"] == "pspnet_r101"
    assert by.at[("student", 1), "git_sha"] == "c0ffee" * 6
    assert by.at[("student", 1), "versions"] == '{"torch": "2.13.0"}'
    assert set(df["wandb_mode"]) == {"online"}


def test_report_from_wandb_frame(tmp_path, runs):
    df = from_wandb("lab/bcd", "table3", api=FakeApi(runs))
    lay = build_layout("table3", df)
    student = next(i for i, r in enumerate(lay.rows) if r.key == "student")
    bcd = next(i for i, r in enumerate(lay.rows) if r.key == "bcd")
    assert lay.cell(student, "voc2012.miou").mean == 70.5
    assert lay.cell(bcd, "voc2012.miou").delta == pytest.approx(4.0)
    html = render_report("table3", df, tmp_path, ["html"])["html"].read_text()
    assert "https://wandb.ai/lab/bcd/runs/b0b" in html


def test_from_wandb_without_runs_of_the_table():
    df = from_wandb("lab/empty", "table5", api=FakeApi([]))
    assert df.empty and set(DEFAULTS) <= set(df.columns)
    lay = build_layout("table5", df)
    assert all(not c.has_value for c in lay.cells.values())
    other = from_wandb("lab/bcd", "table5", api=FakeApi([_run("x", "kd", 0, 1.0)]))
    assert other.empty
