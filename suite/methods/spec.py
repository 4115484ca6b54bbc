"""Declarative description of a distillation method, in MMRazor's vocabulary.

A method is *described*, not coded: which named places of the student and teacher are recorded
(``taps``), which connector transforms a recorded tensor before it reaches a loss, which losses
are computed with which weights, and what the method needs from the batch.

Taps are architecture-neutral names resolved per model family by :mod:`suite.models`:

``logits``        output of the classifier (``decode_head.conv_seg``), N x K x h x w
``head_feature``  the decode head's feature right before the classifier
                  (PSPNet ``decode_head.bottleneck``, DeepLabV3+ ``decode_head.sep_bottleneck``)
``head_feature_preact``  the same feature before its ReLU (the last ConvModule's BatchNorm)
``stages``        list of the four backbone stage outputs (ResNet C2..C5)
``low_level``     the first backbone stage output (C2)

Detection taps (mmdet detectors, :mod:`suite.families.det_base`; a list tap has one entry per
FPN level or backbone stage):

``fpn``           the neck's outputs (5 levels)
``cls_scores`` / ``bbox_preds``   a dense head's class logits and box outputs per level (GFL's
                  box distributions after each level's ``Scale``; RetinaNet's anchor deltas)
``cls_feature`` / ``reg_feature`` a dense head branch's last stacked conv before its activation
``classifier`` / ``regressor``    the dense head's final class / box convolution (module names,
                  for losses that reuse the teacher's layers)
``rpn_cls_scores`` / ``rpn_bbox_preds``  a two-stage detector's RPN outputs per level
``rpn_feature``   the RPN's shared convolution before its activation, per level
``rpn_classifier`` / ``rpn_regressor``  the RPN's final convolutions (module names, as above)

Ground truth (``Input(source="data", tap=KIND)``, :meth:`suite.tasks.Task.ground_truth`):
segmentation ``gt_seg``; detection ``gt_boxes`` (per image n x 4, x1 y1 x2 y2 in input pixels),
``gt_labels`` (per image n), ``img_shapes`` (per image (h, w) of the padded batch input).

A method factory declares the tasks it serves with :func:`serves` (segmentation only when it
declares none); a factory serving several tasks takes ``task=`` and returns that task's spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

TAPS = ("logits", "head_feature", "head_feature_preact", "stages", "low_level", "fpn", "cls_scores",
        "bbox_preds", "cls_feature", "reg_feature", "rpn_cls_scores", "rpn_bbox_preds",
        "rpn_feature")
TASKS = ("segmentation", "detection")
DEFAULT_TASKS = ("segmentation",)  # what a factory that declares nothing serves
GROUND_TRUTH = {"segmentation": ("gt_seg",), "detection": ("gt_boxes", "gt_labels", "img_shapes")}

Factory = TypeVar("Factory", bound=Callable[..., Any])


def serves(*tasks: str) -> Callable[[Factory], Factory]:
    """Declare the tasks a method factory serves (its ``tasks`` attribute, read by
    :func:`method_tasks`); a factory serving several tasks takes a ``task`` keyword."""
    unknown = sorted(set(tasks) - set(TASKS))
    if not tasks or unknown:
        raise ValueError(f"serves: tasks must be some of {TASKS}, got {tasks}")

    def mark(factory: Factory) -> Factory:
        factory.tasks = tuple(tasks)  # type: ignore[attr-defined]
        return factory

    return mark


def method_tasks(factory: Callable[..., Any]) -> tuple[str, ...]:
    """The tasks a registered method factory serves (segmentation unless it declares others)."""
    return tuple(getattr(factory, "tasks", DEFAULT_TASKS))


@dataclass(frozen=True)
class Input:
    """Where one argument of a loss's ``forward`` comes from.

    ``source`` is ``"student"`` or ``"teacher"`` (a tap), or ``"data"`` (ground truth: ``tap`` is
    then its kind, e.g. ``"gt_seg"``, an N x H x W long tensor at input resolution with
    255 = ignore, or detection's ``"gt_boxes"``; see :data:`GROUND_TRUTH`).
    ``connector`` names an entry of :attr:`MethodSpec.connectors` applied to the tapped tensor.
    """

    source: str
    tap: str
    connector: str | None = None


def S(tap: str, connector: str | None = None) -> Input:  # noqa: N802 - mirrors MMRazor's from_student
    return Input("student", tap, connector)


def T(tap: str, connector: str | None = None) -> Input:  # noqa: N802
    return Input("teacher", tap, connector)


GT_SEG = Input("data", "gt_seg")
GT_BOXES = Input("data", "gt_boxes")
GT_LABELS = Input("data", "gt_labels")
IMG_SHAPES = Input("data", "img_shapes")


@dataclass
class LossSpec:
    """One distillation loss: registry name, weight and keyword arguments, forward mapping.

    ``inputs`` maps the loss's ``forward`` argument names to :class:`Input`. If the loss class's
    ``__init__`` accepts ``student_channels`` / ``teacher_channels``, the distiller fills them
    from the probed shapes of ``channels_from`` (a tap name). A loss class with a
    ``teacher_kwargs(teacher, teacher_taps, inputs)`` classmethod gets the keyword arguments it
    returns (frozen teacher modules it reuses: the classifier, the rest of a detection head); its ``reused_taps(inputs)`` classmethod lists the teacher taps
    that needs and ``DENSE_HEADS`` the mmdet head classes it is defined for (a two-stage
    detector's dense head is its RPN; both checked at plan time).
    """

    type: str
    weight: float
    inputs: dict[str, Input]
    kwargs: dict[str, Any] = field(default_factory=dict)
    channels_from: str | None = None
    decays: bool = False  # scaled by the weight-decay time function alpha(t) when it is on
    # kwargs that are channel widths of the loss's own networks (a critic, a training-only
    # branch): multiplied by the cell's width multiplier like the student and teacher, so a
    # quarter-width smoke cell does not train a full-width critic (1.0 = the paper's width)
    width_kwargs: tuple[str, ...] = ()


@dataclass
class ConnectorSpec:
    """A student-side (trainable) or teacher-side (parameter-free) transform of a tapped tensor.

    ``in_from``/``out_from`` are ``(side, tap)`` pairs whose probed channel counts give the
    connector's ``in_channels`` / ``out_channels`` (the side is ``"student"`` or ``"teacher"``).
    """

    type: str
    in_from: tuple[str, str]
    out_from: tuple[str, str] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class MethodSpec:
    """A named bundle: losses + connectors + faithfulness notes."""

    name: str
    losses: dict[str, LossSpec]
    connectors: dict[str, ConnectorSpec] = field(default_factory=dict)
    needs_gt: bool = False
    reimplementation: bool = False  # no official code: implemented from the paper
    unverified: list[str] = field(default_factory=list)  # details/weights not verified
    assumptions: dict[str, Any] = field(default_factory=dict)
    paper: str = ""
    weight_decay: bool = False  # alpha(t) schedule on the decaying losses

    def merged(self, other: MethodSpec) -> MethodSpec:
        """Composite method ``a+b``: the losses of both, each with its own weights and taps."""
        clash = (set(self.losses) & set(other.losses)) | (set(self.connectors) & set(other.connectors))
        if clash:
            raise ValueError(f"methods {self.name} and {other.name} both define {sorted(clash)}")
        return MethodSpec(
            name=f"{self.name}+{other.name}",
            losses={**self.losses, **other.losses},
            connectors={**self.connectors, **other.connectors},
            needs_gt=self.needs_gt or other.needs_gt,
            reimplementation=self.reimplementation or other.reimplementation,
            unverified=[*self.unverified, *other.unverified],
            assumptions={**self.assumptions, **other.assumptions},
            paper="; ".join(p for p in (self.paper, other.paper) if p),
            weight_decay=self.weight_decay or other.weight_decay,
        )
