"""Pretrain cells: the stand-in for ImageNet pre-training on synthetic data."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from conftest import TINY_PROFILE
from mmengine.registry import MODELS
from mmseg.utils import register_all_modules

from suite.errors import SuiteError
from suite.report.collect import collect_cells
from suite.store import Store
from suite.tables import expand
from suite.train import backbone_init, model_config

register_all_modules(init_default_scope=True)


@pytest.fixture
def pretrain_profile(tmp_path, monkeypatch, suite_cache):
    prof = copy.deepcopy(TINY_PROFILE)
    prof["name"] = "tinypre"
    prof["pretrain"] = {"dataset": "ade20k", "schedule": {"iters": 3, "batch_size": 2},
                        "synthetic": {"num_train": 6}}
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "tinypre.yaml").write_text(yaml.safe_dump(prof))
    monkeypatch.setenv("SUITE_PROFILES", str(folder))
    return "tinypre", folder, prof


def test_pretrain_cells_one_per_architecture_and_every_cell_depends_on_its_own(pretrain_profile):
    cells = expand("table1", "tinypre", seeds=2)
    pre = {c.config["model"]: c for c in cells if c.role == "pretrain"}
    assert set(pre) == {"pspnet_r101", "pspnet_r18"}
    for c in pre.values():
        assert c.config["dataset"] == "ade20k" and c.config["seed"] == 0
        assert c.config["iters"] == 3 and c.config["data"]["num_train"] == 6
        assert not c.depends_on
    teacher = next(c for c in cells if c.role == "teacher")
    assert teacher.depends_on == [pre["pspnet_r101"].id]
    assert teacher.config["pretrain"]["cell"] == pre["pspnet_r101"].id
    for c in cells:
        if c.role in ("student", "distill"):
            assert c.config["pretrain"]["cell"] == pre["pspnet_r18"].id  # every seed, every method
            assert pre["pspnet_r18"].id in c.depends_on
        if c.role == "distill":
            assert teacher.id in c.depends_on


def test_a_profile_backbone_file_replaces_the_pretrain_cell(pretrain_profile, tmp_path):
    name, folder, prof = pretrain_profile
    ckpt = tmp_path / "r18.pth"
    ckpt.write_bytes(b"x")
    prof["pretrained"] = {"pspnet_r18": str(ckpt)}
    (folder / "tinypre.yaml").write_text(yaml.safe_dump(prof))
    cells = expand("table1", name)
    assert [c.config["model"] for c in cells if c.role == "pretrain"] == ["pspnet_r101"]
    student = next(c for c in cells if c.role == "student")
    assert "pretrain" not in student.config and student.config["pretrained"] == str(ckpt)


def test_reports_leave_pretrain_cells_out(pretrain_profile, tmp_path):
    frame = collect_cells(expand("table1", "tinypre"), tmp_path)
    assert "pretrain" not in set(frame["row"]) and len(frame) == 6


def test_student_backbone_starts_from_the_pretrain_cell_and_the_teacher_does_not(pretrain_profile,
                                                                               tmp_path):
    cells = expand("table1", "tinypre")
    store = Store(tmp_path)
    distill = next(c for c in cells if c.role == "distill")
    pre_id = distill.config["pretrain"]["cell"]
    with pytest.raises(SuiteError, match="pretrain cell"):
        backbone_init(distill.config, store)
    from suite.models import segmentor_config

    torch.manual_seed(7)
    pretrained = MODELS.build(segmentor_config("pspnet_r18", 150, TINY_PROFILE["width"]))
    store.cell_dir(pre_id).mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": pretrained.state_dict()}, store.cell_dir(pre_id) / "model.pth")
    path, prefix = backbone_init(distill.config, store)
    assert prefix == "backbone."
    cfg = model_config(distill.config, store)
    assert cfg["student"]["backbone"]["init_cfg"]["checkpoint"] == path
    assert cfg["teacher"]["backbone"]["init_cfg"] is None  # loaded from its own cell instead
    student_cfg = next(c for c in cells if c.role == "student").config
    student = MODELS.build(model_config(student_cfg, store))
    student.init_weights()  # what the Runner does before training
    want = {k[len("backbone."):]: v for k, v in pretrained.state_dict().items()
            if k.startswith("backbone.")}
    for key, value in student.backbone.state_dict().items():
        assert torch.equal(value, want[key]), key


def _profile(folder, prof):
    (folder / f"{prof['name']}.yaml").write_text(yaml.safe_dump(prof))
    return prof["name"]


def test_a_detection_table_pretrains_only_on_a_detection_dataset(pretrain_profile):
    name, folder, prof = pretrain_profile
    assert not [c for c in expand("table5", name) if c.role == "pretrain"]  # ADE20K: from scratch
    det = copy.deepcopy(prof)
    det["name"] = "tinypredet"
    det["pretrain"] = {"dataset": "coco2017", "schedule": {"iters": 5, "batch_size": 2},
                       "synthetic": {"num_train": 40, "seed": 1}}
    # the table's own section for the dataset must not override the pretrain's values
    det["datasets"] = {"coco2017": {"schedule": {"teacher": {"iters": 7, "batch_size": 2}},
                                    "synthetic": {"num_train": 10}}}
    cells = expand("table5", _profile(folder, det))
    pre = {c.config["model"]: c for c in cells if c.role == "pretrain"}
    assert set(pre) >= {"gfl_r50", "gfl_r18", "retinagfl_r101", "cascade_mask_rcnn_r50"}
    gfl = pre["gfl_r50"].config
    assert (gfl["task"], gfl["iters"], gfl["data"]["num_train"], gfl["data"]["seed"]) == \
        ("detection", 5, 40, 1)
    teacher = next(c for c in cells if c.role == "teacher" and c.config["model"] == "gfl_r50")
    assert (teacher.config["iters"], teacher.config["data"]["num_train"]) == (7, 10)
    assert teacher.config["pretrain"]["cell"] == pre["gfl_r50"].id


def test_synthetic_sections_take_a_seed_and_refuse_unknown_keys(pretrain_profile, monkeypatch):
    from suite import train
    from suite.errors import SpecError
    from suite.profiles import load_profile

    name, folder, prof = pretrain_profile
    bad = copy.deepcopy(prof)
    bad["name"] = "tinybad"
    bad["pretrain"]["synthetic"] = {"num_train": 6, "sead": 1}
    with pytest.raises(SpecError, match=r"pretrain.synthetic has unknown keys \['sead'\]; "
                                        r"valid: num_aug, num_train, num_val, seed, size"):
        load_profile(_profile(folder, bad))
    seen = {}
    monkeypatch.setattr("suite.data.ensure_dataset", lambda name, **kw: seen.update(kw) or "root")
    config = {"dataset": "coco2017", "data": {"source": "synthetic", "num_train": 4, "seed": 3}}
    train._data_root(config)
    assert seen["seed"] == 3 and seen["num_train"] == 4
    train._data_root({"dataset": "coco2017", "data": {"source": "synthetic"}})
    assert seen["seed"] == 0


def test_the_detection_signal_check_pretrains_its_detectors_on_another_draw(suite_cache):
    cells = expand("det_signal", "det_signal", seeds=3)
    pre = {c.config["model"]: c for c in cells if c.role == "pretrain"}
    assert set(pre) == {"gfl_r50", "gfl_r18"}
    assert all(c.config["data"]["seed"] == 1 and c.config["task"] == "detection"
               for c in pre.values())
    rest = [c for c in cells if c.role != "pretrain"]
    assert len(rest) == 1 + 3 * 5 and all("seed" not in c.config["data"] for c in rest)
    assert all(c.config["pretrain"]["cell"] == pre[c.config["model"]].id for c in rest)


def test_the_synthetic_keys_are_the_generators_parameters():
    import inspect

    from suite.data.generate import ensure_dataset
    from suite.profiles import SYNTHETIC_KEYS

    params = set(inspect.signature(ensure_dataset).parameters) - {"name", "cache_dir"}
    assert SYNTHETIC_KEYS == params
