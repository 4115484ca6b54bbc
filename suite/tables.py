"""Table specs (``experiments/tables/*.yaml``) and their expansion into cells.

A spec holds blocks (:mod:`suite.blocks`; the flat form is one block), each naming datasets, a
teacher, its students and rows (``row``, optional ``method`` and ``options``, descriptive
``columns``). Expanding it under a profile gives, per block, one teacher cell per dataset and
one cell per (dataset, seed, row, student); ``Cell.block`` is the block's index. A cell's id is a stable hash of its fully
resolved config, so the same training run shared by two tables (the student baseline of Tables I
and III) is one cell, and re-running a table skips what is finished.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from suite.blocks import Block, table_blocks
from suite.errors import SpecError, SuiteError
from suite.plan_checks import check_method_taps, check_method_task
from suite.profiles import (
    EXPERIMENTS,
    data_root,
    deep_merge,
    find_yaml,
    for_dataset,
    load_profile,
    yaml_names,
)
from suite.store import atomic_write_json, cache_dir, read_json

TABLE_DIR = EXPERIMENTS / "tables"
# Keys of a resolved config that say *where* things are on this machine, not *what* runs, or
# that only observe a run (``health``: the probe interval and collapse thresholds; ``fps``: the
# passes of the inference-speed measurement, suite.fps).
NOT_HASHED = ("data_root", "health", "fps")


def table_names() -> list[str]:
    return yaml_names(TABLE_DIR, "SUITE_TABLES")


@dataclass
class Cell:
    """One training run. ``config`` is everything it needs; the rest is the table's view of it."""

    id: str
    config: dict[str, Any]
    table: str
    row: str
    block: int = 0
    columns: dict[str, Any] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)

    @property
    def role(self) -> str:
        return self.config["role"]

    @property
    def label(self) -> str:
        c = self.config
        seed = f" seed {c['seed']}" if c["role"] != "teacher" else ""
        return f"{self.table}/{c['dataset']}/{self.row}{seed} [{self.id}]"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cell_id(config: dict[str, Any]) -> str:
    """Stable 12-hex-digit hash of the resolved config (canonical JSON, sorted keys)."""
    hashed = {k: v for k, v in config.items() if k not in NOT_HASHED}
    blob = json.dumps(hashed, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def load_table(name: str) -> dict[str, Any]:
    path = find_yaml(TABLE_DIR, "SUITE_TABLES", name)
    if path is None:
        raise SuiteError(f"unknown table {name!r}; valid: {', '.join(table_names())}")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"malformed table spec {path}: {exc}") from exc
    validate_table(spec, path)
    return spec


def validate_table(spec: Any, path: Path | str) -> None:
    """Raise :class:`SpecError` naming the first problem of a table spec."""
    from suite.data import DATASETS
    from suite.models import ARCHS, valid_models

    if not isinstance(spec, dict):
        raise SpecError(f"malformed table spec {path}: expected a mapping")
    for key in ("name", "task"):
        if key not in spec:
            raise SpecError(f"malformed table spec {path}: missing key {key!r}")
    from suite.families import family_of
    from suite.tasks import TASKS

    task = spec["task"]
    if task not in TASKS:
        raise SpecError(f"{path}: unknown task {task!r}; valid: {', '.join(sorted(TASKS))}")
    for block in table_blocks(spec, path):
        for model in block.models:
            if model not in ARCHS:
                raise SpecError(f"{path}: unknown model {model!r}; valid: {valid_models()}")
            model_task = getattr(family_of(model), "task", "segmentation")
            if model_task != task:
                raise SpecError(f"{path}: model {model!r} is a {model_task} model; this table's task "
                                f"is {task}")
        for ds in block.datasets:
            if ds not in DATASETS:
                raise SpecError(f"{path}: unknown dataset {ds!r}; valid: {', '.join(sorted(DATASETS))}")
            ds_task = getattr(DATASETS[ds], "task", "segmentation")
            if ds_task != task:
                raise SpecError(f"{path}: dataset {ds!r} is a {ds_task} dataset; this table's task "
                                f"is {task}")


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the suite's and baselines' Python sources: keys the cache of method records."""
    digest = hashlib.sha256()
    for package in (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent / "baselines"):
        for path in sorted(package.rglob("*.py")):
            digest.update(str(path.relative_to(package.parent)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _record_cache() -> Path:
    root = cache_dir()
    return root / "methods" / f"{code_version()}.json"


@lru_cache(maxsize=256)
def _method_record(method: str, options_json: str, task: str = "segmentation") -> str:
    """The resolved method bundle (losses, weights, taps, flags) for ``task`` as canonical JSON.

    Resolving imports torch, mmengine and every baseline (about a second), so records are kept
    on disk keyed by (method, options, task, code version): ``status`` and ``plan`` stay fast.
    """
    key = f"{method}|{options_json}" + ("" if task == "segmentation" else f"|{task}")
    cache = _record_cache()
    records = read_json(cache) or {}
    if key in records:
        return records[key]
    from suite.methods import build_method

    spec = build_method(method, json.loads(options_json), task=task)
    record = json.dumps(asdict(spec), sort_keys=True, default=str)
    try:
        atomic_write_json(cache, {**(read_json(cache) or {}), key: record})
    except OSError:
        pass  # a read-only cache only costs speed
    return record


def resolve_method(method: str, options: dict[str, Any],
                   task: str = "segmentation") -> dict[str, Any]:
    return json.loads(_method_record(method, json.dumps(options, sort_keys=True), task))


def _base_config(
    profile: dict[str, Any], dataset: str, model: str, role: str, seed: int,
    data_roots: dict[str, str], require_roots: bool = True, task: str = "segmentation",
) -> dict[str, Any]:
    p = for_dataset(profile, dataset)
    sched = p["schedule"]["teacher" if role in ("teacher", "pretrain") else "student"]
    if p["data"] == "synthetic":
        data: dict[str, Any] = {"source": "synthetic", **p.get("synthetic", {})}
        root = None
    else:
        data = {"source": "real"}
        root = data_root(p, dataset, data_roots) if require_roots else data_roots.get(dataset)
    cfg = {
        "task": task,
        "role": role,
        "dataset": dataset,
        "model": model,
        "profile": p["name"],
        "width": p["width"],
        "norm": p.get("norm", "BN"),
        "crop": list(p["crop"]),
        "iters": sched["iters"],
        "batch_size": sched["batch_size"],
        "optimizer": p["optimizer"],
        "checkpoint": p.get("checkpoint", {"interval": 1000, "keep": 1}),
        "eval": p.get("eval", {"checkpoint": "last"}),
        "device": p.get("device", "auto"),
        "num_workers": int(p.get("num_workers", 0)),
        "pretrained": (p.get("pretrained") or {}).get(model),
        "data": data,
        "data_root": root,
        "seed": seed,
        "health": p.get("health"),
        **({"fps": p["fps"]} if "fps" in p else {}),  # absent: suite.fps's defaults
    }
    if task != "segmentation":  # the task's profile section, per model family: ``detection:
        from suite.families import family_of  # {cascade_mask_rcnn: {sampled_rois: 64}, ...}``

        cfg[task] = dict((p.get(task) or {}).get(family_of(model).name) or {})
    return cfg


def pretrain_task(prof: dict[str, Any]) -> str | None:
    """The task of the profile's ``pretrain.dataset`` (None without a ``pretrain`` section)."""
    from suite.data import DATASETS

    spec = prof.get("pretrain")
    if not spec:
        return None
    dataset = DATASETS.get(spec["dataset"])
    return getattr(dataset, "task", "segmentation") if dataset is not None else None


def _pretrain_cells(prof: dict[str, Any], models: list[str], table: str, roots: dict[str, str],
                    require_roots: bool, task: str = "segmentation") -> dict[str, Cell]:
    """One ``pretrain`` cell per architecture when the profile has a ``pretrain`` section.

    The stand-in for ImageNet pre-training on synthetic data: the architecture is trained on
    another dataset (another label space: ``pretrain.dataset``) and the teacher and student
    cells of every table start their backbones from it. Seed 0 always, so every method and
    seed of a table starts from the same weights. A file in the profile's ``pretrained`` wins.
    """
    spec = prof.get("pretrain")
    if not spec:
        return {}
    dataset = spec["dataset"]
    own = {"schedule": {"teacher": dict(spec.get("schedule", {}))},
           "synthetic": dict(spec.get("synthetic", {}))}
    # the pretrain's values win over the profile's section for that dataset too (a table may
    # also train on the pretrain dataset, with its own schedule and data there)
    view = deep_merge(prof, {**own, "datasets": {dataset: own}})
    view.pop("pretrain", None)
    out = {}
    for model in models:
        if (prof.get("pretrained") or {}).get(model):
            continue
        cfg = _base_config(view, dataset, model, "pretrain", 0, roots, require_roots, task=task)
        out[model] = Cell(cell_id(cfg), cfg, table, "pretrain")
    return out


def expand(
    table: str,
    profile: str = "smoke",
    seeds: int = 1,
    data_roots: dict[str, str] | None = None,
    teacher_checkpoints: dict[str, str] | None = None,
    require_roots: bool = True,
) -> list[Cell]:
    """All cells of ``table`` under ``profile``: teachers first, then students and methods.

    A cell that two blocks share (the same resolved config) is listed once, in the first block.
    """
    spec = load_table(table)
    prof = load_profile(profile)
    if seeds < 1:
        raise SuiteError(f"--seeds must be >= 1, got {seeds}")
    blocks = table_blocks(spec)
    plan = _Expansion(table, prof, dict(data_roots or {}), require_roots,
                      {**(prof.get("teacher_checkpoints") or {}), **(teacher_checkpoints or {})},
                      task=spec["task"])
    # the pretrain stand-in trains each architecture on the profile's pretrain dataset: only
    # where that dataset is of the table's task (the signal profile's ADE20K trains segmentors;
    # a detection table under it starts from scratch)
    if pretrain_task(prof) == spec["task"]:
        plan.pretrain([m for b in blocks for m in b.models])
    for block in blocks:
        for dataset in block.datasets:
            teachers = {model: plan.teacher(block, dataset, model) for model in block.teachers}
            for seed in range(seeds):
                for row in block.rows:
                    for student in block.row_students(row):
                        plan.student(block, dataset, seed, row, student,
                                     teachers[block.row_teacher(row)])
    return plan.cells()


class _Expansion:
    """The cells of one table as they are planned: pretrain, teacher, student and method cells."""

    def __init__(self, table: str, prof: dict[str, Any], roots: dict[str, str],
                 require_roots: bool, ckpts: dict[str, str], task: str = "segmentation") -> None:
        self.table, self.prof, self.roots, self.require_roots = table, prof, roots, require_roots
        self.task = task
        self.ckpts = ckpts
        self.pre: dict[str, Cell] = {}
        self.teachers: list[Cell] = []
        self.others: list[Cell] = []
        self.seen: set[str] = set()

    def pretrain(self, models: list[str]) -> None:
        self.pre = _pretrain_cells(self.prof, list(dict.fromkeys(models)), self.table, self.roots,
                                   self.require_roots, task=self.task)
        self.teachers.extend(self.pre.values())
        self.seen.update(c.id for c in self.pre.values())

    def _config(self, dataset: str, model: str, role: str, seed: int) -> dict[str, Any]:
        return _base_config(self.prof, dataset, model, role, seed, self.roots, self.require_roots,
                            task=self.task)

    def _init_from(self, cfg: dict[str, Any], model: str) -> list[str]:
        if model not in self.pre:
            return []
        cfg["pretrain"] = {"cell": self.pre[model].id, "dataset": self.pre[model].config["dataset"]}
        return [self.pre[model].id]

    def _add(self, into: list[Cell], cell: Cell) -> Cell:
        if cell.id not in self.seen:
            self.seen.add(cell.id)
            into.append(cell)
        return cell

    def teacher(self, block: Block, dataset: str, model: str) -> Cell:
        """The teacher cell of ``model``: row ``teacher`` for the block's own teacher,
        ``teacher_<model>`` for a row's own (:mod:`suite.blocks`)."""
        row = "teacher" if model == block.teacher else f"teacher_{model}"
        tcfg = self._config(dataset, model, "teacher", 0)
        ckpt = self.ckpts.get(f"{dataset}/{model}")
        tdeps = [] if ckpt else self._init_from(tcfg, model)
        if ckpt:
            if not Path(ckpt).is_file():
                raise SuiteError(f"teacher checkpoint for {dataset}/{model} not found: {ckpt}")
            tcfg["import_checkpoint"] = str(Path(ckpt).resolve())
        return self._add(self.teachers, Cell(cell_id(tcfg), tcfg, self.table, row,
                                             block=block.index, depends_on=tdeps))

    def student(self, block: Block, dataset: str, seed: int, row: dict[str, Any], student: str,
                teacher: Cell) -> None:
        method = row.get("method")
        name = block.row_name(row, student)
        cfg = self._config(dataset, student, "distill" if method else "student", seed)
        deps: list[str] = self._init_from(cfg, student)
        if method:
            options = row.get("options") or {}
            try:
                check_method_task(method, cfg["task"], f"table {self.table} row {name!r}")
                cfg["method"] = resolve_method(method, options, cfg["task"])
            except (KeyError, ValueError, TypeError) as exc:
                raise SpecError(f"table {self.table} row {name!r}: {exc}") from exc
            check_method_taps(cfg["method"], student, teacher.config["model"],
                              f"table {self.table} row {name!r}")
            cfg["method_name"] = method
            cfg["method_options"] = options
            cfg["teacher"] = {"model": teacher.config["model"], "cell": teacher.id}
            deps.append(teacher.id)
        self._add(self.others, Cell(cell_id(cfg), cfg, self.table, name, block=block.index,
                                    columns=row.get("columns") or {}, depends_on=deps))

    def cells(self) -> list[Cell]:
        return self.teachers + self.others


def select(cells: list[Cell], only: list[str]) -> list[Cell]:
    """Cells matching every ``key=value[,value...]`` filter, plus the teachers they depend on.

    Keys: row, method, dataset, role, seed, model, id.
    """
    if not only:
        return cells
    filters: list[tuple[str, set[str]]] = []
    for item in only:
        if "=" not in item:
            raise SuiteError(f"--only expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        valid = {"row", "method", "dataset", "role", "seed", "model", "id"}
        if key not in valid:
            raise SuiteError(f"--only: unknown key {key!r}; valid: {', '.join(sorted(valid))}")
        filters.append((key, set(value.split(","))))

    def attr(cell: Cell, key: str) -> str:
        if key == "row":
            return cell.row
        if key == "id":
            return cell.id
        if key == "method":
            return str(cell.config.get("method_name", "none"))
        return str(cell.config.get(key))

    chosen = [c for c in cells if all(attr(c, k) in vals for k, vals in filters)]
    needed = {d for c in chosen for d in c.depends_on}
    ids = {c.id for c in chosen}
    return [c for c in cells if c.id in ids or c.id in needed]
