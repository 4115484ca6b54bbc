"""Small shared pieces of the competing KD methods (not a method itself).

Everything here is plain torch: option checking for the method factories, ground-truth resizing
and edge extraction, student-to-teacher alignment (detach, resize, width adapter, the frozen
teacher classifier), and the holistic (WGAN-GP) discriminator that SKD, IFVD and SSTKD share.
The softmax KL divergences live in :mod:`suite.methods.divergences` (shared with BCD). Tests
re-derive every formula independently instead of calling these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

IGNORE_INDEX = 255


# --------------------------------------------------------------------------------------------
# method-factory helpers
# --------------------------------------------------------------------------------------------
def resolve_options(method: str, options: Mapping[str, Any] | None,
                    defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``options`` over ``defaults``; unknown keys raise ``ValueError`` listing valid ones."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(
            f"method {method!r}: unknown option(s) {unknown}; valid options: {sorted(defaults)}")
    return {**defaults, **options}


def prefixed(method: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"tau": 1}`` -> ``{"kd.tau": 1}``: assumption keys stay unique when methods are merged."""
    return {f"{method}.{k}": v for k, v in values.items()}


def as_list(x: Tensor | Sequence[Tensor]) -> list[Tensor]:
    return [x] if isinstance(x, Tensor) else list(x)


def as_int_list(x: int | Sequence[int] | None, n: int | None = None) -> list[int]:
    if x is None:
        raise ValueError("channel counts are required (the distiller fills them from probes)")
    if isinstance(x, int):
        return [x] * (n or 1)
    return [int(c) for c in x]


# --------------------------------------------------------------------------------------------
# ground truth
# --------------------------------------------------------------------------------------------
def label_map(gt_seg: Tensor) -> Tensor:
    """The ``N x H x W`` long label map of an ``N x H x W`` or ``N x 1 x H x W`` GT."""
    return (gt_seg[:, 0] if gt_seg.dim() == 4 else gt_seg).long()


def resize_gt(gt_seg: Tensor, size: Sequence[int]) -> Tensor:
    """Nearest-neighbour resize of an ``N x H x W`` label map to ``size`` (mmseg's convention)."""
    gt_seg = label_map(gt_seg)
    if tuple(gt_seg.shape[-2:]) == tuple(size):
        return gt_seg
    return F.interpolate(gt_seg[:, None].float(), size=tuple(size), mode="nearest")[:, 0].long()


def label_edges(gt_seg: Tensor, radius: int = 1, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Boolean ``N x H x W`` band of pixels whose ``(2r+1)^2`` window holds another label.

    A change to or from ``ignore_index`` counts as an edge (VOC draws its object outlines with
    255), but ignored pixels themselves are never part of the band.
    """
    lab = gt_seg.float()[:, None]
    k = 2 * radius + 1
    hi = F.max_pool2d(lab, k, stride=1, padding=radius)
    lo = -F.max_pool2d(-lab, k, stride=1, padding=radius)
    edge = (hi != lo)[:, 0]
    return edge & (gt_seg != ignore_index)


# --------------------------------------------------------------------------------------------
# student / teacher alignment
# --------------------------------------------------------------------------------------------
def resize_to(x: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize (``align_corners=False``) of an ``N x C x H x W`` map to ``size``.

    Returned unchanged when it already has that size.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, tuple(size), mode="bilinear", align_corners=False)


def align_to_teacher(preds_S: Tensor, preds_T: Tensor) -> tuple[Tensor, Tensor]:
    """``(student, teacher)``: the teacher map detached, the student resized to its size."""
    preds_T = preds_T.detach()
    return resize_to(preds_S, preds_T.shape[-2:]), preds_T


def width_adapter(student_channels: int, teacher_channels: int) -> nn.Module:
    """A trainable 1x1 conv student width -> teacher width, or the identity when they match."""
    if student_channels == teacher_channels:
        return nn.Identity()
    return nn.Conv2d(student_channels, teacher_channels, 1)


def teacher_classifier_module(teacher: nn.Module, taps: Mapping[str, Any]) -> nn.Module:
    """The teacher's classifier: the module of its ``classifier`` tap (``decode_head.conv_seg``
    for mmseg heads), else of its ``logits`` tap."""
    name = taps.get("classifier", taps.get("logits"))
    modules = dict(teacher.named_modules())
    if not isinstance(name, str) or name not in modules:
        raise ValueError(f"the loss reuses the teacher's classifier; the teacher declares no "
                         f"classifier tap (taps: {sorted(taps)})")
    return modules[name]


class ReusesTeacherClassifier:
    """A loss built with the frozen teacher's classifier (``teacher_classifier=``): the
    distiller fills it through :meth:`teacher_kwargs`, as it fills any teacher module a loss
    reuses, and the plan checks that the teacher declares the tap (:meth:`reused_taps`)."""

    @classmethod
    def teacher_kwargs(cls, teacher: nn.Module, taps: Mapping[str, Any],
                       inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {"teacher_classifier": teacher_classifier_module(teacher, taps)}

    @classmethod
    def reused_taps(cls, inputs: Mapping[str, Any]) -> tuple[str, ...]:
        return ("classifier",)


class TeacherClassifierMixin(ReusesTeacherClassifier):
    """Holds the frozen teacher classifier (``decode_head.conv_seg``) out of the module tree.

    Kept in a tuple, so it is neither trained through the loss's parameters nor saved in its
    ``state_dict``; the distiller passes it as ``teacher_classifier=`` (or calls
    :meth:`set_teacher_classifier`).
    """

    _teacher_classifier: tuple[nn.Module, ...] = ()

    def set_teacher_classifier(self, classifier: nn.Module | None) -> None:
        self._teacher_classifier = (classifier,) if classifier is not None else ()

    def _require_teacher_classifier(self, message: str) -> nn.Module:
        if not self._teacher_classifier:
            raise RuntimeError(message)
        return self._teacher_classifier[0]


# --------------------------------------------------------------------------------------------
# holistic adversarial distillation (SKD, reused by IFVD and SSTKD)
# --------------------------------------------------------------------------------------------
class _SelfAttention(nn.Module):
    """SAGAN self-attention block (``gamma`` starts at 0, so it begins as the identity)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(channels // 8, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)
        k = self.key(x).flatten(2)
        attn = torch.softmax(q @ k, dim=-1)
        out = (self.value(x).flatten(2) @ attn.transpose(1, 2)).view(n, c, h, w)
        return self.gamma * out + x


class HolisticDiscriminator(nn.Module):
    """SAGAN-style critic on segmentation logits, after SKD's ``Discriminator``.

    BatchNorm pre-processing (SKD's ``preprocess_GAN_mode=1``), four spectral-normalised
    ``4x4/2`` convolutions with LeakyReLU(0.1) (widths ``d, 2d, 4d, 8d``), self-attention after
    the third and fourth, then a 1x1 convolution averaged over space to one score per image.
    Deviation from SKD: SKD's last layer is a 4x4 valid convolution on a 65x65 input; here the
    score is spatially averaged so any input size works, and inputs smaller than ``min_size``
    are bilinearly enlarged first so the four stride-2 layers keep at least one pixel.
    """

    def __init__(self, in_channels: int, conv_dim: int = 64, min_size: int = 16) -> None:
        super().__init__()
        self.min_size = min_size
        self.pre = nn.BatchNorm2d(in_channels)
        widths = [in_channels, conv_dim, conv_dim * 2, conv_dim * 4, conv_dim * 8]
        self.blocks = nn.ModuleList(
            nn.Sequential(spectral_norm(nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1)),
                          nn.LeakyReLU(0.1))
            for i in range(4))
        self.attn3 = _SelfAttention(widths[3])
        self.attn4 = _SelfAttention(widths[4])
        self.last = nn.Conv2d(widths[4], 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if min(h, w) < self.min_size:
            scale = self.min_size / min(h, w)
            size = (max(self.min_size, round(h * scale)), max(self.min_size, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = self.pre(x)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == 2:
                x = self.attn3(x)
            elif i == 3:
                x = self.attn4(x)
        return self.last(x).mean(dim=(1, 2, 3))


class HolisticAdversarialLoss(nn.Module):
    """WGAN-GP holistic distillation of SKD (Liu et al., CVPR 2019), as in its official code.

    Generator (student) term, returned:  ``loss_weight * -mean_n D(z_S)``.
    Critic term::

        d_weight * (mean D(z_S) - mean D(z_T) + gp_weight * mean_n (||grad D(x_hat)|| - 1)^2)

    with ``x_hat = a z_T + (1-a) z_S``, ``a ~ U(0, 1)`` per image.

    The critic's optimiser (``d_optimizer``) differs between the official codes:

    * ``"sgd"``: SKD's official code (``networks/kd_model.py``: ``D_solver = optim.SGD(...,
      lr_d, momentum, weight_decay)``, lr 4e-4, momentum 0.9, weight decay 5e-4 in the released
      ``run_train_val.sh``, 1e-4 in ``train_options.py``). Upstream decays the critic's lr with
      the student's poly schedule; here it stays at ``d_lr`` (the loss does not see the
      iteration).
    * ``"adam"`` (the class default): IFVD's official code (``networks/kd_model.py``:
      ``optim.Adam(..., lr_d, [0.9, 0.99])``) and CIRKD's re-implementation; betas (0.9, 0.99).
    * ``"joint"``: no inner step; the critic term is added to the returned scalar with zero value
      (``c - c.detach()``), so whatever optimizer trains the loss modules updates the critic (the
      student never receives the critic term's gradient).

    With ``"sgd"``/``"adam"`` the critic takes one step inside ``forward`` (training mode only) on
    detached logits, *before* the generator term is computed (upstream steps the critic after
    the student; the order is swapped so the generator graph never sees modified weights). The
    critic's parameters then receive no gradient from the returned scalar. The optimiser state is
    not in ``state_dict``.
    """

    D_OPTIMIZERS = ("sgd", "adam", "joint")

    def __init__(self, student_channels: int, loss_weight: float = 1.0, d_weight: float = 0.1,
                 gp_weight: float = 10.0, d_lr: float = 4e-4, d_conv_dim: int = 64,
                 d_optimizer: str = "adam", d_momentum: float = 0.9,
                 d_weight_decay: float = 0.0) -> None:
        super().__init__()
        if d_optimizer not in self.D_OPTIMIZERS:
            raise ValueError(f"d_optimizer must be one of {self.D_OPTIMIZERS}, got {d_optimizer!r}")
        self.loss_weight = loss_weight
        self.d_weight = d_weight
        self.gp_weight = gp_weight
        self.d_lr = d_lr
        self.d_optimizer = d_optimizer
        self.d_momentum = d_momentum
        self.d_weight_decay = d_weight_decay
        self.discriminator = HolisticDiscriminator(student_channels, d_conv_dim)
        self._opt: tuple[torch.optim.Optimizer, ...] = ()  # outside the module tree

    def critic_loss(self, fake: Tensor, real: Tensor) -> Tensor:
        fake, real = fake.detach(), real.detach()
        d = self.discriminator
        loss = d(fake).mean() - d(real).mean()
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
        x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        out = d(x_hat)
        (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
        gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        return self.d_weight * (loss + self.gp_weight * gp)

    def _make_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        """SKD's SGD (momentum, weight decay) or IFVD's Adam (betas 0.9, 0.99) for the critic."""
        if self.d_optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.d_lr, momentum=self.d_momentum,
                                   weight_decay=self.d_weight_decay)
        return torch.optim.Adam(params, lr=self.d_lr, betas=(0.9, 0.99),
                                weight_decay=self.d_weight_decay)

    def _critic_step(self, fake: Tensor, real: Tensor) -> None:
        params = [p for p in self.discriminator.parameters() if p.requires_grad]
        if not self._opt:
            self._opt = (self._make_optimizer(params),)
        with torch.enable_grad():
            grads = torch.autograd.grad(self.critic_loss(fake, real), params, allow_unused=True)
        for p, g in zip(params, grads):
            p.grad = g
        self._opt[0].step()
        for p in params:
            p.grad = None

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        preds_T = preds_T.detach()
        train_critic = self.training and torch.is_grad_enabled()
        if train_critic and self.d_optimizer != "joint":
            self._critic_step(preds_S, preds_T)
        params = list(self.discriminator.parameters())
        flags = [p.requires_grad for p in params]
        for p in params:  # the generator term must not train the critic
            p.requires_grad_(False)
        try:
            g_loss = -self.discriminator(preds_S).mean()
        finally:
            for p, f in zip(params, flags):
                p.requires_grad_(f)
        out = self.loss_weight * g_loss
        if train_critic and self.d_optimizer == "joint":
            c = self.critic_loss(preds_S, preds_T)
            out = out + (c - c.detach())
        return out


def align_scale(feat_S: Tensor, feat_T: Tensor, eps: float = 1e-6) -> Tensor:
    """``feat_S`` standardised per channel over (N, H, W), then given ``feat_T``'s mean and std.

    Unbiased standard deviations (``torch.std``'s default), ``eps`` added to the student's only,
    as CrossKD's ``align_scale``. ``feat_T`` is used detached.
    """
    feat_T = feat_T.detach()
    dims = (0, 2, 3)
    mu_s, sd_s = feat_S.mean(dims, keepdim=True), feat_S.std(dims, keepdim=True)
    mu_t, sd_t = feat_T.mean(dims, keepdim=True), feat_T.std(dims, keepdim=True)
    return (feat_S - mu_s) / (sd_s + eps) * sd_t + mu_t
