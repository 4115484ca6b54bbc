"""Profiles: how big a cell is (smoke = synthetic CPU minutes; paper = the paper's schedule).

Profiles live in ``experiments/profiles``; folders listed in ``SUITE_PROFILES`` (and, for
tables, ``SUITE_TABLES``) are searched first, so a lab can keep its own without editing the suite.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from suite.errors import SpecError, SuiteError

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
PROFILE_DIR = EXPERIMENTS / "profiles"


def search_dirs(builtin: Path, env: str) -> list[Path]:
    """``builtin`` plus the folders in the ``os.pathsep``-separated environment variable ``env``."""
    extra = [Path(p) for p in os.environ.get(env, "").split(os.pathsep) if p]
    return [*extra, builtin]


def find_yaml(builtin: Path, env: str, name: str) -> Path | None:
    for folder in search_dirs(builtin, env):
        path = folder / f"{name}.yaml"
        if path.is_file():
            return path
    return None


def yaml_names(builtin: Path, env: str) -> list[str]:
    return sorted({p.stem for d in search_dirs(builtin, env) for p in d.glob("*.yaml")})


def profile_names() -> list[str]:
    return yaml_names(PROFILE_DIR, "SUITE_PROFILES")


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated recursively with ``over`` (new dict; inputs untouched)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_profile(name: str) -> dict[str, Any]:
    path = find_yaml(PROFILE_DIR, "SUITE_PROFILES", name)
    if path is None:
        raise SuiteError(f"unknown profile {name!r}; valid: {', '.join(profile_names())}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"malformed profile {path}: {exc}") from exc
    required = {"name", "data", "width", "crop", "schedule", "optimizer"}
    if not isinstance(data, dict) or not required <= set(data):
        raise SpecError(f"malformed profile {path}: needs keys {sorted(required)}")
    check_synthetic(data, path)
    return data


# what a ``synthetic:`` section may set: image counts, size, augmented copies (VOC's), and the
# seed of the draw (another seed: other images of the same dataset, e.g. for a pretrain cell)
SYNTHETIC_KEYS = frozenset({"num_train", "num_val", "size", "num_aug", "seed"})


def check_synthetic(profile: dict[str, Any], path: Path | str) -> None:
    """Raise :class:`SpecError` for an unknown key in any ``synthetic:`` section of a profile
    (top level, ``pretrain``, ``datasets.<name>``)."""
    sections = {"synthetic": profile.get("synthetic"),
                "pretrain.synthetic": (profile.get("pretrain") or {}).get("synthetic")}
    for name, over in (profile.get("datasets") or {}).items():
        sections[f"datasets.{name}.synthetic"] = (over or {}).get("synthetic")
    for where, section in sections.items():
        unknown = sorted(set(section or {}) - SYNTHETIC_KEYS)
        if unknown:
            raise SpecError(f"profile {path}: {where} has unknown keys {unknown}; valid: "
                            f"{', '.join(sorted(SYNTHETIC_KEYS))}")


def for_dataset(profile: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The profile with its per-dataset overrides (``datasets: {name: {...}}``) applied."""
    over = profile.get("datasets", {}).get(dataset, {})
    merged = deep_merge({k: v for k, v in profile.items() if k != "datasets"}, over)
    return merged


def data_root(profile: dict[str, Any], dataset: str, overrides: dict[str, str]) -> str:
    """Root of a real dataset: ``--data-root`` > ``SUITE_DATA_<NAME>`` > the profile's ``data_roots``."""
    root = (
        overrides.get(dataset)
        or os.environ.get(f"SUITE_DATA_{dataset.upper()}")
        or (profile.get("data_roots") or {}).get(dataset)
    )
    if not root:
        raise SuiteError(
            f"profile {profile['name']!r} needs the {dataset} dataset: pass --data-root "
            f"{dataset}=PATH or set SUITE_DATA_{dataset.upper()}"
        )
    if not Path(root).is_dir():
        raise SuiteError(f"dataset root for {dataset} does not exist: {root}")
    return str(root)
