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
``fpn``           (detection) list of neck outputs
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TAPS = ("logits", "head_feature", "head_feature_preact", "stages", "low_level", "fpn", "cls_scores",
        "bbox_preds")


@dataclass(frozen=True)
class Input:
    """Where one argument of a loss's ``forward`` comes from.

    ``source`` is ``"student"`` or ``"teacher"`` (a tap), or ``"data"`` (ground truth: ``tap`` is
    then ``"gt_seg"``, an N x H x W long tensor at input resolution with 255 = ignore).
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


@dataclass
class LossSpec:
    """One distillation loss: registry name, weight and keyword arguments, forward mapping.

    ``inputs`` maps the loss's ``forward`` argument names to :class:`Input`. If the loss class's
    ``__init__`` accepts ``student_channels`` / ``teacher_channels`` / ``teacher_classifier``,
    the distiller fills them from the probed shapes of ``channels_from`` (a tap name) and from the
    frozen teacher.
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
