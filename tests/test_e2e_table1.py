"""Table I end to end on real mmseg models and synthetic VOC data, at unit-test size."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from suite.cli import main
from suite.launch import launch
from suite.store import Store
from suite.tables import cell_id, expand

REPO = Path(__file__).resolve().parent.parent


def _run(*args: str) -> int:
    return main(list(args))


def test_tiny_table1_runs_reports_and_reruns_nothing(tiny_profile, tmp_path, capsys, monkeypatch):
    # Config text is never formatted with yapf (slow, and its bare ``except`` swallowed signals).
    def no_yapf(*args, **kwargs):
        raise AssertionError("yapf called")

    monkeypatch.setattr("mmengine.config.config.FormatCode", no_yapf)
    results = tmp_path / "results"
    code = _run("run", "table1", "--profile", tiny_profile, "--executor", "debug",
                "--wandb", "disabled", "--results", str(results))
    assert code == 0
    cells = expand("table1", tiny_profile)
    store = Store(results)
    assert [store.state(c.id) for c in cells] == ["done"] * 6
    for c in cells:
        res = store.result(c.id)
        assert 0.0 <= res["miou"] <= 100.0 and res["params_m"] > 0 and res["flops_g"] > 0
        assert res["versions"]["torch"].startswith("2.13") and res["git_sha"]
        assert (store.cell_dir(c.id) / "model.pth").is_file()
        assert any(k.startswith("IoU.") for k in res["metrics"])
    bd = store.result(cells[2].id)
    assert bd["assumptions"]["bcd.radius"] == 5 and bd["assumptions"]["bcd.context"] is False
    assert bd["method"]["reimplementation"] is True
    # the student's Params equal across student-only and distilled cells: no distillation parts
    assert store.result(cells[1].id)["params_m"] == bd["params_m"]
    # the teacher a student distilled from is the trained teacher cell's network, unchanged by
    # the Runner's weight initialisation (the last checkpoint of the distillation holds it)
    import torch

    trained = torch.load(store.cell_dir(cells[0].id) / "model.pth", weights_only=True)["state_dict"]
    work = store.cell_dir(cells[2].id) / "work"
    last = torch.load(max(work.glob("iter_*.pth"), key=lambda p: int(p.stem.split("_")[-1])),
                      weights_only=False)["state_dict"]
    for key, value in trained.items():
        assert torch.equal(last[f"teacher.{key}"], value), key

    start = time.time()
    assert _run("run", "table1", "--profile", tiny_profile, "--executor", "debug",
                "--wandb", "disabled", "--results", str(results)) == 0
    assert time.time() - start < 30
    assert "0 ran, 6 already finished" in capsys.readouterr().out

    out = tmp_path / "report"
    assert _run("report", "table1", "--profile", tiny_profile, "--results", str(results),
                "--format", "md,tex", "--out", str(out)) == 0
    md = (out / "table1.md").read_text()
    assert "74.65" in md and "smoke" in md.lower()
    assert (out / "table1.tex").is_file()


def test_nan_loss_fails_one_cell_and_the_others_still_run(tiny_profile, tmp_path):
    cells = expand("table1", tiny_profile)[:3]  # teacher, student, +L_bd
    bad = cells[1]
    bad.config = json.loads(json.dumps(bad.config))
    bad.config["optimizer"]["lr"] = 1e30
    bad.id = cell_id(bad.config)
    store = Store(tmp_path)
    outcome = launch(cells, store, "debug", "disabled")
    assert store.state(bad.id) == "failed"
    assert "non-finite loss" in store.reason(bad.id)
    assert store.state(cells[0].id) == "done" and store.state(cells[2].id) == "done"
    assert list(outcome.failed) == [bad.id]


def test_local_executor_pool_with_wandb_offline(tiny_profile, tmp_path):
    cells = expand("table1", tiny_profile)[:2]
    store = Store(tmp_path)
    env_before = os.environ.get("WANDB_MODE")
    os.environ.pop("WANDB_MODE", None)
    try:
        outcome = launch(cells, store, "local", "offline", workers=2)
    finally:
        if env_before is not None:
            os.environ["WANDB_MODE"] = env_before
    assert outcome.ok and len(outcome.done) == 2
    for c in cells:
        res = store.result(c.id)
        assert res["wandb"]["mode"] == "offline" and res["wandb"]["run_id"]
        runs = list((store.cell_dir(c.id) / "wandb").rglob("offline-run-*"))
        assert runs, "one offline W&B run per cell attempt"


def test_killed_run_resumes_from_its_checkpoint(tiny_profile, tmp_path):
    results = tmp_path / "results"
    env = dict(os.environ, WANDB_MODE="disabled")
    # the student row, made long enough to be killed mid-way
    profile_dir = Path(os.environ["SUITE_PROFILES"])
    text = (profile_dir / "tiny.yaml").read_text().replace("student:\n    batch_size: 2\n    iters: 4",
                                                           "student:\n    batch_size: 2\n    iters: 60")
    (profile_dir / "tiny.yaml").write_text(text)
    cell = [c for c in expand("table1", tiny_profile) if c.row == "student"][0]
    assert cell.config["iters"] == 60
    cmd = [sys.executable, "-m", "suite", "run", "table1", "--profile", tiny_profile, "--only",
           "row=student", "--executor", "debug", "--wandb", "disabled", "--results", str(results)]
    first_log = open(tmp_path / "first-attempt.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=first_log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    work = results / cell.id / "work"
    deadline = time.time() + 240

    def intact() -> list[int]:  # iterations of complete checkpoints on disk
        return sorted(int(p.stem.split("_")[-1]) for p in work.glob("iter_*.pth") if zipfile.is_zipfile(p))

    while not intact() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first_log.close()
    assert intact(), "no checkpoint before the kill: " + (tmp_path / "first-attempt.log").read_text()[-2000:]
    saved = intact()[-1]
    assert 0 < saved < 60
    store = Store(results)
    assert store.state(cell.id) == "failed"  # its process is gone
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert store.state(cell.id) == "done"
    assert store.status_record(cell.id)["attempt"] == 2
    log = (results / cell.id / "train.log").read_text()
    assert "attempt-1" in log and "attempt-2" in log
    assert f"resumed epoch: 0, iter: {saved}" in log.split("attempt-2")[1]
