"""FGD for detection — focal and global distillation on every FPN level.

Paper: Z. Yang, Z. Li, X. Jiang, Y. Gong, Z. Yuan, D. Zhao, C. Yuan, "Focal and global
knowledge distillation for detectors", CVPR 2022. Reference code: yzd-v/FGD (mmdet 2.x,
``mmdet/distillation/losses/fgd.py`` ``FeatureLoss``; configs
``configs/distillers/fgd/fgd_{retina,gfl}_r101_*``), read for the formulas below.

Per FPN level l (student aligned to the teacher's width by a 1x1 conv when they differ), with
the attention maps S, C and the GcBlocks G_S, G_T of :mod:`baselines.fgkd` (shared code)::

    L_l = alpha L_fg + beta L_bg + gamma L_at + lambda L_gl        L = w * sum_l L_l

Masks from the GT boxes (image coordinates x1, y1, x2, y2) of each image: a box is mapped to the
level's grid (x * W / img_w, y * H / img_h), its corners floored (x1, y1) and ceiled (x2, y2);
the cells ``[y1, y2] x [x1, x2]`` (both ends included, clipped to the map) get
``1 / ((y2 + 1 - y1) * (x2 + 1 - x1))`` (1/area with the unclipped extent), the largest value
where boxes overlap; M_bg = 1 on the cells outside every box, divided by their count.
Reduction: every term summed over C*H*W and divided by N, per level; levels summed.
Defaults: alpha 1e-3, beta 5e-4, gamma 5e-4, lambda 5e-6, T 0.5 (upstream's RetinaNet and GFL
configs; its two-stage configs use 5e-5, 2.5e-5, 5e-5, 5e-7). Each level has its own 1x1
alignment conv and its own pair of GcBlocks, as upstream builds one ``FeatureLoss`` per level.
Attach point: ``fpn`` (the neck's outputs, upstream ``neck.fpn_convs.{0..4}.conv``); ``levels``
selects some of them (upstream's two-stage configs distil ``fpn_convs.{0..3}``, P2..P5).
Ground truth: yes (GT boxes and the padded batch input's image size).
Re-implementation: no (numerically the official loss; the teacher's maps are detached, so only
G_T's own weights learn from them). FGD's ``init_student`` (copying the teacher's neck/head into
the student) is not used.

Method ``fgd`` (detection), option ``two_stage``: ``False`` (default) = upstream's one-stage
configs (``fgd_retina_r101_*``, ``fgd_gfl_r101_*``: the weights above on all 5 FPN levels) for
GFL and RetinaNet; ``True`` = its two-stage configs (``fgd_cascade_mask_rcnn_*``,
``fgd_faster_rcnn_*``: 5e-5, 2.5e-5, 5e-5, 5e-7 on the first 4 levels) for Cascade Mask R-CNN
(a table passes ``options: {two_stage: true}`` on that block). ``alpha``/``beta``/``gamma``/
``lambda_``/``temp`` override the setting's values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from baselines._common import as_int_list, as_list, prefixed, resolve_options, width_adapter
from baselines.fgkd import GcBlock, fgd_terms
from suite.methods.registry import LOSSES, METHODS
from suite.methods.spec import GT_BOXES, IMG_SHAPES, LossSpec, MethodSpec, S, T, serves


def box_masks(gt_bboxes: Sequence[Tensor], img_shapes: Sequence[Sequence[int]], height: int,
              width: int) -> tuple[Tensor, Tensor]:
    """FGD's ``N x H x W`` foreground (1/box area, max over boxes) and background masks."""
    n = len(gt_bboxes)
    m_fg = torch.zeros(n, height, width)
    m_bg = torch.ones(n, height, width)
    for i, (boxes, (img_h, img_w)) in enumerate(zip(gt_bboxes, img_shapes)):
        b = boxes.detach().float().cpu()
        x1 = torch.floor(b[:, 0] / img_w * width).long()
        x2 = torch.ceil(b[:, 2] / img_w * width).long()
        y1 = torch.floor(b[:, 1] / img_h * height).long()
        y2 = torch.ceil(b[:, 3] / img_h * height).long()
        area = 1.0 / (y2 + 1 - y1).float() / (x2 + 1 - x1).float()
        for j in range(b.shape[0]):
            cell = m_fg[i, y1[j]:y2[j] + 1, x1[j]:x2[j] + 1]
            cell.copy_(torch.clamp(cell, min=float(area[j])))
        m_bg[i] = (m_fg[i] == 0).float()
        if m_bg[i].sum() > 0:
            m_bg[i] /= m_bg[i].sum()
    return m_fg, m_bg


def _img_shapes(img_shape: Sequence[int] | Sequence[Sequence[int]], n: int) -> list[list[int]]:
    """One ``(h, w)`` per image from a shared ``(h, w)`` or a per-image list."""
    if isinstance(img_shape[0], int | float):
        return [[int(img_shape[0]), int(img_shape[1])]] * n
    return [[int(s[0]), int(s[1])] for s in img_shape]


@LOSSES.register_module(name="det_fgd")
class DetFGDLoss(nn.Module):
    """FGD's focal + attention + global feature loss, summed over the FPN levels."""

    def __init__(self, student_channels: int | Sequence[int], teacher_channels: int | Sequence[int],
                 num_levels: int = 5, temp: float = 0.5, alpha: float = 1e-3, beta: float = 5e-4,
                 gamma: float = 5e-4, lambda_: float = 5e-6, loss_weight: float = 1.0,
                 levels: Sequence[int] | None = None) -> None:
        super().__init__()
        cs = as_int_list(student_channels, num_levels)
        ct = as_int_list(teacher_channels, num_levels)
        self.levels = None if levels is None else tuple(int(i) for i in levels)
        if self.levels is not None:  # modules only for the distilled levels (no unused weights)
            cs, ct = [cs[i] for i in self.levels], [ct[i] for i in self.levels]
        self.align = nn.ModuleList(width_adapter(s, t) for s, t in zip(cs, ct))
        self.gc_s = nn.ModuleList(GcBlock(t) for t in ct)
        self.gc_t = nn.ModuleList(GcBlock(t) for t in ct)
        self.temp, self.alpha, self.beta = temp, alpha, beta
        self.gamma, self.lambda_ = gamma, lambda_
        self.loss_weight = loss_weight

    def level_loss(self, level: int, feat_S: Tensor, feat_T: Tensor, gt_bboxes: Sequence[Tensor],
                   img_shapes: Sequence[Sequence[int]]) -> Tensor:
        feat_T = feat_T.detach()
        if feat_S.shape[-2:] != feat_T.shape[-2:]:
            raise ValueError(f"FGD level {level}: student {tuple(feat_S.shape[-2:])} and teacher "
                             f"{tuple(feat_T.shape[-2:])} maps differ in size")
        feat_S = self.align[level](feat_S)
        m_fg, m_bg = box_masks(gt_bboxes, img_shapes, *feat_T.shape[-2:])
        m_fg, m_bg = m_fg.to(feat_T), m_bg.to(feat_T)
        fg, bg, at, gl = fgd_terms(feat_S, feat_T, m_fg, m_bg, self.gc_s[level], self.gc_t[level],
                                   self.temp)
        return self.alpha * fg + self.beta * bg + self.gamma * at + self.lambda_ * gl

    def forward(self, preds_S: Tensor | Sequence[Tensor], preds_T: Tensor | Sequence[Tensor],
                gt_bboxes: Sequence[Tensor],
                img_shape: Sequence[int] | Sequence[Sequence[int]]) -> Tensor:
        """``gt_bboxes``: per image ``n_i x 4`` (x1, y1, x2, y2) in the input's pixels;
        ``img_shape``: the input's ``(h, w)`` (shared or per image)."""
        feats_S, feats_T = as_list(preds_S), as_list(preds_T)
        if self.levels is not None and len(feats_S) == len(feats_T):
            feats_S = [feats_S[i] for i in self.levels]
            feats_T = [feats_T[i] for i in self.levels]
        if len(feats_S) != len(feats_T) or len(feats_S) > len(self.align):
            raise ValueError(f"FGD: {len(feats_S)} student and {len(feats_T)} teacher levels for "
                             f"{len(self.align)} configured levels")
        shapes = _img_shapes(img_shape, feats_T[0].shape[0])
        total = sum(self.level_loss(i, s, t, gt_bboxes, shapes)
                    for i, (s, t) in enumerate(zip(feats_S, feats_T)))
        return self.loss_weight * total


# upstream's configs: one-stage (RetinaNet, GFL) and two-stage (Faster/Mask/Cascade R-CNN)
SETTINGS: dict[bool, dict[str, Any]] = {
    False: {"alpha": 1e-3, "beta": 5e-4, "gamma": 5e-4, "lambda_": 5e-6, "levels": None},
    True: {"alpha": 5e-5, "beta": 2.5e-5, "gamma": 5e-5, "lambda_": 5e-7, "levels": [0, 1, 2, 3]},
}
FGD_DEFAULTS: dict[str, Any] = {"two_stage": False, "temp": 0.5, "alpha": None, "beta": None,
                                "gamma": None, "lambda_": None, "weight": 1.0}


@METHODS.register_module(name="fgd")
@serves("detection")
def fgd(options: dict[str, Any] | None = None) -> MethodSpec:
    """FGD on the FPN levels with upstream's one-stage or two-stage weights (``two_stage``)."""
    o = resolve_options("fgd", options, FGD_DEFAULTS)
    setting = SETTINGS[bool(o["two_stage"])]
    weights = {k: float(setting[k] if o[k] is None else o[k])
               for k in ("alpha", "beta", "gamma", "lambda_")}
    kwargs: dict[str, Any] = {"temp": o["temp"], **weights}
    if setting["levels"] is not None:
        kwargs["levels"] = setting["levels"]
    which = "two-stage (fgd_cascade_mask_rcnn_*)" if o["two_stage"] else \
        "one-stage (fgd_retina_*, fgd_gfl_*)"
    return MethodSpec(
        name="fgd",
        losses={"loss_fgd": LossSpec(
            type="det_fgd", weight=float(o["weight"]),
            inputs={"preds_S": S("fpn"), "preds_T": T("fpn"), "gt_bboxes": GT_BOXES,
                    "img_shape": IMG_SHAPES},
            kwargs=kwargs, channels_from="fpn")},
        needs_gt=True, reimplementation=False,
        unverified=["init_student (copying the teacher's neck and head into the student) is not "
                    "used", "the setting (one- or two-stage weights) is the table's option, not "
                    "read from the detector"],
        assumptions=prefixed("fgd", {
            "task": "detection", "setting": which, **weights, "temp": o["temp"],
            "levels": "FPN P2..P5 (0-3)" if setting["levels"] else "all 5 FPN levels"}),
        paper="Z. Yang, Z. Li, X. Jiang, Y. Gong, Z. Yuan, D. Zhao, C. Yuan, CVPR 2022, Focal and "
              "global knowledge distillation for detectors",
    )
