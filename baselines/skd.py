"""SKD — structured knowledge distillation for semantic segmentation.

Paper: Y. Liu, K. Chen, C. Liu, Z. Qin, Z. Luo, J. Wang, "Structured knowledge distillation for
semantic segmentation", CVPR 2019. Reference code: irfanICMLL/structure_knowledge_distillation
(``utils/criterion.py``, ``networks/kd_model.py``, ``networks/sagan_models.py``); CIRKD's
re-implementation (``losses/skd.py``, ``losses/adv.py``).

Three terms, summed with their own weights:

1. pixel-wise (``loss_skd_pixel``, type ``kd``)::

       L_pi = tau^2 * mean_{n,i} KL( softmax(z_T[n,:,i]/tau) || softmax(z_S[n,:,i]/tau) )

   Reduction: sum over classes, mean over N*h*w pixels (CIRKD's). Upstream computes the cross
   entropy -sum p_T log p_S (same gradient; differs by the teacher's entropy) summed over the
   batch and divided by h*w only, i.e. an effective weight N times larger.

2. pair-wise (``loss_skd_pair``, type ``skd_pair``), on the feature before the classifier::

       f <- maxpool(f) with kernel = stride = (int(h*s), int(w*s)), ceil mode  (s = pool_scale)
       a_ij = <f_i, f_j> / (||f_i|| ||f_j||)   (norms detached, as upstream; i, j: pooled grid)
       L_pa = mean_{n,i,j} (a^T_ij - a^S_ij)^2           (= upstream's sum / (hw)^2 / N)

3. holistic (``loss_skd_adv``, type ``holistic_adv``): WGAN-GP on the logits, see
   :class:`baselines._common.HolisticAdversarialLoss` (critic: spectral-norm SAGAN
   discriminator, its own Adam, lr 4e-4, betas (0.9, 0.99), critic term weight 0.1, GP 10).
   The critic's base width ``d_conv_dim`` (64) follows the cell's width multiplier, as the
   student and teacher do (16 at the smoke profile's quarter width).

Defaults (upstream ``train_options.py`` / ``run_train_val.sh``): pixel 10, pair 1 (the released
script uses 0.5), pool scale 0.5, adversarial 0.1 (generator), critic weight 0.1, GP 10, tau 1.
Attach points: ``logits``; ``head_feature`` (PSPNet's PSP-module output).
Ground truth: not needed. Re-implementation: no (official code); deviations: see
:class:`~baselines._common.HolisticDiscriminator` (global-mean score head, small inputs enlarged).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from baselines._common import HolisticAdversarialLoss, align_to_teacher, prefixed, resolve_options
from baselines.kd import kd_spec
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import LossSpec, MethodSpec, S, T


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

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        preds_S, preds_T = align_to_teacher(preds_S, preds_T)
        h, w = preds_T.shape[-2:]
        kernel = (max(1, int(h * self.pool_scale)), max(1, int(w * self.pool_scale)))
        s = F.max_pool2d(preds_S, kernel, kernel, ceil_mode=True)
        t = F.max_pool2d(preds_T, kernel, kernel, ceil_mode=True)
        return self.loss_weight * (_affinity(t) - _affinity(s)).pow(2).mean()


LOSSES.register_module(name="holistic_adv", module=HolisticAdversarialLoss)

# the holistic critic's options (SKD's upstream values), shared by SKD, IFVD and SSTKD
CRITIC_DEFAULTS: dict[str, Any] = {
    "d_weight": 0.1, "gp_weight": 10.0, "d_lr": 4e-4, "d_conv_dim": 64, "d_optimizer": "adam",
}
DEFAULTS: dict[str, Any] = {
    "pixel_weight": 10.0, "tau": 1.0,
    "pair_weight": 1.0, "pool_scale": 0.5,
    "adv_weight": 0.1, **CRITIC_DEFAULTS,
}


def adversarial_spec(o: dict[str, Any], weight_key: str = "adv_weight") -> LossSpec:
    """The holistic WGAN-GP term on the logits (shared by SKD, IFVD and SSTKD)."""
    return LossSpec(
        type="holistic_adv", weight=float(o[weight_key]),
        inputs={"preds_S": S("logits"), "preds_T": T("logits")},
        kwargs={k: o[k] for k in CRITIC_DEFAULTS},
        channels_from="logits", width_kwargs=("d_conv_dim",))


@METHODS.register_module(name="skd")
def skd(options: dict[str, Any] | None = None) -> MethodSpec:
    """Structured KD: pixel-wise + pair-wise + holistic (adversarial)."""
    o = resolve_options("skd", options, DEFAULTS)
    losses = {
        "loss_skd_pixel": kd_spec(o["pixel_weight"], o["tau"]),
        "loss_skd_pair": LossSpec(
            type="skd_pair", weight=float(o["pair_weight"]),
            inputs={"preds_S": S("head_feature"), "preds_T": T("head_feature")},
            kwargs={"pool_scale": o["pool_scale"]}),
    }
    if o["adv_weight"]:
        losses["loss_skd_adv"] = adversarial_spec(o)
    return MethodSpec(
        name="skd", losses=losses, needs_gt=False, reimplementation=False,
        unverified=["pair weight: 1 in train_options.py, 0.5 in the released run script",
                    "critic score head: global mean instead of SKD's 4x4 valid conv"],
        assumptions=prefixed("skd", {"pixel_reduction": "pixelmean",
                                     "d_optimizer": o["d_optimizer"]}),
        paper="Y. Liu, K. Chen, C. Liu, Z. Qin, Z. Luo, J. Wang, CVPR 2019, Structured knowledge "
              "distillation for semantic segmentation",
    )
