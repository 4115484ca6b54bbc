"""CIRKD — cross-image relational knowledge distillation.

Paper: C. Yang, H. Zhou, Z. An, X. Jiang, Y. Xu, Q. Zhang, "Cross-image relational knowledge
distillation for semantic segmentation", CVPR 2022. Reference code: winycg/CIRKD
(``losses/cirkd_mini_batch.py``, ``losses/cirkd_memory.py``, ``losses/kd.py``).

Terms (f = feature before the classifier, L2-normalised along channels):

1. pixel KD (``loss_cirkd_kd``, type ``kd``): tau^2 * mean over N*h*w pixels of KL, tau 1.
2. mini-batch pixel-to-pixel (``loss_cirkd_minibatch``, type ``cirkd_minibatch``)::

       for every ordered image pair (a, b):  A_ab = f_a^T f_b / tau_mb   (hw x hw)
       L_mb = 1/N^2 * sum_{a,b} 1/(hw) * sum_i KL( softmax_j(A^T_ab[i]) || softmax_j(A^S_ab[i]) )

   Reduction: rows are averaged (``batchmean`` over hw), then pairs averaged over N^2 (no
   tau^2 factor, as upstream). Cost: O(N^2 (hw)^2) time and O((hw)^2) memory per pair --
   quadratic in the batch and in the feature's pixel count; ``pooling=True`` (2x2 average
   pooling first, an upstream option) divides (hw)^2 by 16.
3. memory-bank contrast (``loss_cirkd_memory``, type ``cirkd_memory``): a student projector
   (1x1 conv - BN - ReLU - 1x1 conv, to the teacher's width) gives s; teacher t; per-class
   queues of teacher pixel embeddings (``pixel_memory_size``, 16 enqueued per class per image)
   and of teacher region embeddings (class means, ``region_memory_size``); per step,
   ``pixel_contrast_size // K + 1`` / ``region_contrast_size // K + 1`` entries per class (the
   same random queue positions for every class) are sampled as the contrast set q::

       L_pixel  = tau_kd^2 * mean_i KL( softmax_k(t_i.q_k / tau_c) || softmax_k(s_i.q_k / tau_c) )
       L_region = same with the region queue

   over labelled pixels i (GT resized to the feature, 255 ignored). Queues start random
   (L2-normalised) and are filled with the current batch *before* the contrast, as upstream.
   ``num_classes`` sizes the queues; left ``None`` it is read from the teacher classifier (the
   distiller passes it), and without one the queues grow to the largest label seen (upstream
   allocates them from the dataset's class count).
   The queues are non-persistent buffers (not saved in checkpoints).

Defaults: kd 1, minibatch 1 (tau 0.1), pixel memory 0.1, region memory 0.1 (upstream's
Cityscapes setting; VOC uses 0.01 / 0.01), contrast tau 0.1, contrast-KD tau 1, queues
20000 pixels / 2000 regions per class.
Contrast sample sizes: upstream (``train_cirkd.py``) passes ``--pixel-contrast-size 4096`` and
``--region-contrast-size 1024`` as ``size // K + 1`` entries *per class* (K: the dataset's class
count), the same random queue positions for every class, so about 4096 pixel and 1024 region
entries in all, at every step and batch size. ``contrast_size_rule="fixed"`` (default) does
exactly that, capped only by the queue length. ``contrast_size_rule="auto"`` (a deviation, after the
suite's earlier rule for tiny smoke inputs) first shrinks the totals to ``min(4096, P // 16)``
and ``min(1024, P // 64)`` for P labelled anchor pixels in the batch (at upstream's per-process
batch, 2 x 64 x 64 anchors, that is 512 / 128). K is ``num_classes``, else the teacher
classifier's output count, else the largest label seen + 1 (the queues then grow).
Cost per step is O(P * contrast_size * C) for P anchors; queue memory is K * (pixel + region
memory) * C floats. All sizes are options.
Attach points: ``logits`` (kd), ``head_feature`` (relations, memory). Ground truth: yes (the
memory term's class queues and its anchor selection). Re-implementation: no.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from baselines._common import (
    IGNORE_INDEX,
    ReusesTeacherClassifier,
    align_to_teacher,
    prefixed,
    resize_gt,
    resize_to,
    resolve_options,
)
from baselines.kd import kd_spec
from suite.methods.divergences import softmax_kl
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import GT_SEG, LossSpec, MethodSpec, S, T

CONTRAST_SIZE_RULES = ("fixed", "auto")


@LOSSES.register_module(name="cirkd_minibatch")
class MiniBatchPixelPairLoss(nn.Module):
    """Cross-image pixel-to-pixel relation KL over every (ordered) image pair of the batch."""

    def __init__(self, tau: float = 0.1, pooling: bool = False, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.tau = tau
        self.pooling = pooling
        self.loss_weight = loss_weight

    def forward(self, preds_S: Tensor, preds_T: Tensor) -> Tensor:
        preds_S, preds_T = align_to_teacher(preds_S, preds_T)
        if self.pooling:
            preds_S = F.avg_pool2d(preds_S, 2, 2, ceil_mode=True)
            preds_T = F.avg_pool2d(preds_T, 2, 2, ceil_mode=True)
        s = F.normalize(preds_S, p=2, dim=1).flatten(2)  # N x C x M
        t = F.normalize(preds_T, p=2, dim=1).flatten(2)
        n, m = s.shape[0], s.shape[2]
        total = preds_S.new_zeros(())
        for a in range(n):  # one anchor image at a time: memory O(N * M^2)
            sim_s = torch.einsum("ci,bcj->bij", s[a], s) / self.tau
            sim_t = torch.einsum("ci,bcj->bij", t[a], t) / self.tau
            total = total + softmax_kl(sim_s, sim_t, 2).sum() / m
        return self.loss_weight * total / (n * n)


@LOSSES.register_module(name="cirkd_memory")
class MemoryContrastLoss(ReusesTeacherClassifier, nn.Module):
    """Pixel-to-pixel and pixel-to-region contrast against class queues of teacher embeddings.

    Returns ``loss_weight * (pixel_weight * L_pixel + region_weight * L_region)``; the factory
    puts the pixel weight in ``loss_weight`` and the region/pixel ratio in ``region_weight``.
    """

    def __init__(self, student_channels: int, teacher_channels: int,
                 num_classes: int | None = None, pixel_memory_size: int = 20000,
                 region_memory_size: int = 2000, pixel_contrast_size: int = 4096,
                 region_contrast_size: int = 1024, contrast_size_rule: str = "fixed",
                 teacher_classifier: nn.Module | None = None, pixel_update_freq: int = 16,
                 contrast_tau: float = 0.1, contrast_kd_tau: float = 1.0,
                 pixel_weight: float = 1.0, region_weight: float = 1.0,
                 ignore_index: int = IGNORE_INDEX, loss_weight: float = 1.0) -> None:
        super().__init__()
        if contrast_size_rule not in CONTRAST_SIZE_RULES:
            raise ValueError(f"contrast_size_rule must be one of {CONTRAST_SIZE_RULES}, "
                             f"got {contrast_size_rule!r}")
        if num_classes is None:  # the teacher's classifier knows the class count
            num_classes = getattr(teacher_classifier, "out_channels", None)
        self.project_head = nn.Sequential(
            nn.Conv2d(student_channels, teacher_channels, 1, bias=False),
            nn.BatchNorm2d(teacher_channels), nn.ReLU(inplace=True),
            nn.Conv2d(teacher_channels, teacher_channels, 1, bias=False))
        self.dim = teacher_channels
        self.pixel_memory_size = pixel_memory_size
        self.region_memory_size = region_memory_size
        self.pixel_contrast_size = pixel_contrast_size
        self.region_contrast_size = region_contrast_size
        self.contrast_size_rule = contrast_size_rule
        self.pixel_update_freq = pixel_update_freq
        self.contrast_tau = contrast_tau
        self.contrast_kd_tau = contrast_kd_tau
        self.pixel_weight = pixel_weight
        self.region_weight = region_weight
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight
        k = num_classes or 0
        self.register_buffer("pixel_queue", self._random_queue(k, pixel_memory_size),
                             persistent=False)
        self.register_buffer("pixel_ptr", torch.zeros(k, dtype=torch.long), persistent=False)
        self.register_buffer("region_queue", self._random_queue(k, region_memory_size),
                             persistent=False)
        self.register_buffer("region_ptr", torch.zeros(k, dtype=torch.long), persistent=False)
        self.fixed_classes = num_classes is not None

    def _random_queue(self, k: int, size: int, like: Tensor | None = None) -> Tensor:
        q = torch.randn(k, size, self.dim)
        if like is not None:
            q = q.to(like)
        return F.normalize(q, p=2, dim=2)

    @torch.no_grad()
    def _grow(self, num_classes: int) -> None:
        k = self.pixel_queue.shape[0]
        if num_classes <= k:
            return
        if self.fixed_classes:
            raise ValueError(f"label {num_classes - 1} >= num_classes={k}")
        extra = num_classes - k
        self.pixel_queue = torch.cat(
            [self.pixel_queue, self._random_queue(extra, self.pixel_memory_size, self.pixel_queue)])
        self.region_queue = torch.cat(
            [self.region_queue,
             self._random_queue(extra, self.region_memory_size, self.region_queue)])
        self.pixel_ptr = torch.cat([self.pixel_ptr, self.pixel_ptr.new_zeros(extra)])
        self.region_ptr = torch.cat([self.region_ptr, self.region_ptr.new_zeros(extra)])

    @torch.no_grad()
    def _enqueue(self, t_feat: Tensor, labels: Tensor) -> None:
        for feat, lab in zip(t_feat.flatten(2), labels.flatten(1)):  # C x M, M
            for cls in torch.unique(lab).tolist():
                if cls == self.ignore_index:
                    continue
                idx = (lab == cls).nonzero(as_tuple=True)[0]
                ptr = int(self.region_ptr[cls])
                self.region_queue[cls, ptr] = F.normalize(feat[:, idx].mean(1), dim=0)
                self.region_ptr[cls] = (ptr + 1) % self.region_memory_size
                take = idx[torch.randperm(idx.numel(), device=idx.device)[:self.pixel_update_freq]]
                k = take.numel()
                ptr = int(self.pixel_ptr[cls])
                vals = F.normalize(feat[:, take].t(), dim=1)
                if ptr + k >= self.pixel_memory_size:
                    self.pixel_queue[cls, -k:] = vals
                    self.pixel_ptr[cls] = 0
                else:
                    self.pixel_queue[cls, ptr:ptr + k] = vals
                    self.pixel_ptr[cls] = (ptr + k) % self.pixel_memory_size

    def contrast_sizes(self, num_anchors: int) -> tuple[int, int]:
        """Queue entries sampled *per class* for the pixel and region contrast.

        ``total // K + 1`` per class (upstream's split of its 4096 / 1024), the totals first
        shrunk to ``P // 16`` / ``P // 64`` under the ``"auto"`` rule; at most the queue length.
        """
        k = max(1, self.pixel_queue.shape[0])
        pix, reg = self.pixel_contrast_size, self.region_contrast_size
        if self.contrast_size_rule == "auto":
            pix, reg = min(pix, num_anchors // 16), min(reg, num_anchors // 64)
        return (min(pix // k + 1, self.pixel_memory_size),
                min(reg // k + 1, self.region_memory_size))

    def _contrast_kd(self, s: Tensor, t: Tensor, bank: Tensor) -> Tensor:
        logit_s = s @ bank.t() / self.contrast_tau
        logit_t = t @ bank.t() / self.contrast_tau
        tau = self.contrast_kd_tau
        return softmax_kl(logit_s / tau, logit_t / tau, 1).mean() * tau**2

    def forward(self, preds_S: Tensor, preds_T: Tensor, gt_seg: Tensor) -> Tensor:
        t = F.normalize(preds_T.detach(), p=2, dim=1)
        s = F.normalize(resize_to(self.project_head(preds_S), t.shape[-2:]), p=2, dim=1)
        labels = resize_gt(gt_seg, t.shape[-2:])
        valid = labels != self.ignore_index
        if valid.any():
            self._grow(int(labels[valid].max()) + 1)
        if self.training:
            self._enqueue(t, labels)
        if not valid.any() or self.pixel_queue.shape[0] == 0:
            return 0.0 * s.sum()
        s_vec = s.permute(0, 2, 3, 1)[valid]  # P x C
        t_vec = t.permute(0, 2, 3, 1)[valid]
        n_pix, n_reg = self.contrast_sizes(s_vec.shape[0])
        pix = self.pixel_queue[:, torch.randperm(self.pixel_memory_size, device=s.device)[:n_pix]]
        reg = self.region_queue[:, torch.randperm(self.region_memory_size, device=s.device)[:n_reg]]
        l_pixel = self._contrast_kd(s_vec, t_vec, pix.reshape(-1, self.dim))
        l_region = self._contrast_kd(s_vec, t_vec, reg.reshape(-1, self.dim))
        return self.loss_weight * (self.pixel_weight * l_pixel + self.region_weight * l_region)


DEFAULTS: dict[str, Any] = {
    "kd_weight": 1.0, "tau": 1.0,
    "minibatch_weight": 1.0, "minibatch_tau": 0.1, "pooling": False,
    "pixel_memory_weight": 0.1, "region_memory_weight": 0.1,
    "num_classes": None, "pixel_memory_size": 20000, "region_memory_size": 2000,
    "pixel_contrast_size": 4096, "region_contrast_size": 1024, "contrast_size_rule": "fixed",
    "contrast_tau": 0.1, "contrast_kd_tau": 1.0,
}


@METHODS.register_module(name="cirkd")
def cirkd(options: dict[str, Any] | None = None) -> MethodSpec:
    """CIRKD: pixel KD + mini-batch pixel relations + memory-bank pixel/region contrast."""
    o = resolve_options("cirkd", options, DEFAULTS)
    losses = {
        "loss_cirkd_kd": kd_spec(o["kd_weight"], o["tau"]),
        "loss_cirkd_minibatch": LossSpec(
            type="cirkd_minibatch", weight=float(o["minibatch_weight"]),
            inputs={"preds_S": S("head_feature"), "preds_T": T("head_feature")},
            kwargs={"tau": o["minibatch_tau"], "pooling": o["pooling"]}),
    }
    pw, rw = float(o["pixel_memory_weight"]), float(o["region_memory_weight"])
    if pw or rw:
        weight, ratios = (pw, (1.0, rw / pw)) if pw else (rw, (0.0, 1.0))
        losses["loss_cirkd_memory"] = LossSpec(
            type="cirkd_memory", weight=weight,
            inputs={"preds_S": S("head_feature"), "preds_T": T("head_feature"), "gt_seg": GT_SEG},
            kwargs={"num_classes": o["num_classes"],
                    "pixel_memory_size": o["pixel_memory_size"],
                    "region_memory_size": o["region_memory_size"],
                    "pixel_contrast_size": o["pixel_contrast_size"],
                    "region_contrast_size": o["region_contrast_size"],
                    "contrast_size_rule": o["contrast_size_rule"],
                    "contrast_tau": o["contrast_tau"], "contrast_kd_tau": o["contrast_kd_tau"],
                    "pixel_weight": ratios[0], "region_weight": ratios[1]},
            channels_from="head_feature")
    return MethodSpec(
        name="cirkd", losses=losses, needs_gt=bool(pw or rw), reimplementation=False,
        unverified=["memory weights 0.1/0.1 are upstream's Cityscapes values (VOC: 0.01/0.01)"],
        assumptions=prefixed("cirkd", {
            "num_classes": o["num_classes"], "pixel_memory_size": o["pixel_memory_size"],
            "region_memory_size": o["region_memory_size"],
            "contrast_sizes": (f"{o['pixel_contrast_size']} pixel / {o['region_contrast_size']} "
                               "region entries in all, size // K + 1 per class"
                               + (" (upstream)" if o["contrast_size_rule"] == "fixed" else
                                  ", totals shrunk to P//16 and P//64 anchors (not upstream)")),
            "contrast_size_rule": o["contrast_size_rule"]}),
        paper="C. Yang, H. Zhou, Z. An, X. Jiang, Y. Xu, Q. Zhang, CVPR 2022, Cross-image "
              "relational knowledge distillation for semantic segmentation",
    )
