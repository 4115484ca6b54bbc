"""Fault injection: concurrent runs on one store, kill -9 mid-cell and mid-checkpoint, damaged
results and models, bad input. Tiny profile, a few iterations: the whole tier runs in seconds
to a minute.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from suite.claims import CLAIM, CellClaimed, Claim, ClaimLost, Owner, acquire, try_acquire
from suite.cli import main
from suite.store import Store
from suite.tables import expand

REPO = Path(__file__).resolve().parent.parent
ONLY_TEACHER = ["--only", "role=teacher"]

# A `suite` entry point that SIGKILLs itself at a chosen point of one cell:
# FAULT=after_checkpoint:N  right after the checkpoint of iteration N is written;
# FAULT=during_checkpoint:N while writing that checkpoint (half of its bytes are on disk).
FAULTY = textwrap.dedent("""
    import os, signal, sys
    from mmengine.fileio.backends.local_backend import LocalBackend

    kind, _, it = os.environ["FAULT"].partition(":")
    target = os.path.join(os.environ["FAULT_CELL"], "work", f"iter_{it}.pth")
    put = LocalBackend.put

    def faulty_put(self, obj, filepath):
        if not str(filepath).endswith(target):
            return put(self, obj, filepath)
        if kind == "during_checkpoint":
            with open(filepath, "wb") as fh:
                fh.write(obj[: len(obj) // 2])
                fh.flush()
                os.fsync(fh.fileno())
        else:
            put(self, obj, filepath)
        os.kill(os.getpid(), signal.SIGKILL)

    LocalBackend.put = faulty_put
    from suite.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _argv(command: str, profile: str, results: Path, *extra: str) -> list[str]:
    tail = ["--executor", "debug", "--wandb", "disabled"] if command == "run" else []
    return [command, "table1", "--profile", profile, "--results", str(results), *tail, *extra]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_consistent(store: Store, cell_id: str) -> dict:
    """The cell is done and its result.json describes the model.pth beside it."""
    assert store.state(cell_id) == "done", store.reason(cell_id)
    res = store.result(cell_id)
    model = store.cell_dir(cell_id) / "model.pth"
    assert res["model_file"]["sha256"] == _sha(model)
    assert res["model_file"]["size"] == model.stat().st_size
    assert not (store.cell_dir(cell_id) / CLAIM).exists()  # released
    return res


def _attempt_headers(store: Store, cell_id: str) -> list[str]:
    return re.findall(r"^===== (attempt-\d+) =====$", (store.cell_dir(cell_id) / "train.log").read_text(),
                      re.M)


# ----------------------------------------------------------------------------- claims


def test_claim_is_exclusive_and_released_into_history(tmp_path):
    cell = tmp_path / "c1"
    claim = try_acquire(cell)
    assert isinstance(claim, Claim)
    other = try_acquire(cell)  # this very process, still alive: a live owner
    assert isinstance(other, Owner) and other.pid == os.getpid()
    with pytest.raises(CellClaimed, match=f"claimed by pid {os.getpid()}"):
        acquire(cell)
    claim.release()
    assert not (cell / CLAIM).exists()
    assert (cell / "claims" / f"{claim.owner.token}.json").is_file()
    assert isinstance(try_acquire(cell), Claim)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(cell: Path, owner: Owner, age_s: float = 0.0) -> None:
    cell.mkdir(parents=True, exist_ok=True)
    (cell / CLAIM).write_text(owner.content())
    if age_s:
        past = time.time() - age_s
        os.utime(cell / CLAIM, (past, past))


def test_stale_claims_are_taken_over_and_logged(tmp_path, monkeypatch):
    monkeypatch.setenv("SUITE_CLAIM_STALE_S", "30")
    dead = Owner("t-dead", Owner.me().host, _dead_pid(), created=time.time())
    _plant(tmp_path / "a", dead)
    claim = try_acquire(tmp_path / "a")
    assert isinstance(claim, Claim) and "process gone" in claim.took_over[0]
    assert "took over stale claim of pid" in (tmp_path / "a" / "claims" / "log").read_text()
    assert (tmp_path / "a" / "claims" / "t-dead.stale.json").is_file()

    far = Owner("t-far", "another-host", 4242, created=time.time() - 100)
    _plant(tmp_path / "b", far, age_s=100)  # no heartbeat for 100 s > 30 s
    claim = try_acquire(tmp_path / "b", job_probe=None)
    assert isinstance(claim, Claim) and "no heartbeat for" in claim.took_over[0]
    _plant(tmp_path / "c", far, age_s=5)  # beating: alive
    assert isinstance(try_acquire(tmp_path / "c", job_probe=None), Owner)

    job = Owner("t-job", "another-host", 4242, job_id="77_3", created=time.time())
    _plant(tmp_path / "d", job)  # fresh heartbeat, but the scheduler says the job is gone
    claim = try_acquire(tmp_path / "d", job_probe=lambda j: False)
    assert isinstance(claim, Claim) and "slurm job 77_3" in claim.took_over[0]
    _plant(tmp_path / "e", job, age_s=100)  # old heartbeat, but the job runs (e.g. suspended)
    assert isinstance(try_acquire(tmp_path / "e", job_probe=lambda j: True), Owner)


def _race(cell: str, barrier, out) -> None:
    barrier.wait()
    got = try_acquire(Path(cell), job_probe=None)
    out.put(isinstance(got, Claim))
    time.sleep(0.5)  # hold it while the others look


def test_many_takers_of_one_stale_claim_one_wins(tmp_path):
    cell = tmp_path / "c"
    _plant(cell, Owner("t-dead", Owner.me().host, _dead_pid()))
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(cell), barrier, out)) for _ in range(6)]
    for p in procs:
        p.start()
    wins = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert sum(wins) == 1


def test_an_owner_whose_claim_was_taken_over_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("SUITE_CLAIM_HEARTBEAT_S", "0.05")
    claim = try_acquire(tmp_path / "c")
    claim.start(interrupt_on_loss=False)
    os.replace(tmp_path / "c" / CLAIM, tmp_path / "moved.json")  # judged stale, moved aside
    _plant(tmp_path / "c", Owner("t-new", "another-host", 1))
    deadline = time.time() + 5
    while claim.lost is None and time.time() < deadline:
        time.sleep(0.05)
    with pytest.raises(ClaimLost, match="another-host"):
        claim.check()
    claim.release()
    assert json.loads((tmp_path / "c" / CLAIM).read_text())["token"] == "t-new"  # untouched


# ----------------------------------------------------------------------------- verified reads


def test_result_checks(tmp_path):
    store = Store(tmp_path)
    d = store.cell_dir("c")
    d.mkdir()
    (d / "model.pth").write_bytes(b"x" * 100)
    store.finish("c", {"cell_id": "c", "miou": 1.0})
    assert store.state("c") == "done"
    (d / "model.pth").write_bytes(b"y" * 100)  # same size, other bytes, new mtime
    assert store.state("c") == "damaged" and "sha256" in store.reason("c")
    for text, why in [('{"miou": 12', "unreadable"), ('{"aacc": 1}', "lacks miou"),
                      ('{"miou": "high"}', "non-numeric"), ('{"miou": 1, "cell_id": "z"}', "cell z")]:
        (d / "result.json").write_text(text)
        assert store.state("c") == "damaged" and why in store.reason("c")
    moved = store.set_aside("c", "test")
    assert sorted(p.name for p in moved.iterdir()) == ["model.pth", "result.json", "why.txt"]
    assert store.state("c") == "damaged" and "result.json missing" in store.reason("c")
    store.finish("c", {"miou": 2.0})
    with pytest.raises(RuntimeError, match="not overwriting"):
        store.finish("c", {"miou": 3.0})
    assert store.result("c") == {"miou": 2.0}


# ----------------------------------------------------------------------------- bad input


def _bad_tables(folder: Path) -> None:
    head = ("name: {n}\ntask: segmentation\ndatasets: [voc2012]\nteacher: pspnet_r101\n"
            "student: pspnet_r18\nrows:\n")
    (folder / "broken.yaml").write_text("name: broken\nrows: [\n")
    (folder / "banana.yaml").write_text(head.format(n="banana") +
                                        "  - {row: x, method: bcd, options: {lambda_bd: banana}}\n")
    (folder / "flag.yaml").write_text(head.format(n="flag") +
                                      "  - {row: x, method: kd, options: {reduction: median}}\n")


@pytest.mark.parametrize(("argv", "message"), [
    (["plan", "table1", "--only", "method=nosuch"], "--only method=nosuch matches no cell; valid method values: bcd, none"),
    (["report", "table1", "--format", "md,docx"], "unknown format(s) docx; valid: md, tex"),
    (["run", "table1", "--results", "{file}"], "is a file, not a folder"),
    (["plan", "broken"], "malformed table spec"),
    (["plan", "banana"], "option lambda_bd must be a number (default 10.0); got 'banana'"),
    (["plan", "flag"], "option reduction must be one of pixelmean, mean"),
    (["run", "table1", "--wandb", "online"], "--wandb online needs WANDB_API_KEY"),
])
def test_bad_input_is_one_line_and_exit_2_before_anything_runs(argv, message, tmp_path, monkeypatch,
                                                                 capsys):
    monkeypatch.setenv("SUITE_TABLES", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    _bad_tables(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    results = tmp_path / "results"
    argv = [a.replace("{file}", str(afile)) for a in argv]
    if "--results" not in argv:
        argv += ["--results", str(results)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
    assert not results.exists() and afile.read_text() == "not a folder"


# ----------------------------------------------------------------------------- end to end


def _spawn(argv: list[str], log: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "suite", *argv], cwd=REPO,
                            env={**os.environ, "SUITE_CLAIM_POLL_S": "0.3", **env},
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115


def test_two_concurrent_runs_train_every_cell_once(tiny_profile, tmp_path):
    results = tmp_path / "results"
    argv = _argv("run", tiny_profile, results, "--only", "row=student,bd")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [_spawn(argv, log) for log in logs]
    codes = [p.wait(timeout=600) for p in procs]
    outs = [log.read_text() for log in logs]
    assert codes == [0, 0], "\n".join(o[-3000:] for o in outs)
    ran = [int(re.search(r"table1: (\d+) ran", o).group(1)) for o in outs]
    assert sum(ran) == 3, outs  # teacher, student, bd: each trained by one of the two
    store = Store(results)
    for cell in expand("table1", tiny_profile):
        if cell.row in ("teacher", "student", "bd"):
            _assert_consistent(store, cell.id)
            assert store.status_record(cell.id)["attempt"] == 1
            assert _attempt_headers(store, cell.id) == ["attempt-1"]


def _teacher(profile: str):
    return next(c for c in expand("table1", profile) if c.role == "teacher")


def test_kill_9_during_a_cell_and_during_a_checkpoint_save_then_resume(tiny_profile, tmp_path):
    # mmengine removes the oldest kept checkpoint before it writes the next one; the suite keeps
    # one slot more, so with the profiles' `keep: 1` the checkpoint before one killed mid-write
    # survives and the attempt resumes from it
    results = tmp_path / "results"
    teacher = _teacher(tiny_profile)
    assert teacher.config["checkpoint"]["keep"] == 1
    script = tmp_path / "faulty_suite.py"
    script.write_text(FAULTY)
    argv = _argv("run", tiny_profile, results, *ONLY_TEACHER)
    work = results / teacher.id / "work"

    def killed(fault: str, log: str) -> None:
        proc = subprocess.run([sys.executable, str(script), *argv], cwd=REPO, capture_output=True,
                              text=True, timeout=600, env={**os.environ, "FAULT": fault,
                                                           "FAULT_CELL": teacher.id})
        (tmp_path / log).write_text(proc.stdout + proc.stderr)
        assert proc.returncode == -9, proc.stdout[-2000:] + proc.stderr[-2000:]

    store = Store(results)
    killed("after_checkpoint:2", "first.log")  # mid-cell, one checkpoint on disk
    assert store.state(teacher.id) == "failed" and "resume" in store.reason(teacher.id)
    assert (results / teacher.id / CLAIM).exists()  # the dead owner's claim is left behind
    killed("during_checkpoint:4", "second.log")  # resumed, then killed writing the last one
    assert (work / "iter_4.pth").stat().st_size > 0
    assert store.state(teacher.id) == "failed"

    assert main(argv) == 0
    res = _assert_consistent(store, teacher.id)
    assert "reevaluated_from" not in res  # iter_4.pth was half-written: iterations 3-4 ran again
    assert store.status_record(teacher.id)["attempt"] == 3
    log = (results / teacher.id / "train.log").read_text()
    assert _attempt_headers(store, teacher.id) == ["attempt-1", "attempt-2", "attempt-3"]
    assert "resumed epoch: 0, iter: 2" in log.split("attempt-2")[1]
    assert "resumed epoch: 0, iter: 2" in log.split("attempt-3")[1]
    takeovers = (results / teacher.id / "claims" / "log").read_text()
    assert takeovers.count("took over stale claim") == 2


def test_truncated_result_and_model_are_detected_and_repaired(tiny_profile, tmp_path, capsys):
    results = tmp_path / "results"
    teacher = _teacher(tiny_profile)
    argv = _argv("run", tiny_profile, results, *ONLY_TEACHER)
    assert main(argv) == 0
    store = Store(results)
    d = store.cell_dir(teacher.id)
    first = _assert_consistent(store, teacher.id)

    (d / "result.json").write_text('{"miou": 12')  # truncated
    assert store.state(teacher.id) == "damaged"
    capsys.readouterr()
    assert main(_argv("status", tiny_profile, results, *ONLY_TEACHER)) == 0
    assert "damaged  table1/voc2012/teacher" in capsys.readouterr().out
    assert main(_argv("report", tiny_profile, results, *ONLY_TEACHER, "--format", "md",
                      "--out", str(tmp_path / "report"))) == 0
    assert f"damaged {teacher.id}: damaged: result.json unreadable" in capsys.readouterr().out
    assert main(argv) == 0
    again = _assert_consistent(store, teacher.id)
    assert again["reevaluated_from"] == "work/iter_4.pth" and again["miou"] == first["miou"]

    model = d / "model.pth"
    half = model.stat().st_size // 2
    model.write_bytes(model.read_bytes()[:half])  # truncated
    assert store.state(teacher.id) == "damaged" and "bytes" in store.reason(teacher.id)
    assert main(argv) == 0
    _assert_consistent(store, teacher.id)
    kept = sorted((d / "damaged").iterdir())
    assert len(kept) == 2  # both damaged versions kept aside, nothing deleted
    assert (kept[0] / "result.json").read_text() == '{"miou": 12'
    assert (kept[1] / "model.pth").stat().st_size == half
