"""Table specs -> cells, cell ids, selection, and the atomic store."""

from __future__ import annotations

import json
import os

import pytest

from suite.errors import SpecError, SuiteError
from suite.store import Store
from suite.tables import cell_id, expand, select, validate_table


def test_table1_expands_to_teacher_and_five_cells_with_dependencies():
    cells = expand("table1", "smoke")
    roles = [c.role for c in cells]
    assert roles == ["teacher", "student", "distill", "distill", "distill", "distill"]
    teacher = cells[0]
    assert [c.row for c in cells[1:]] == ["student", "bd", "cd", "bd+cd", "bd+cd+wd"]
    assert all(c.depends_on == [teacher.id] for c in cells if c.role == "distill")
    assert cells[1].depends_on == []
    assert len({c.id for c in cells}) == 6


def test_cell_ids_are_stable_and_shared_between_tables():
    a, b = expand("table1", "smoke"), expand("table1", "smoke")
    assert [c.id for c in a] == [c.id for c in b]
    t3 = expand("table3", "smoke")
    voc3 = {c.row: c.id for c in t3 if c.config["dataset"] == "voc2012"}
    t1 = {c.row: c.id for c in a}
    assert voc3["student"] == t1["student"] and voc3["teacher"] == t1["teacher"]
    assert voc3["bcd"] == t1["bd+cd+wd"]  # same resolved config -> same cell


def test_cell_id_changes_with_any_resolved_option():
    cfg = expand("table1", "smoke")[-1].config
    other = json.loads(json.dumps(cfg))
    other["method"]["losses"]["loss_bd"]["weight"] = 11.0
    assert cell_id(cfg) != cell_id(other)
    moved = dict(cfg, data_root="/elsewhere")
    assert cell_id(cfg) == cell_id(moved)  # where data lives is not what runs


def test_seeds_multiply_student_cells_not_teachers():
    cells = expand("table1", "smoke", seeds=3)
    assert sum(c.role == "teacher" for c in cells) == 1
    assert sum(c.role != "teacher" for c in cells) == 15


def test_select_keeps_dependencies():
    cells = expand("table1", "smoke")
    chosen = select(cells, ["row=bd"])
    assert [c.row for c in chosen] == ["teacher", "bd"]
    with pytest.raises(SuiteError, match="unknown key"):
        select(cells, ["colour=red"])


def test_bad_names_list_the_valid_ones():
    with pytest.raises(SuiteError, match="valid: .*table1"):
        expand("table9", "smoke")
    with pytest.raises(SuiteError, match="valid: .*smoke"):
        expand("table1", "nightly")


def test_paper_profile_needs_dataset_roots(tmp_path, monkeypatch):
    monkeypatch.delenv("SUITE_DATA_VOC2012", raising=False)
    with pytest.raises(SuiteError, match="--data-root voc2012=PATH"):
        expand("table1", "paper")
    cells = expand("table1", "paper", data_roots={"voc2012": str(tmp_path)})
    assert cells[0].config["iters"] == 40000 and cells[0].config["crop"] == [512, 512]


def test_malformed_specs_are_named():
    with pytest.raises(SpecError, match="missing key 'rows'"):
        validate_table({"name": "x", "task": "segmentation", "datasets": [], "teacher": "pspnet_r101",
                        "student": "pspnet_r18"}, "x.yaml")
    with pytest.raises(SpecError, match="unknown model"):
        validate_table({"name": "x", "task": "segmentation", "datasets": [], "teacher": "resnet9000",
                        "student": "pspnet_r18", "rows": []}, "x.yaml")
    with pytest.raises(SpecError, match="duplicate row"):
        validate_table({"name": "x", "task": "segmentation", "datasets": ["voc2012"], "teacher": "pspnet_r101",
                        "student": "pspnet_r18", "rows": [{"row": "a"}, {"row": "a"}]}, "x.yaml")
    with pytest.raises(SpecError, match="unknown task 's'; valid: .*segmentation"):
        validate_table({"name": "x", "task": "s", "datasets": ["voc2012"], "teacher": "pspnet_r101",
                        "student": "pspnet_r18", "rows": [{"row": "a"}]}, "x.yaml")


def test_store_states_and_atomic_result(tmp_path):
    store = Store(tmp_path)
    assert store.state("abc") == "missing"
    store.mark("abc", "running", new_attempt=True, pid=os.getpid())
    assert store.state("abc") == "running"
    store.mark("abc", "failed", reason="boom")
    assert store.state("abc") == "failed" and store.reason("abc") == "boom"
    store.mark("abc", "running", new_attempt=True, pid=os.getpid())
    assert store.status_record("abc")["attempt"] == 2
    store.finish("abc", {"miou": 1.0})
    assert store.state("abc") == "done"
    with pytest.raises(RuntimeError, match="not overwriting"):
        store.finish("abc", {"miou": 2.0})
    with pytest.raises(RuntimeError, match="finished"):
        store.mark("abc", "failed", reason="late")
    assert store.result("abc") == {"miou": 1.0}
    assert not list(tmp_path.rglob("*.tmp"))


def test_running_cell_with_dead_process_counts_as_failed(tmp_path):
    store = Store(tmp_path)
    store.mark("dead", "running", new_attempt=True, pid=2**22 + 12345)
    assert store.state("dead") == "failed"
    assert "resume" in store.reason("dead")


def test_scheduler_dispatches_the_cells_others_wait_for_first(tmp_path):
    from suite.launch import Scheduler

    cells = expand("table3", "smoke", require_roots=False)
    voc = [c for c in cells if c.config["dataset"] == "voc2012"]
    student = next(c for c in voc if c.row == "student")
    teacher = next(c for c in voc if c.row == "teacher")
    kd = next(c for c in voc if c.row == "kd")
    sched = Scheduler([student, kd, teacher], Store(tmp_path), echo=lambda line: None)
    assert [c.row for c in sched.ready()] == ["teacher", "student"]  # kd waits for its teacher
