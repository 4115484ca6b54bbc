"""Distillation health: gradient norms per loss term, prediction entropy, majority-class share,
feature spread, and a collapse verdict.

Every ``interval`` iterations (and at the first and the last) :class:`DistillHealthHook` re-runs
the loss on the current batch, in training mode, without touching the run: no optimizer step, no
``.grad`` written, BatchNorm statistics, loss memories and the RNG restored afterwards, loss
modules in eval mode (an SKD critic takes no inner step). It measures

* ``grad_norm.<term>``: ‖∂L_k/∂θ_S‖₂ of each loss term (task terms such as ``decode.loss_ce``
  and distillation terms ``distill.<name>``, with their weights) over the student's trainable
  parameters θ_S only (teacher, connectors and critics excluded), plus ``grad_norm.task`` and
  ``grad_norm.distill``, the norms of the summed task and distillation gradients;
* ``entropy``: mean per-pixel entropy of the student's softmax prediction (nats, at most log C);
* ``majority_share`` / ``majority_class``: the share of pixels whose argmax is the most
  frequent predicted class;
* ``feature_std.stageK``: the spread of each recorded backbone stage across pixels and images.

Under DDP only rank 0 probes, on its own share of the batch, with its SyncBN layers
normalising that share alone (:func:`probe_locally`: no collective the other ranks would have
to join). It writes one line per probe to the cell's log (``train.log``) and the same numbers as
``health/...`` scalars to the visualizer (W&B and the local scalars file). After the final
evaluation it combines the last probe with the validation prediction share of
:class:`suite.metrics.PerClassIoUMetric` into a verdict (:func:`verdict`): a result is
*collapsed* when more than ``majority_threshold`` of the validation pixels are predicted as one
class, or when a stage's feature spread at the last probe is below ``min_feature_std``.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from torch import Tensor, nn

HISTORY_KEY = "health.history"  # message-hub key: the probes survive a resume from a checkpoint

# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class HealthConfig:
    """The profile's ``health`` key: probe interval and the two collapse thresholds."""

    interval: int = 25
    majority_threshold: float = 0.98
    min_feature_std: float = 1e-3

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> HealthConfig:
        """Defaults for absent keys; unknown keys are an error."""
        values = dict(values or {})
        unknown = set(values) - {"interval", "majority_threshold", "min_feature_std"}
        if unknown:
            raise ValueError(f"unknown health setting(s) {sorted(unknown)}; valid: interval, "
                             "majority_threshold, min_feature_std")
        cfg = cls(**values)
        if int(cfg.interval) < 1:
            raise ValueError(f"health interval must be >= 1, got {cfg.interval}")
        return cls(int(cfg.interval), float(cfg.majority_threshold), float(cfg.min_feature_std))


# ----------------------------------------------------------------------------- the measures


def is_loss_term(key: str) -> bool:
    """mmseg's convention (``BaseModel.parse_losses``): a loss term's key contains ``loss``."""
    return "loss" in key


def _total(value: Tensor | Sequence[Tensor]) -> Tensor:
    return sum(value) if isinstance(value, (list, tuple)) else value  # type: ignore[return-value]


def _norm(grads: Sequence[Tensor]) -> float:
    """‖g‖₂ over a list of per-parameter gradients: sqrt(Σ_p ‖g_p‖²)."""
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float())
                                                       for g in grads])))


def _gradient(loss: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
    """∂loss/∂p for every p (zeros where the loss does not depend on p); ``.grad`` untouched."""
    if not loss.requires_grad:
        return [torch.zeros_like(p) for p in params]
    grads = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def grad_norms(losses: Mapping[str, Tensor | Sequence[Tensor]],
               params: Sequence[Tensor]) -> dict[str, float]:
    """Gradient norm of each loss term over ``params``, plus the summed task and distill terms.

    For every term L_k (keys with ``loss``): ``g_k = ‖∂L_k/∂θ‖₂ = sqrt(Σ_p ‖∂L_k/∂p‖²)``.
    ``task`` is ‖Σ_{k task} ∂L_k/∂θ‖₂ over the terms not named ``distill.*``, and ``distill`` the
    same over the ``distill.*`` terms (present only when there is one). A term that does not
    depend on θ has norm 0. No ``.grad`` is written (``torch.autograd.grad``).
    """
    params = list(params)
    out: dict[str, float] = {}
    sums: dict[str, list[Tensor]] = {}
    for key, value in losses.items():
        if not is_loss_term(key):
            continue
        grads = _gradient(_total(value), params)
        out[key] = _norm(grads)
        group = "distill" if key.startswith("distill.") else "task"
        if group in sums:
            sums[group] = [a + b for a, b in zip(sums[group], grads)]
        else:
            sums[group] = grads
    totals = {group: _norm(sums[group]) for group in ("task", "distill") if group in sums}
    return {**totals, **out}


def prediction_entropy(logits: Tensor) -> float:
    """Mean per-pixel entropy of the softmax prediction, in nats.

    ``H = (1 / NHW) Σ_{n,h,w} −Σ_c p_{nchw} log p_{nchw}`` with ``p = softmax_c(z)`` over the
    class dimension 1 of ``logits`` (N, C, H, W); ``0 ≤ H ≤ log C``. 0 means every pixel is
    predicted with certainty, log C a uniform guess.
    """
    logp = F.log_softmax(logits.detach().float(), dim=1)
    return float(-(logp.exp() * logp).sum(dim=1).mean())


def majority_share(logits: Tensor) -> tuple[float, int]:
    """The share of pixels predicted as the most frequent predicted class, and that class.

    ``s = max_c |{(n, h, w) : argmax_k z_{nkhw} = c}| / NHW`` for ``logits`` (N, C, H, W).
    """
    pred = logits.detach().argmax(dim=1).flatten()
    counts = torch.bincount(pred, minlength=logits.shape[1])
    cls = int(counts.argmax())
    return float(counts[cls]) / max(1, pred.numel()), cls


def feature_std(feature: Tensor) -> float:
    """Spread of a feature map across pixels and images, averaged over channels.

    ``σ = (1 / C) Σ_c sqrt(Var_{n,h,w} F_{nchw})`` (population variance) for ``feature``
    (N, C, H, W) or (N, C). A feature that no longer depends on the input (a collapsed stage, or
    a stage whose ReLUs all died) has ``σ = 0``. NaN with fewer than two positions.
    """
    x = feature.detach().float().transpose(0, 1).flatten(1)  # C x (N H W)
    if x.shape[1] < 2:
        return math.nan
    return float(x.std(dim=1, unbiased=False).mean())


def stage_stds(features: Sequence[Tensor]) -> dict[str, float]:
    """``{"stage1": σ_1, ...}`` of the recorded stages, in order (:func:`feature_std`)."""
    return {f"stage{i + 1}": feature_std(f) for i, f in enumerate(features)}


# ----------------------------------------------------------------------------- the verdict


def probe_collapsed(probe: Mapping[str, Any], cfg: HealthConfig) -> bool:
    """Whether one probe shows a collapse: majority share above the threshold, or a stage whose
    feature spread is below ``min_feature_std``."""
    share = probe.get("majority_share")
    if share is not None and share > cfg.majority_threshold:
        return True
    return bool(dead_stages(probe, cfg))


def dead_stages(probe: Mapping[str, Any], cfg: HealthConfig) -> dict[str, float]:
    """The stages of a probe whose feature spread is below ``min_feature_std`` (NaN is not)."""
    stds = probe.get("feature_std") or {}
    return {k: v for k, v in stds.items() if v is not None and v < cfg.min_feature_std}


def since_iter(history: Sequence[Mapping[str, Any]], cfg: HealthConfig) -> int | None:
    """The first probed iteration from which every later probe showed a collapse, or None when
    the last probe did not (or there is none)."""
    first = None
    for probe in history:
        if probe_collapsed(probe, cfg):
            first = probe["iter"] if first is None else first
        else:
            first = None
    return first


def verdict(history: Sequence[Mapping[str, Any]], val_share: float | None,
            val_class: str | int | None, cfg: HealthConfig) -> dict[str, Any]:
    """The ``health`` record of a result.

    ``collapsed`` when the validation majority share exceeds ``majority_threshold`` or a stage's
    feature spread at the last training probe is below ``min_feature_std``; ``since_iter``
    (:func:`since_iter`), ``reason`` (one sentence), the validation share and class, the
    thresholds, the last probe and every probe (``history``).
    """
    reasons = []
    if val_share is not None and math.isfinite(val_share) and val_share > cfg.majority_threshold:
        reasons.append(f"majority class {val_class!r} on {100 * val_share:.1f}% of val pixels")
    last = dict(history[-1]) if history else {}
    dead = dead_stages(last, cfg)
    if dead:
        stages = ", ".join(f"{k} {v:.1e}" for k, v in dead.items())
        reasons.append(f"feature std below {cfg.min_feature_std:g} at iter {last['iter']} "
                       f"({stages})")
    collapsed = bool(reasons)
    return {
        "collapsed": collapsed,
        "since_iter": since_iter(history, cfg) if collapsed else None,
        "reason": "; ".join(reasons),
        "diagnosis": diagnosis(last),
        "val_majority_share": None if val_share is None else round(float(val_share), 6),
        "val_majority_class": val_class,
        "thresholds": {"majority_threshold": cfg.majority_threshold,
                       "min_feature_std": cfg.min_feature_std},
        "interval": cfg.interval,
        "last": last,
        "history": [dict(p) for p in history],
    }


def diagnosis(probe_rec: Mapping[str, Any]) -> str:
    """What the last probe says about the cause, in one clause: ``at iter 120: entropy 0.02 of
    3.04 nats; grad norm distill 8.1 vs task 0.3 (27x)`` (empty without a probe).

    A distill/task gradient-norm ratio far above 1 says the distillation terms drive the
    student; a near-zero entropy with a near-zero task gradient, that the student saturated.
    """
    if not probe_rec:
        return ""
    parts = []
    if "entropy" in probe_rec:
        parts.append(f"entropy {probe_rec['entropy']:.2f} of {probe_rec.get('entropy_max', 0):.2f}"
                     " nats")
    norms = probe_rec.get("grad_norm") or {}
    task, dist = norms.get("task"), norms.get("distill")
    if task is not None and dist is not None:
        ratio = f" ({dist / task:.3g}x)" if task > 0 else ""
        parts.append(f"grad norm distill {dist:.3g} vs task {task:.3g}{ratio}")
    elif task is not None:
        parts.append(f"grad norm task {task:.3g}")
    return f"at iter {probe_rec.get('iter')}: " + "; ".join(parts) if parts else ""


def note(health: Mapping[str, Any] | None) -> str:
    """One line for reports and ``suite status``: ``collapsed: <reason> since iter K``."""
    if not health or not health.get("collapsed"):
        return ""
    since = health.get("since_iter")
    text = f"collapsed: {health.get('reason') or 'no reason recorded'}" + (
        f" since iter {since}" if since is not None else "")
    return text + (f" ({health['diagnosis']})" if health.get("diagnosis") else "")


# ----------------------------------------------------------------------------- the probe


def segmentor(model: nn.Module) -> nn.Module:
    """The student network: a DistillationModel's ``student``, else the model itself."""
    model = getattr(model, "module", model)
    return getattr(model, "student", model)


def student_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable parameters of the student network alone (no teacher, connector, critic)."""
    return [p for p in segmentor(model).parameters() if p.requires_grad]


@contextlib.contextmanager
def no_trace(model: nn.Module) -> Iterator[None]:
    """Run a probe that leaves no trace on ``model``: every buffer (BatchNorm running statistics
    and ``num_batches_tracked``, loss memories) and the RNG state are restored, and the
    distillation loss modules run in eval mode (no inner critic step, no memory update)."""
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    losses = getattr(model, "distill_losses", None)
    modes = [(m, m.training) for m in losses.modules()] if losses is not None else []
    devices = sorted({b.device.index for b, _ in buffers if b.device.type == "cuda"})
    if losses is not None:
        losses.eval()
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        with torch.no_grad():
            for buf, saved in buffers:
                buf.copy_(saved)
        for module, mode in modes:
            module.training = mode


@contextlib.contextmanager
def recording(net: nn.Module, names: Sequence[str]) -> Iterator[dict[str, Tensor]]:
    """Forward hooks on the named submodules of ``net`` (absent names are skipped; ``name[i]``
    records the i-th map of a tuple output): yields the dict their outputs are written to; the
    hooks are removed on exit."""
    from suite.distill.recorders import parse_tap

    modules = dict(net.named_modules())
    out: dict[str, Tensor] = {}
    handles = []
    for name in dict.fromkeys(names):
        module, index = parse_tap(name)  # ``backbone[2]``: the third map of a tuple output
        if module in modules:
            handles.append(modules[module].register_forward_hook(
                lambda _m, _i, o, name=name, index=index: out.__setitem__(
                    name, o if index is None or not isinstance(o, (tuple, list)) else o[index])))
    try:
        yield out
    finally:
        for h in handles:
            h.remove()


def probe(model: nn.Module, data: Mapping[str, Any], stages: Sequence[str],
          logits: str | None) -> dict[str, Any]:
    """Re-run ``model.loss`` on a preprocessed batch and measure it (see the module docstring).

    ``model`` is a segmentor or a DistillationModel (unwrapped); ``data`` the output of its data
    preprocessor (``inputs``, ``data_samples``); ``stages`` and ``logits`` module names in the
    student network (``suite.models.taps``). Leaves no trace on the model (:func:`no_trace`).
    """
    net = segmentor(model)
    params = student_parameters(model)
    was_training = model.training
    step_times = copy.deepcopy(getattr(model, "step_times", None))  # a probe is not a step
    step_calls = getattr(model, "step_calls", None)
    model.train()
    try:
        with no_trace(model), recording(net, [*stages, *([logits] if logits else [])]) as rec, torch.enable_grad():
            losses = model.loss(data["inputs"], data["data_samples"])
            norms = grad_norms(losses, params)
            del losses
    finally:
        model.train(was_training)
        if step_times is not None:
            model.step_times, model.step_calls = step_times, step_calls
    out: dict[str, Any] = {"grad_norm": norms}
    z = rec.get(logits) if logits else None  # a detector has no per-pixel logits
    if isinstance(z, Tensor):
        out["entropy"] = prediction_entropy(z)
        out["entropy_max"] = math.log(z.shape[1])
        out["majority_share"], out["majority_class"] = majority_share(z)
    feats = [rec[s] for s in stages if isinstance(rec.get(s), Tensor)]
    out["feature_std"] = stage_stds(feats)
    return out


def probe_locally(model: nn.Module) -> contextlib.AbstractContextManager[None]:
    """Under DDP the probe is rank 0's alone: its SyncBN layers normalise rank 0's batch by
    itself (no collective, which the other ranks would never join), and nothing else in the
    probe communicates (the unwrapped model, ``torch.autograd.grad``: DDP's gradient hooks do
    not fire). So the probe measures rank 0's share of the global batch."""
    from suite.syncbn import local_batchnorm

    return local_batchnorm(model)


def scalars(probe_rec: Mapping[str, Any]) -> dict[str, float]:
    """The W&B / visualizer scalars of a probe: ``health/grad_norm.<term>``, ``health/entropy``,
    ``health/majority_share``, ``health/feature_std.stageK``, and ``health/iter`` (mmengine's
    W&B backend logs without a step: plot the health keys against it)."""
    out = {"health/iter": probe_rec.get("iter")}
    out.update({f"health/grad_norm.{k}": v for k, v in probe_rec.get("grad_norm", {}).items()})
    for key in ("entropy", "majority_share"):
        if key in probe_rec:
            out[f"health/{key}"] = probe_rec[key]
    out.update({f"health/feature_std.{k}": v for k, v in probe_rec.get("feature_std", {}).items()})
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(v)}


def log_line(probe_rec: Mapping[str, Any], max_iters: int) -> str:
    """``health iter 25/120: grad_norm task 1.2 decode.loss_ce 1.1 ... | entropy 1.52 nats
    (max 3.04) | majority 41.3% (class 0) | feature_std stage1 0.52 ...``."""
    norms = " ".join(f"{k} {v:.3g}" for k, v in probe_rec.get("grad_norm", {}).items())
    parts = [f"grad_norm {norms or '-'}"]
    if "entropy" in probe_rec:
        parts.append(f"entropy {probe_rec['entropy']:.3f} nats "
                     f"(max {probe_rec.get('entropy_max', math.nan):.3f})")
    if "majority_share" in probe_rec:
        parts.append(f"majority {100 * probe_rec['majority_share']:.1f}% "
                     f"(class {probe_rec.get('majority_class')})")
    stds = " ".join(f"{k} {v:.3g}" for k, v in probe_rec.get("feature_std", {}).items())
    if stds:
        parts.append(f"feature_std {stds}")
    return f"health iter {probe_rec['iter']}/{max_iters}: " + " | ".join(parts)


# ----------------------------------------------------------------------------- the hook


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return value if not math.isfinite(value) else float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


@HOOKS.register_module()
class DistillHealthHook(Hook):
    """Probe the student's health during training; the verdict after the final evaluation.

    Args:
        interval: probe every ``interval`` iterations (1-based), plus the first and the last.
        majority_threshold / min_feature_std: the collapse thresholds (:class:`HealthConfig`).
        stages / logits: module names of the student's backbone stages and logits
            (``suite.models.taps(name)["stages"]`` and ``["logits"]``; no logits: a detector).
    """

    priority = "NORMAL"  # after the optimizer step, before the checkpoint of the same iteration

    def __init__(self, interval: int = 25, majority_threshold: float = 0.98,
                 min_feature_std: float = 1e-3, stages: Sequence[str] = (),
                 logits: str | None = None) -> None:
        self.cfg = HealthConfig.from_dict(dict(interval=interval,
                                               majority_threshold=majority_threshold,
                                               min_feature_std=min_feature_std))
        self.stages = list(stages)
        self.logits = logits
        self.history: list[dict[str, Any]] = []
        self.record: dict[str, Any] | None = None

    def due(self, iteration: int, max_iters: int) -> bool:
        """Whether the 1-based ``iteration`` is probed: the first, every interval-th, the last."""
        return iteration == 1 or iteration % self.cfg.interval == 0 or iteration == max_iters

    def before_train(self, runner: Any) -> None:
        """Probes of an earlier attempt up to the resumed iteration (kept in the checkpoint)."""
        saved = runner.message_hub.get_info(HISTORY_KEY) or []
        self.history = [dict(p) for p in saved if p.get("iter", 0) <= runner.iter]

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:
        iteration = runner.iter + 1
        if data_batch is None or not self.due(iteration, runner.max_iters):
            return
        if getattr(runner, "rank", 0) != 0:  # under DDP rank 0 probes alone (probe_locally)
            return
        model = getattr(runner.model, "module", runner.model)
        try:
            data = model.data_preprocessor(data_batch, True)
            with probe_locally(model):
                measured = probe(model, data, self.stages, self.logits)
        except Exception as exc:  # noqa: BLE001 - a diagnostic never stops training
            runner.logger.warning(f"health iter {iteration}/{runner.max_iters}: probe failed: "
                                  f"{type(exc).__name__}: {exc}")
            return
        rec = _round({"iter": iteration, **measured})
        self.history.append(rec)
        runner.message_hub.update_info(HISTORY_KEY, list(self.history))
        line = log_line(rec, runner.max_iters)
        if probe_collapsed(rec, self.cfg):
            runner.logger.warning(line + " | looks collapsed")
        else:
            runner.logger.info(line)
        runner.visualizer.add_scalars(scalars(rec), step=iteration)

    def after_val_epoch(self, runner: Any, metrics: dict | None = None) -> None:
        """The verdict from the probes and the validation's majority share; into the W&B
        summary as ``health.collapsed``, ``health.since_iter``, ``health.val_majority_share``."""
        metrics = metrics or {}
        share = metrics.get("majority.share")
        index = metrics.get("majority.class")
        name: str | int | None = None
        if index is not None:
            classes = _class_names(runner)
            name = classes[int(index)] if int(index) < len(classes) else int(index)
        self.record = verdict(self.history, None if share is None else float(share), name,
                              self.cfg)
        if self.record["collapsed"]:
            runner.logger.warning(f"health: {note(self.record)}")
        from suite.tracking import summarise_run

        summarise_run({"health.collapsed": int(self.record["collapsed"]),
                       "health.since_iter": self.record["since_iter"],
                       "health.reason": self.record["reason"],
                       "health.diagnosis": self.record["diagnosis"],
                       "health.val_majority_share": self.record["val_majority_share"]})

    def config(self) -> dict[str, Any]:
        """The settings in effect (for the result record)."""
        return asdict(self.cfg)


def _class_names(runner: Any) -> list[str]:
    """The validation dataset's class names (empty when unknown)."""
    try:
        meta = runner.val_dataloader.dataset.metainfo
    except Exception:  # noqa: BLE001 - only a nicer name is lost
        return []
    return list(meta.get("classes") or [])


def find_hook(runner: Any) -> DistillHealthHook | None:
    """The runner's :class:`DistillHealthHook`, if it has one."""
    return next((h for h in runner.hooks if isinstance(h, DistillHealthHook)), None)


def result_record(runner: Any) -> dict[str, Any] | None:
    """The ``health`` record of a cell's result: the hook's verdict, or None without one."""
    hook = find_hook(runner)
    return hook.record if hook is not None else None


def hook_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The DistillHealthHook entry of a cell's ``custom_hooks``: the cell's ``health`` settings
    (the profile's key; defaults when absent) and its student's stage and logits modules."""
    from suite.models import taps

    cfg = HealthConfig.from_dict(config.get("health"))
    student = taps(config["model"])
    stages = student.get("stages", [])
    return dict(type="DistillHealthHook", interval=cfg.interval,
                majority_threshold=cfg.majority_threshold, min_feature_std=cfg.min_feature_std,
                stages=[stages] if isinstance(stages, str) else list(stages),
                logits=student.get("logits"))  # None for a detector: no entropy or majority
