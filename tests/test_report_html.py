"""The self-contained HTML page opens in headless Chromium: a non-blank screenshot, and the DOM
holds every table, its figure and its provenance. Needs ``chromium`` (skipped when absent)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from suite.report import TABLES, render_html, render_report
from suite.report.synthetic import set_status, synthetic_frame

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))
                 if p), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (run: bash reports/install-tools.sh)")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """A results folder's page: tables 1, 3, 5 partially run (online W&B), 2 and 4 not run."""
    out = tmp_path_factory.mktemp("html")
    tables = {}
    for table in ("table1", "table3", "table5"):
        df = synthetic_frame(table, seeds=2, profile="smoke", wandb_mode="online")
        rows = [r for r in df["row"].unique() if r not in ("teacher", "student")]
        set_status(df, "missing", row=rows[0])
        set_status(df, "failed", row=rows[1], reason="<script>alert(1)</script>")
        tables[table] = df
    return render_html(tables, out)


def test_page_is_self_contained_with_provenance(page):
    text = page.read_text()
    assert page.name == "index.html"
    assert not re.search(r'(src|href)="(?!data:|#|https://wandb\.ai/)', text)  # no assets
    for table in TABLES:
        assert f'<table id="{table}"' in text and f'id="provenance-{table}"' in text
    assert text.count('src="data:image/png;base64,') == len(TABLES)
    assert "0123456789" in text and "torch=2.13.0" in text and "crop=[512, 512]" in text
    assert 'href="https://wandb.ai/kd-lab/bcd/runs/' in text  # online runs link to W&B
    assert "<script>alert(1)</script>" not in text  # free text is escaped
    assert 'class="smoke-warning"' in text


def test_offline_runs_have_no_wandb_links(tmp_path):
    df = synthetic_frame("table4", wandb_mode="offline")
    text = render_report("table4", df, tmp_path, ["html"])["html"].read_text()
    assert "wandb.ai" not in text and '<table id="table4"' in text


@needs_chromium
def test_chromium_screenshot_is_not_blank(page, tmp_path):
    shot = tmp_path / "shot.png"
    proc = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,2000",
                     page.as_uri())
    assert shot.exists(), proc.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2000, 1400)
    dark = (pixels < 128).mean()
    assert 0.005 < dark < 0.6  # text and rules drawn, not a blank or black page
    assert pixels.std() > 20


@needs_chromium
def test_chromium_dom_has_every_table(page, tmp_path):
    proc = _chromium(tmp_path, "--dump-dom", page.as_uri())
    dom = proc.stdout
    assert "</html>" in dom, proc.stderr[-2000:]
    for table in TABLES:
        assert f'id="{table}"' in dom and f'id="section-{table}"' in dom
    assert dom.count("<table") >= 2 * len(TABLES)  # each table plus its provenance table
