"""SKD — structured knowledge distillation for semantic segmentation.

Paper: Y. Liu, K. Chen, C. Liu, Z. Qin, Z. Luo, J. Wang, "Structured knowledge distillation for
semantic segmentation", CVPR 2019. Reference code: irfanICMLL/structure_knowledge_distillation
(``utils/criterion.py``, ``networks/kd_model.py``, ``networks/sagan_models.py``); CIRKD's
re-implementation (``losses/skd.py``, ``losses/adv.py``).

Three terms, summed with their own weights:

1. pixel-wise (``loss_skd_pixel``, type ``kd``)::

       L_pi = 1/(h*w) * sum_{n,i} KL( softmax(z_T[n,:,i]) || softmax(z_S[n,:,i]) )

   Reduction (option ``pixel_reduction``): ``"spatialmean"`` (default, upstream's
   ``CriterionPixelWise``): summed over the classes and the N images of the (per-process) batch,
   divided by h*w only -- at weight 10 the gradient is N times that of a pixel mean.
   ``"pixelmean"`` (CIRKD's re-implementation; the previous default): mean over N*h*w pixels.
   Upstream computes the cross entropy -sum p_T log p_S; the KL here has the same student
   gradient, its value is smaller by the teacher's entropy (a constant for the student).

2. pair-wise (``loss_skd_pair``, type ``skd_pair``), on the feature before the classifier::

       f <- maxpool(f) with kernel = stride = (int(h*s), int(w*s)), ceil mode  (s = pool_scale)
       a_ij = <f_i, f_j> / (||f_i|| ||f_j||)   (norms detached, as upstream; i, j: pooled grid)
       L_pa = mean_{n,i,j} (a^T_ij - a^S_ij)^2           (= upstream's sum / (hw)^2 / N)

3. holistic (``loss_skd_adv``, type ``holistic_adv``): WGAN-GP on the logits, see
   :class:`baselines._common.HolisticAdversarialLoss` (critic: spectral-norm SAGAN
   discriminator with its own SGD as upstream's ``D_solver`` -- lr 4e-4, momentum 0.9, weight
   decay 5e-4 (``run_train_val.sh``); critic term weight 0.1, GP 10). Option ``d_optimizer``:
   ``"sgd"`` (default, upstream), ``"adam"`` (IFVD's and CIRKD's choice), ``"joint"``. Upstream
   poly-decays the critic's lr with the student's; here it is constant (an assumption).
   The critic's base width ``d_conv_dim`` (64) follows the cell's width multiplier, as the
   student and teacher do (16 at the smoke profile's quarter width).

Defaults (upstream ``utils/train_options.py`` / ``run_train_val.sh``): pixel 10 (spatialmean),
pair 1 (the released script uses 0.5), pool scale 0.5, adversarial 0.1 (generator), critic
weight 0.1, GP 10, critic SGD lr 4e-4 / momentum 0.9 / weight decay 5e-4, tau 1.
Attach points: ``logits``; ``head_feature`` (PSPNet's PSP-module output).
Ground truth: not needed. Re-implementation: no (official code); deviations: see
:class:`~baselines._common.HolisticDiscriminator` (global-mean score head, small inputs enlarged).

Detection (an adaptation: SKD is a segmentation method): the pair-wise term on every FPN level
(``fpn``, the detector's dense features; per-level losses summed, as the detection methods
sum theirs), with the same pooling and weight. The pixel-wise and holistic terms act on class
score maps over the image (segmentation logits), which detectors do not have in that form:
they are left out. Options: ``pair_weight``, ``pool_scale``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from baselines._common import HolisticAdversarialLoss, align_to_teacher, prefixed, resolve_options
from baselines.kd import kd_spec
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import LossSpec, MethodSpec, S, T, serves


def _affinity(f: Tensor) -> Tensor:
    norm = f.pow(2).sum(1, keepdim=True).sqrt().detach() + 1e-8
    f = (f / norm).flatten(2)  # N x C x M
    return f.transpose(1, 2) @ f


@LOSSES.register_module(name="skd_pair")
class PairWiseLoss(nn.Module):
    """SKD pair-wise term: squared difference of pooled cosine-affinity matrices."""

    def __init__(self, pool_scale: float = 0.5, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.pool_scale = pool_scale
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor | list[Tensor], preds_T: Tensor | list[Tensor]) -> Tensor:
        """One map per side, or lists of maps (FPN levels): the per-level terms summed."""
        if isinstance(preds_S, (list, tuple)):
            return sum(self.forward(s, t) for s, t in zip(preds_S, preds_T))
        preds_S, preds_T = align_to_teacher(preds_S, preds_T)
        h, w = preds_T.shape[-2:]
        kernel = (max(1, int(h * self.pool_scale)), max(1, int(w * self.pool_scale)))
        s = F.max_pool2d(preds_S, kernel, kernel, ceil_mode=True)
        t = F.max_pool2d(preds_T, kernel, kernel, ceil_mode=True)
        return self.loss_weight * (_affinity(t) - _affinity(s)).pow(2).mean()


LOSSES.register_module(name="holistic_adv", module=HolisticAdversarialLoss)

# the holistic critic's options with an Adam critic (IFVD's official choice), shared by IFVD and
# SSTKD; SKD's official critic is trained with SGD (SKD_CRITIC_DEFAULTS)
CRITIC_DEFAULTS: dict[str, Any] = {
    "d_weight": 0.1, "gp_weight": 10.0, "d_lr": 4e-4, "d_conv_dim": 64, "d_optimizer": "adam",
}
SKD_CRITIC_DEFAULTS: dict[str, Any] = {
    **CRITIC_DEFAULTS, "d_optimizer": "sgd", "d_momentum": 0.9, "d_weight_decay": 5e-4,
}
PIXEL_REDUCTIONS = ("spatialmean", "pixelmean")
DEFAULTS: dict[str, Any] = {
    "pixel_weight": 10.0, "tau": 1.0, "pixel_reduction": "spatialmean",
    "pair_weight": 1.0, "pool_scale": 0.5,
    "adv_weight": 0.1, **SKD_CRITIC_DEFAULTS,
}


def adversarial_spec(o: dict[str, Any], weight_key: str = "adv_weight",
                     critic_keys: Iterable[str] = tuple(CRITIC_DEFAULTS)) -> LossSpec:
    """The holistic WGAN-GP term on the logits (shared by SKD, IFVD and SSTKD)."""
    return LossSpec(
        type="holistic_adv", weight=float(o[weight_key]),
        inputs={"preds_S": S("logits"), "preds_T": T("logits")},
        kwargs={k: o[k] for k in critic_keys},
        channels_from="logits", width_kwargs=("d_conv_dim",))


def _assumptions(o: dict[str, Any]) -> dict[str, Any]:
    """What this run does where SKD's official code could be read differently."""
    critic = {"sgd": f"SGD lr {o['d_lr']}, momentum {o['d_momentum']}, weight decay "
                     f"{o['d_weight_decay']} (upstream), constant lr (upstream: poly)",
              "adam": f"Adam lr {o['d_lr']}, betas (0.9, 0.99), weight decay "
                      f"{o['d_weight_decay']} (IFVD/CIRKD's choice, not SKD's)",
              "joint": "trained by the loss modules' optimiser (not SKD)"}[o["d_optimizer"]]
    return prefixed("skd", {
        "pixel_reduction": o["pixel_reduction"] + (
            " (upstream: sum over the batch / (h*w))" if o["pixel_reduction"] == "spatialmean"
            else " (CIRKD re-implementation, not SKD's: N times weaker)"),
        "pixel_value": "KL (upstream logs the cross entropy; same gradient)",
        "d_optimizer": o["d_optimizer"], "critic": critic,
        "critic_order": "critic step before the generator term (upstream: after)"})


DETECTION_DEFAULTS: dict[str, Any] = {"pair_weight": 1.0, "pool_scale": 0.5}


def _detection(options: dict[str, Any] | None) -> MethodSpec:
    """SKD's pair-wise term on the FPN levels (module docstring)."""
    o = resolve_options("skd", options, DETECTION_DEFAULTS)
    return MethodSpec(
        name="skd",
        losses={"loss_skd_pair": LossSpec(
            type="skd_pair", weight=float(o["pair_weight"]),
            inputs={"preds_S": S("fpn"), "preds_T": T("fpn")},
            kwargs={"pool_scale": o["pool_scale"]})},
        needs_gt=False, reimplementation=True,
        unverified=["detection adaptation of a segmentation method: pair-wise term per FPN level "
                    "(summed), pixel-wise and holistic terms left out",
                    "pair weight: 1 in train_options.py, 0.5 in the released run script"],
        assumptions=prefixed("skd", {
            "task": "detection", "attach": "fpn (every level), levels summed",
            "pool_scale": o["pool_scale"], "pair_weight": o["pair_weight"],
            "dropped": "pixel-wise and holistic terms (no segmentation logits)"}),
        paper="Y. Liu, K. Chen, C. Liu, Z. Qin, Z. Luo, J. Wang, CVPR 2019, Structured knowledge "
              "distillation for semantic segmentation",
    )


@METHODS.register_module(name="skd")
@serves("segmentation", "detection")
def skd(options: dict[str, Any] | None = None, task: str = "segmentation") -> MethodSpec:
    """Structured KD: pixel-wise + pair-wise + holistic (adversarial); on a detection table the
    pair-wise term on the FPN levels."""
    if task == "detection":
        return _detection(options)
    o = resolve_options("skd", options, DEFAULTS)
    if o["pixel_reduction"] not in PIXEL_REDUCTIONS:
        raise ValueError(f"skd: pixel_reduction must be one of {PIXEL_REDUCTIONS}, "
                         f"got {o['pixel_reduction']!r}")
    losses = {
        "loss_skd_pixel": kd_spec(o["pixel_weight"], o["tau"], o["pixel_reduction"]),
        "loss_skd_pair": LossSpec(
            type="skd_pair", weight=float(o["pair_weight"]),
            inputs={"preds_S": S("head_feature"), "preds_T": T("head_feature")},
            kwargs={"pool_scale": o["pool_scale"]}),
    }
    if o["adv_weight"]:
        losses["loss_skd_adv"] = adversarial_spec(o, critic_keys=SKD_CRITIC_DEFAULTS)
    return MethodSpec(
        name="skd", losses=losses, needs_gt=False, reimplementation=False,
        unverified=["pair weight: 1 in train_options.py, 0.5 in the released run script",
                    "critic score head: global mean instead of SKD's 4x4 valid conv",
                    "critic lr constant (upstream decays it with the student's poly schedule)"],
        assumptions=_assumptions(o),
        paper="Y. Liu, K. Chen, C. Liu, Z. Qin, Z. Luo, J. Wang, CVPR 2019, Structured knowledge "
              "distillation for semantic segmentation",
    )
