"""mmseg's Mask2Former head with per-pixel class logits for logit-based distillation losses.

Mask2Former (Cheng et al., CVPR 2022) predicts, per query q, class scores c_q (K + 1 with "no
object") and a mask m_q; mmseg's semantic inference is p(k | x) = sum_q softmax(c_q)_k
sigmoid(m_q(x)) (``Mask2FormerHead.predict``). :class:`MaskClassLogits` turns the last decoder
layer's outputs into log p (clamped at ``eps``): N x K x H/4 x W/4, a tensor a KD loss can take
as the teacher's ``logits`` -- its softmax over classes is p normalised per pixel and its argmax
is mmseg's prediction. The head's ``forward`` also accepts no data samples (the tensor mode of
``EncoderDecoder._forward`` passes none; Mask2Former's forward uses only the batch size).
"""

from __future__ import annotations

import torch
from mmseg.models.decode_heads.mask2former_head import Mask2FormerHead
from mmseg.registry import MODELS
from torch import Tensor, nn


class MaskClassLogits(nn.Module):
    """(class scores N x Q x (K+1), mask logits N x Q x h x w) -> per-pixel log-probabilities
    N x K x h x w (see the module docstring); no parameters."""

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, cls_scores: Tensor, mask_preds: Tensor) -> Tensor:
        probs = torch.einsum("nqk,nqhw->nkhw", cls_scores.softmax(dim=-1)[..., :-1],
                             mask_preds.sigmoid())
        return probs.clamp_min(self.eps).log()


@MODELS.register_module()
class Mask2FormerLogitsHead(Mask2FormerHead):
    """mmseg's ``Mask2FormerHead`` plus a ``logits`` submodule (:class:`MaskClassLogits`) run on
    the last decoder layer in every forward, so the ``logits`` tap can record it."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.logits = MaskClassLogits()

    def forward(self, x: list[Tensor], batch_data_samples: list | None = None
                ) -> tuple[list[Tensor], list[Tensor]]:
        cls_scores, mask_preds = super().forward(x, batch_data_samples or [])
        self.logits(cls_scores[-1], mask_preds[-1])
        return cls_scores, mask_preds
