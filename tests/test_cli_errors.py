"""Bad input: one clear line naming the problem (and the valid names), exit code 2."""

from __future__ import annotations

import pytest

from suite.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "table9"], "unknown table 'table9'; valid: det_signal, signal, table1, table2, table3, table4"),
        (["run", "table1", "--executor", "gpu"], "unknown executor 'gpu'; valid: local, debug, slurm"),
        (["run", "table1", "--profile", "nightly"], "unknown profile 'nightly'; valid: det_signal, paper, signal, smoke"),
        (["run", "table1", "--wandb", "cloud"], "unknown W&B mode 'cloud'"),
        (["run", "table1", "--profile", "paper"], "--data-root voc2012=PATH"),
        (["run", "table1", "--only", "colour=red"], "--only: unknown key 'colour'"),
        (["plan", "table1", "--teacher-checkpoint", "voc2012/pspnet_r101=/no/such.pth"],
         "teacher checkpoint for voc2012/pspnet_r101 not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("SUITE_DATA_VOC2012", raising=False)
    assert main([*argv, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing was started or written


def _table(folder, body: str) -> None:
    (folder / "mine.yaml").write_text(body)


def test_malformed_or_unknown_method_specs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SUITE_TABLES", str(tmp_path))
    _table(tmp_path, "name: mine\nrows: [\n")
    assert main(["plan", "mine"]) == 2
    assert "malformed table spec" in capsys.readouterr().err
    _table(tmp_path, "name: mine\ntask: segmentation\ndatasets: [voc2012]\nteacher: pspnet_r101\n"
                     "student: pspnet_r18\nrows:\n  - {row: x, method: distillmagic}\n")
    assert main(["plan", "mine"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'distillmagic'; valid: bcd, bglsseg" in err
    _table(tmp_path, "name: mine\ntask: segmentation\ndatasets: [voc2012]\nteacher: pspnet_r101\n"
                     "student: pspnet_r18\nrows:\n  - {row: x, method: bcd, options: {radius: 5, colour: 1}}\n")
    assert main(["plan", "mine"]) == 2
    assert "unknown options ['colour']" in capsys.readouterr().err


def test_output_into_a_closed_pipe_is_quiet():
    import subprocess
    import sys

    proc = subprocess.run(f"{sys.executable} -m suite plan table3 | head -n 1", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("table3: 63 cells")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_a_check_table_reports_against_the_paper_table_it_names(tmp_path, monkeypatch, capsys,
                                                                suite_cache):
    """``signal`` names table3: its report lays out in table3's rows, in a folder of its own."""
    out = tmp_path / "out"
    assert main(["report", "signal", "--profile", "signal", "--format", "md",
                 "--results", str(tmp_path / "res"), "--out", str(out)]) == 0
    assert (out / "signal" / "table3.md").is_file() and not (out / "table3.md").exists()
    monkeypatch.setenv("SUITE_TABLES", str(tmp_path))
    (tmp_path / "lone.yaml").write_text(
        "name: lone\ntask: segmentation\ndatasets: [voc2012]\nteacher: pspnet_r101\n"
        "student: pspnet_r18\nrows: [{row: student}]\n")
    capsys.readouterr()
    assert main(["report", "lone", "--results", str(tmp_path / "res"), "--format", "md"]) == 2
    assert "table 'lone' names no paper table to report against" in capsys.readouterr().err
