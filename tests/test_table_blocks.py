"""Table blocks: several teacher/student pairs in one spec; the flat form is one block."""

from __future__ import annotations

import pytest
import yaml

from suite.blocks import table_blocks, table_datasets
from suite.errors import SpecError
from suite.tables import expand, load_table, validate_table

FLAT_ROWS = [{"row": "student"}, {"row": "kd", "method": "kd"}]


def _write(folder, name, spec):
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec))


@pytest.fixture
def tables(tmp_path, monkeypatch, suite_cache):
    monkeypatch.setenv("SUITE_TABLES", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name", ["table1", "table3", "table4"])
def test_the_paper_tables_are_one_block(name):
    blocks = table_blocks(load_table(name))
    assert len(blocks) == 1 and blocks[0].index == 0
    assert all(c.block == 0 for c in expand(name, "smoke"))


def test_flat_and_block_forms_plan_the_same_cells(tables):
    flat = {"name": "flat", "task": "segmentation", "datasets": ["voc2012", "cityscapes"],
            "teacher": "pspnet_r101", "student": "pspnet_r18", "rows": FLAT_ROWS}
    blocked = {"name": "blocked", "task": "segmentation",
               "blocks": [{"datasets": ["voc2012", "cityscapes"], "teacher": "pspnet_r101",
                           "students": ["pspnet_r18"], "rows": FLAT_ROWS}]}
    _write(tables, "flat", flat)
    _write(tables, "blocked", blocked)
    a, b = expand("flat", "smoke", seeds=2), expand("blocked", "smoke", seeds=2)
    assert [(c.id, c.row, c.block, c.depends_on) for c in a] == \
        [(c.id, c.row, c.block, c.depends_on) for c in b]


def test_blocks_have_their_own_pairs_and_students(tables):
    spec = {"name": "multi", "task": "segmentation", "blocks": [
        {"dataset": "voc2012", "teacher": "pspnet_r101", "student": "pspnet_r18", "rows": FLAT_ROWS},
        {"dataset": "coco_stuff10k", "teacher": "deeplabv3plus_r101",
         "students": ["deeplabv3plus_r18", "pspnet_r18"],
         "rows": [{"row": "{student}"}, {"row": "{student}", "method": "kd"}]},
    ]}
    _write(tables, "multi", spec)
    assert table_datasets(load_table("multi")) == ["voc2012", "coco_stuff10k"]
    cells = expand("multi", "smoke")
    teachers = [c for c in cells if c.role == "teacher"]
    assert [(c.block, c.config["model"]) for c in teachers] == \
        [(0, "pspnet_r101"), (1, "deeplabv3plus_r101")]
    second = [c for c in cells if c.block == 1 and c.role != "teacher"]
    assert sorted((c.row, c.config["model"], c.config.get("method_name", "none")) for c in second) == [
        ("deeplabv3plus_r18", "deeplabv3plus_r18", "kd"),
        ("deeplabv3plus_r18", "deeplabv3plus_r18", "none"),
        ("pspnet_r18", "pspnet_r18", "kd"),
        ("pspnet_r18", "pspnet_r18", "none"),
    ]
    kd = [c for c in second if c.role == "distill"]
    assert all(c.config["teacher"] == {"model": "deeplabv3plus_r101", "cell": teachers[1].id}
               and c.depends_on == [teachers[1].id] for c in kd)


def test_a_cell_two_blocks_share_is_planned_once(tables):
    block = {"dataset": "voc2012", "teacher": "pspnet_r101", "student": "pspnet_r18",
             "rows": [{"row": "student"}]}
    other = dict(block, teacher="pspnet_r50")
    _write(tables, "shared", {"name": "shared", "task": "segmentation", "blocks": [block, other]})
    cells = expand("shared", "smoke")
    assert len(cells) == len({c.id for c in cells}) == 3  # two teachers, one student baseline


@pytest.mark.parametrize("blocks, match", [
    ([{"dataset": "voc2012", "teacher": "pspnet_r101", "students": ["pspnet_r18", "pspnet_r50"],
       "rows": [{"row": "student"}]}], "duplicate row 'student'.*'{student}'"),
    ([{"dataset": "voc2012", "datasets": ["ade20k"], "teacher": "pspnet_r101",
       "student": "pspnet_r18", "rows": []}], "exactly one of 'dataset' or 'datasets'"),
    ([{"dataset": "voc2012", "teacher": "pspnet_r101", "student": "pspnet_r18", "rows": [],
       "colour": 1}], "unknown keys \\['colour'\\]"),
    ([{"dataset": "voc2012", "teacher": "pspnet_r101", "student": "nonet", "rows": []}],
     "unknown model 'nonet'; valid: .*pspnet_r18"),
    ([], "'blocks' must be a non-empty list"),
])
def test_malformed_blocks_are_named(blocks, match):
    with pytest.raises(SpecError, match=match):
        validate_table({"name": "x", "task": "segmentation", "blocks": blocks}, "x.yaml")


def test_blocks_and_the_flat_form_do_not_mix():
    with pytest.raises(SpecError, match="either 'blocks' or"):
        validate_table({"name": "x", "task": "segmentation", "teacher": "pspnet_r101",
                        "blocks": [{"dataset": "voc2012", "teacher": "pspnet_r101",
                                    "student": "pspnet_r18", "rows": []}]}, "x.yaml")


def test_a_row_may_run_on_its_own_teacher_and_student(tables):
    spec = {"name": "own", "task": "segmentation", "blocks": [
        {"dataset": "voc2012", "teacher": "pspnet_r101", "student": "pspnet_r18", "rows": [
            {"row": "student"}, {"row": "kd", "method": "kd"},
            {"row": "kd_dlv3", "method": "kd", "teacher": "deeplabv3plus_r101",
             "student": "deeplabv3plus_r18"},
            {"row": "student_dlv3", "student": "deeplabv3plus_r18"}]}]}
    _write(tables, "own", spec)
    block = table_blocks(load_table("own"))[0]
    assert block.teachers == ["pspnet_r101", "deeplabv3plus_r101"]
    assert block.models == ["pspnet_r101", "deeplabv3plus_r101", "pspnet_r18", "deeplabv3plus_r18"]
    cells = {c.row: c for c in expand("own", "smoke")}
    assert set(cells) == {"teacher", "teacher_deeplabv3plus_r101", "student", "kd", "kd_dlv3",
                          "student_dlv3"}
    own_teacher = cells["teacher_deeplabv3plus_r101"]
    assert own_teacher.role == "teacher" and own_teacher.config["model"] == "deeplabv3plus_r101"
    kd = cells["kd_dlv3"]
    assert kd.config["model"] == "deeplabv3plus_r18"
    assert kd.config["teacher"] == {"model": "deeplabv3plus_r101", "cell": own_teacher.id}
    assert own_teacher.id in kd.depends_on
    assert cells["kd"].config["teacher"]["model"] == "pspnet_r101"
    assert cells["student_dlv3"].config["model"] == "deeplabv3plus_r18"


@pytest.mark.parametrize("row, match", [
    ({"row": "x", "teacher": "pspnet_r50"}, "names a teacher but no method"),
    ({"row": "x", "method": "kd", "student": 3}, "'student' must be a model name"),
    ({"row": "x", "method": "kd", "teacher": "nonet"}, "unknown model 'nonet'"),
])
def test_bad_row_models_are_named(row, match):
    with pytest.raises(SpecError, match=match):
        validate_table({"name": "x", "task": "segmentation", "blocks": [
            {"dataset": "voc2012", "teacher": "pspnet_r101", "student": "pspnet_r18",
             "rows": [row]}]}, "x.yaml")
