"""W&B tracking: run metadata, and a config upload that does not walk the working tree."""

from __future__ import annotations

import pytest

from suite.tracking import run_tags, vis_backends

CONFIG = {"role": "distill", "dataset": "voc2012", "model": "pspnet_r18", "seed": 0,
          "profile": "tiny", "method_name": "kd", "teacher": {"model": "pspnet_r101"}}


def test_run_metadata_groups_by_table_and_tags_the_cell(tmp_path):
    backends = vis_backends("offline", CONFIG, "abc123", "table3", "kd", 2, tmp_path)
    assert [b["type"] for b in backends] == ["LocalVisBackend", "ConfigOnlyWandbVisBackend"]
    init = backends[1]["init_kwargs"]
    assert init["group"] == "table3" and init["job_type"] == "distill" and init["mode"] == "offline"
    assert init["name"] == "table3-voc2012-kd-s0-abc123-a2"
    assert init["config"]["cell_id"] == "abc123" and init["config"]["git_sha"]
    assert "method:kd" in run_tags(CONFIG) and "teacher:pspnet_r101" in run_tags(CONFIG)
    assert vis_backends("disabled", CONFIG, "abc123", "table3", "kd", 1, tmp_path) == backends[:1]
    with pytest.raises(ValueError, match="unknown W&B mode"):
        vis_backends("sometimes", CONFIG, "abc123", "table3", "kd", 1, tmp_path)


def test_config_goes_to_wandb_without_log_code(tmp_path, monkeypatch):
    import wandb
    from mmengine.config import Config
    from mmengine.registry import VISBACKENDS

    import suite.wandb_backend  # noqa: F401  (registers the backend)

    def refuse(*args, **kwargs):
        raise AssertionError("log_code walks the whole working tree")

    monkeypatch.setattr(wandb.sdk.wandb_run.Run, "log_code", refuse)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    spec = vis_backends("offline", CONFIG, "abc123", "table3", "kd", 1, tmp_path)[1]
    backend = VISBACKENDS.build(spec)
    try:
        backend.add_config(Config({"model": {"type": "X", "depth": 18}}))
        assert wandb.run.config["model"] == {"type": "X", "depth": 18}
        assert wandb.run.config["cell_id"] == "abc123"
    finally:
        backend.close()
    assert list((tmp_path / "wandb").rglob("offline-run-*"))
