"""DistillationModel: a frozen teacher, a student, recorders, connectors and weighted losses.

An mmengine ``BaseModel`` (registered in mmengine's root ``MODELS``, so mmseg and mmdet scopes
find it) that plays the role of MMRazor's ``SingleTeacherDistill``. ``loss()`` returns the
student's task losses plus each weighted distillation loss under ``distill.<name>``; ``predict``
and ``tensor`` modes are the student alone, so evaluation, Params and FLOPs concern the student.
"""

from __future__ import annotations

import inspect
import time
from typing import Any

import torch
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from mmengine.runner.checkpoint import load_checkpoint
from torch import Tensor, nn

from suite.distill.mappings import check_loss_inputs
from suite.distill.recorders import ModuleOutputsRecorder
from suite.errors import SuiteError
from suite.methods import build_connector, build_loss
from suite.methods.bcd import weight_decay_alpha
from suite.methods.catalog import loss_class
from suite.methods.spec import ConnectorSpec, Input, LossSpec
from suite.models import scaled_channels
from suite.tasks import get_task


class TeacherCheckpointError(SuiteError):
    """The teacher checkpoint is missing or does not match the teacher architecture."""


def load_teacher(teacher: nn.Module, path: str | None) -> None:
    """Load ``path`` into ``teacher`` strictly; a clear error when missing or mismatching."""
    if not path:
        raise TeacherCheckpointError("teacher checkpoint missing: the teacher cell has no checkpoint")
    try:
        load_checkpoint(teacher, path, map_location="cpu", strict=True, logger="silent")
    except FileNotFoundError as exc:
        raise TeacherCheckpointError(f"teacher checkpoint not found: {path}") from exc
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()
        detail = next((line for line in first if "size mismatch" in line or "key" in line.lower()), first[0] if first else "")
        raise TeacherCheckpointError(f"teacher checkpoint {path} does not match the teacher: {detail}") from exc


def _as_dataclass(value: Any, cls: type) -> Any:
    return value if isinstance(value, cls) else cls(**value)


def _channels(x: Tensor | list[Tensor]) -> int | list[int]:
    return [t.shape[1] for t in x] if isinstance(x, (list, tuple)) else x.shape[1]


def _strides(x: Tensor | list[Tensor], height: int) -> int | list[int]:
    """Stride(s) of recorded map(s) relative to an input ``height`` pixels high."""
    if isinstance(x, (list, tuple)):
        return [_strides(t, height) for t in x]
    return max(1, round(height / x.shape[-2])) if x.dim() == 4 else 1


def _connector_kwargs(kind: str, kwargs: dict[str, Any], in_strides: Any,
                      out_strides: Any) -> dict[str, Any]:
    """Add the probed strides when the connector takes them (stride-aware fusion)."""
    from suite.methods.catalog import connector_class

    params = inspect.signature(connector_class(kind)).parameters
    if "in_strides" in params and in_strides is not None:
        kwargs["in_strides"] = in_strides
    if "out_strides" in params and out_strides is not None:
        kwargs["out_strides"] = out_strides
    return kwargs


TIMED_EVERY = 10  # on CUDA, training steps per timed step (forward_ms_per_step); CPU: every step


class StepClock:
    """Forward-time laps of one distillation step (seconds; CUDA synchronised before each).

    A clock that is off does nothing: on CUDA the synchronisations would stall the device, so
    only one training step in :data:`TIMED_EVERY` is timed there (on CPU every step).
    """

    def __init__(self, cuda: bool, on: bool = True) -> None:
        self.cuda, self.on = cuda, on
        self.laps: dict[str, float] = {}
        self.last = self._now() if on else 0.0

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def lap(self, name: str) -> None:
        if not self.on:
            return
        now = self._now()
        self.laps[name] = now - self.last
        self.last = now


class StepTimes:
    """Running means of :class:`StepClock` laps over the training steps of a cell."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self.steps = 0

    def add(self, laps: dict[str, float]) -> None:
        for name, seconds in laps.items():
            self.total[name] = self.total.get(name, 0.0) + seconds
        self.steps += 1

    def mean_ms(self) -> dict[str, float]:
        """Per-step forward time in milliseconds of the teacher, the student's task loss and each
        distillation term (backward passes are not split: they run as one graph)."""
        if not self.steps:
            return {}
        return {k: round(1000 * v / self.steps, 3) for k, v in self.total.items()}


@MODELS.register_module()
class DistillationModel(BaseModel):
    """Offline KD wrapper around any mmengine model (mmseg segmentors, mmdet detectors).

    Args:
        student / teacher: model config dicts (built with the current default scope).
        method: a :class:`~suite.methods.spec.MethodSpec` as a dict (``dataclasses.asdict``).
        student_taps / teacher_taps: tap name -> module name(s) of each model.
        teacher_checkpoint: the trained teacher's checkpoint (required unless ``probe_only``).
        probe_size: (H, W) of the dummy batch (the task's, with data samples) used to probe
            the recorded shapes.
        width: the cell's width multiplier; scales each loss's ``width_kwargs``.
        task: the task's name (:mod:`suite.tasks`): the probe batch and the ground truth a loss
            may ask for come from it.
    """

    def __init__(
        self,
        student: dict,
        teacher: dict,
        method: dict,
        student_taps: dict[str, str | list[str]],
        teacher_taps: dict[str, str | list[str]],
        teacher_checkpoint: str | None = None,
        probe_size: tuple[int, int] = (64, 64),
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
        load_teacher_checkpoint: bool = True,
        width: float = 1.0,
        task: str = "segmentation",
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor or student.get("data_preprocessor"),
                         init_cfg=init_cfg)
        self.task = get_task(task)
        self.student = MODELS.build(student)
        self.teacher = MODELS.build(teacher)
        if load_teacher_checkpoint:
            load_teacher(self.teacher, teacher_checkpoint)
            # The Runner calls ``init_weights()`` on the whole model before training; without this
            # flag mmengine would re-initialise the loaded teacher (Kaiming/normal init of every
            # backbone and head layer) and the students would distil a random network.
            self.teacher._is_init = True
        self.teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)

        self.loss_specs = {k: _as_dataclass(v, LossSpec) for k, v in method["losses"].items()}
        for name, spec in self.loss_specs.items():
            spec.inputs = {a: _as_dataclass(i, Input) for a, i in spec.inputs.items()}
            check_loss_inputs(name, loss_class(spec.type), spec.inputs)
        conn_specs = {k: _as_dataclass(v, ConnectorSpec) for k, v in method.get("connectors", {}).items()}
        self.use_weight_decay = bool(method.get("weight_decay", False))
        self.method_name = method.get("name", "")
        self.width = width

        used_s = {i.tap for s in self.loss_specs.values() for i in s.inputs.values() if i.source == "student"}
        used_t = {i.tap for s in self.loss_specs.values() for i in s.inputs.values() if i.source == "teacher"}
        used_s |= {c.in_from[1] for c in conn_specs.values() if c.in_from[0] == "student"}
        used_t |= {c.in_from[1] for c in conn_specs.values() if c.in_from[0] == "teacher"}
        for side, used, taps in (("student", used_s, student_taps), ("teacher", used_t, teacher_taps)):
            missing = used - set(taps)
            if missing:
                raise SuiteError(f"method {self.method_name!r} needs {side} taps {sorted(missing)}; "
                                 f"the model offers {sorted(taps)}")
        self.recorder_s = ModuleOutputsRecorder(self.student, {t: student_taps[t] for t in used_s})
        self.recorder_t = ModuleOutputsRecorder(self.teacher, {t: teacher_taps[t] for t in used_t})
        self.teacher_taps = dict(teacher_taps)

        shapes_s, shapes_t = self._probe(probe_size)
        self.connectors = nn.ModuleDict()
        strides = {"student": self._probe_strides[0], "teacher": self._probe_strides[1]}
        for name, c in conn_specs.items():
            shapes = shapes_s if c.in_from[0] == "student" else shapes_t
            kwargs = dict(c.kwargs, in_channels=shapes[c.in_from[1]])
            out_strides = None
            if c.out_from is not None:
                out = shapes_s if c.out_from[0] == "student" else shapes_t
                kwargs["out_channels"] = out[c.out_from[1]]
                out_strides = strides[c.out_from[0]].get(c.out_from[1])
            kwargs = _connector_kwargs(c.type, kwargs, strides[c.in_from[0]].get(c.in_from[1]),
                                       out_strides)
            self.connectors[name] = build_connector(c.type, **kwargs)
        conn_channels = self._connector_channels(conn_specs, shapes_s, shapes_t)
        self.distill_losses = nn.ModuleDict()
        for name, spec in self.loss_specs.items():
            self.distill_losses[name] = self._build_loss(spec, shapes_s, shapes_t, conn_channels)
        self.alpha = 1.0
        self.step_times = StepTimes()
        self.step_calls = 0

    # ------------------------------------------------------------------ construction helpers
    @torch.no_grad()
    def _probe(self, size: tuple[int, int]) -> tuple[dict, dict]:
        """Run both models once on the task's dummy batch to learn every tap's channel counts."""
        x, samples = self.task.probe_batch(tuple(size))
        was_training = self.student.training
        self.student.eval()
        self.recorder_s.reset()
        self.recorder_t.reset()
        self.student._forward(x, samples)
        self.task.teacher_forward(self.teacher, x, samples)  # what a training step runs
        self.student.train(was_training)
        self._probe_out = ({t: self.recorder_s.get(t) for t in self.recorder_s.taps},
                           {t: self.recorder_t.get(t) for t in self.recorder_t.taps})
        self._probe_strides = tuple({t: _strides(v, size[0]) for t, v in out.items()}
                                    for out in self._probe_out)
        return ({t: _channels(v) for t, v in self._probe_out[0].items()},
                {t: _channels(v) for t, v in self._probe_out[1].items()})

    @torch.no_grad()
    def _connector_channels(self, specs: dict[str, ConnectorSpec], shapes_s: dict, shapes_t: dict) -> dict:
        out = {}
        for name, c in specs.items():
            rec = self._probe_out[0] if c.in_from[0] == "student" else self._probe_out[1]
            out[name] = _channels(self.connectors[name](rec[c.in_from[1]]))
        del self._probe_out
        return out

    def _build_loss(self, spec: LossSpec, shapes_s: dict, shapes_t: dict, conn: dict) -> nn.Module:
        kwargs = dict(spec.kwargs, loss_weight=spec.weight)
        for key in spec.width_kwargs:
            kwargs[key] = scaled_channels(int(kwargs[key]), self.width)
        cls = loss_class(spec.type)
        params = inspect.signature(cls).parameters
        if spec.channels_from:
            key = spec.channels_from
            if key in conn:
                s_ch = t_ch = conn[key]
            else:
                s_ch, t_ch = shapes_s.get(key), shapes_t.get(key)
            if "student_channels" in params:
                kwargs.setdefault("student_channels", s_ch)
            if "teacher_channels" in params:
                kwargs.setdefault("teacher_channels", t_ch)
        reuse = getattr(cls, "teacher_kwargs", None)
        if callable(reuse):  # frozen teacher modules the loss reuses (classifier, head layers)
            try:
                kwargs.update(reuse(self.teacher, self.teacher_taps, spec.inputs))
            except ValueError as exc:
                raise SuiteError(f"method {self.method_name!r}: {exc}") from exc
        return build_loss(spec.type, **kwargs)

    # ------------------------------------------------------------------ training state
    def train(self, mode: bool = True) -> DistillationModel:
        """Student, connectors and losses to ``mode``; the teacher stays in eval mode (frozen:
        BN statistics and dropout). mmengine's loop calls this every iteration: the teacher,
        whose mode only changes through its own root, is walked only when that root says it
        left eval mode (two walks of a ResNet-101 teacher cost ~8 ms an iteration on a CPU)."""
        self.training = mode
        for child in self.children():
            if child is not self.teacher:
                child.train(mode)
        if self.teacher.training:
            self.teacher.eval()
        return self

    def set_progress(self, iteration: int, max_iters: int) -> None:
        """Set alpha(t) for the 0-based ``iteration`` (t = iteration + 1)."""
        self.alpha = weight_decay_alpha(iteration + 1, max_iters) if self.use_weight_decay else 1.0

    # ------------------------------------------------------------------ forward modes
    def forward(self, inputs: Tensor, data_samples: list | None = None, mode: str = "tensor") -> Any:
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode == "predict":
            return self.student.predict(inputs, data_samples)
        if mode == "tensor":
            return self.student._forward(inputs, data_samples)
        raise RuntimeError(f"invalid mode {mode!r}")

    def _fetch(self, inp: Input, data_samples: list | None, cache: dict) -> Any:
        if inp.source == "data":
            if not data_samples:
                raise SuiteError(f"input {inp.tap!r} needs ground truth in the batch")
            key = ("data", inp.tap, None)
            if key not in cache:
                cache[key] = self.task.ground_truth(data_samples, inp.tap)
            return cache[key]
        key = (inp.source, inp.tap, inp.connector)
        if key not in cache:
            rec = self.recorder_s if inp.source == "student" else self.recorder_t
            value = rec.get(inp.tap)
            if inp.connector:
                value = self.connectors[inp.connector](value)
            cache[key] = value
        return cache[key]

    def loss(self, inputs: Tensor, data_samples: list) -> dict[str, Tensor]:
        timed = self.training and (not inputs.is_cuda or self.step_calls % TIMED_EVERY == 0)
        self.step_calls += self.training
        clock = StepClock(inputs.is_cuda, on=timed)
        self.recorder_s.reset()
        self.recorder_t.reset()
        with torch.no_grad():
            self.task.teacher_forward(self.teacher, inputs, data_samples)
        clock.lap("teacher_forward")
        losses = self.student.loss(inputs, data_samples)
        clock.lap("student_forward")
        cache: dict = {}
        for name, spec in self.loss_specs.items():
            kwargs = {arg: self._fetch(inp, data_samples, cache) for arg, inp in spec.inputs.items()}
            value = self.distill_losses[name](**kwargs)
            if spec.decays and self.use_weight_decay:
                value = value * self.alpha
            losses[f"distill.{name}"] = value
            clock.lap(f"distill.{name}")
        losses["distill.alpha"] = torch.tensor(self.alpha)
        if timed:
            self.step_times.add(clock.laps)
        return losses

    def student_state_dict(self) -> dict[str, Tensor]:
        """The student's weights alone: no teacher, connector or loss parameters."""
        return self.student.state_dict()
