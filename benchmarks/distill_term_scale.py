"""Scale of each distillation term at initialisation, next to the task loss.

For one distillation cell of a table (its trained teacher must be in the results folder), builds
the cell's model exactly as training does (mmengine Runner, weight init, the teacher loaded),
takes a few training batches and prints, per loss term: its weighted value, the norm of its
gradient with respect to the student's parameters, and both as a ratio to the task loss's
(``decode.loss_ce`` + ``aux.loss_ce``). For BCD it adds what the terms see: the teacher's
relation rows (entropy / log HW: 1 = uniform, 0 = one-hot) and boundary distributions (the same
for the spatial softmax of each offset map).

This is how the reconstruction's reductions and temperature are checked against the principle
stated in the README (each weighted term of the order of the task loss at initialisation).

Run: ``.venv/bin/python benchmarks/distill_term_scale.py table1 --row bd+cd+wd --results DIR
[--profile smoke] [--batches 3] [--options '{"context_reduction": "item"}'] [--random-teacher]``
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import torch


def build(table: str, row: str, profile: str, results: str, options: dict):
    from mmengine.config import Config
    from mmengine.runner import Runner

    import suite.distill.hooks  # noqa: F401
    import suite.distill.model  # noqa: F401
    import suite.metrics  # noqa: F401
    from suite.store import Store
    from suite.tables import expand, resolve_method
    from suite.train import _data_root, runner_config

    cells = [c for c in expand(table, profile, require_roots=False) if c.row == row]
    if not cells:
        raise SystemExit(f"no row {row!r} in {table}")
    config = dict(cells[0].config)
    if options:
        config["method"] = resolve_method(config["method_name"],
                                          {**config.get("method_options", {}), **options})
    store = Store(results)
    cfg = runner_config(config, cells[0].id, store, _data_root(config), table, row, 1, "disabled")
    cfg["work_dir"] = "/tmp/distill_term_scale"
    runner = Runner.from_cfg(Config(cfg, format_python_code=False))
    runner.model.init_weights()
    return runner


def grad_norm(value: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
    return math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))


def normalised_entropy(p: torch.Tensor, dim: int) -> float:
    """Mean entropy of the distributions along ``dim`` divided by log(size): 1 uniform, 0 one-hot."""
    h = -(p * torch.log(p.clamp_min(1e-12))).sum(dim)
    return float(h.mean() / math.log(p.shape[dim]))


def bcd_views(model, tau: float = 1.0) -> dict[str, float]:
    from suite.methods.bcd import boundary_map

    feats_t = model.connectors["bcd_teacher"](model.recorder_t.get("stages"))
    n, c, h, w = feats_t.shape
    f = feats_t.flatten(2).transpose(1, 2)
    rel = torch.softmax(f @ f.transpose(1, 2) / (c**0.5 * tau), dim=-1)
    b = boundary_map(feats_t, 5)
    spatial = torch.softmax(b.flatten(2) / tau, dim=-1)
    return {"relation_entropy": normalised_entropy(rel, -1),
            "boundary_entropy": normalised_entropy(spatial, -1),
            "boundary_range": float(b.amax(dim=(2, 3)).mean() - b.amin(dim=(2, 3)).mean()),
            "relation_logit_range": float((f @ f.transpose(1, 2) / c**0.5).std())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table")
    ap.add_argument("--row", required=True)
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--results", required=True)
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--options", default="{}", help="JSON of method options to override")
    ap.add_argument("--random-teacher", action="store_true",
                    help="re-initialise the teacher as the Runner's init_weights() once did "
                         "(what every distillation cell saw before the teacher was protected)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    runner = build(args.table, args.row, args.profile, args.results, json.loads(args.options))
    model = runner.model
    if args.random_teacher:
        for module in model.teacher.modules():
            if hasattr(module, "_is_init"):
                module._is_init = False
        model.teacher.init_weights()
    model.train()
    params = [p for p in model.student.parameters() if p.requires_grad]
    rows = []
    for i, batch in enumerate(runner.train_dataloader):
        if i >= args.batches:
            break
        data = model.data_preprocessor(batch, True)
        losses = model(**data, mode="loss")
        task = sum(v for k, v in losses.items() if k.endswith("loss_ce"))
        row = {"task": float(task), "task_grad": grad_norm(task, params)}
        for k, v in losses.items():
            if k.startswith("distill.loss"):
                row[k] = float(v)
                row[k + ".grad"] = grad_norm(v, params)
        if hasattr(model, "connectors") and "bcd_teacher" in model.connectors:
            row.update(bcd_views(model))
        rows.append(row)
    keys = rows[0].keys()
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in keys}
    print(f"{args.table}/{args.row} ({args.profile}), {len(rows)} batches, options {args.options}")
    for k, v in mean.items():
        extra = ""
        if k.startswith("distill.loss") and not k.endswith(".grad"):
            extra = f"   x task loss: {v / mean['task']:.3g}"
        if k.endswith(".grad") and k.startswith("distill"):
            extra = f"   x task grad: {v / mean['task_grad']:.3g}"
        print(f"  {k:32s} {v:10.4g}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
