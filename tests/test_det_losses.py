"""The detection KD losses against independent computations of their official semantics.

Each reference below re-derives, with elementary torch ops on small random tensors, what the
named upstream code computes (yzd-v/FGD ``fgd.py``, MMRazor ``pkd_loss.py``, mmdet
``ld_head.py``/``kd_loss.py``, CrossKD ``crosskd_gfl.py``/``kd_loss.py``); GID has no official
code and is checked against its paper's formulas. Values, student gradients, no teacher
gradient, and zero loss for identical inputs where that holds.
"""

from __future__ import annotations

import pytest
import torch
from loss_fixtures import float64_default, ref_softmax
from torch import Tensor, nn

from baselines.det_crosskd import CrossKDClsLoss, CrossKDRegGFLLoss
from baselines.det_fgd import DetFGDLoss, box_masks
from baselines.det_gid import GIDLoss, select_general_instances
from baselines.det_ld import LDLoss
from baselines.pkd import PKDLoss
from suite.methods.registry import LOSSES

_float64 = pytest.fixture(autouse=True)(float64_default)
# mmdet's weight_reduce_loss divides by avg_factor + float32 eps
_EPS = torch.finfo(torch.float32).eps


def _leaf(x: Tensor) -> Tensor:
    return x.detach().clone().requires_grad_(True)


def _randn(*shape: int, seed: int = 0, scale: float = 1.0, shift: float = 0.0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g) + shift).requires_grad_(True)


def _grad(out: Tensor, x: Tensor) -> Tensor:
    out.backward()
    assert x.grad is not None
    return x.grad


def _sigmoid(x: Tensor) -> Tensor:
    return 1.0 / (1.0 + (-x).exp())


def test_every_detection_loss_is_registered() -> None:
    for name in ("det_fgd", "pkd", "det_ld", "det_crosskd_cls", "det_crosskd_reg_gfl", "det_gid"):
        assert LOSSES.get(name) is not None, name


# ------------------------------------------------------------------ FGD (yzd-v/FGD fgd.py)
def test_fgd_masks_on_a_hand_made_box_layout() -> None:
    # 32 x 32 image, 4 x 4 map (stride 8); box A (0,0)-(8,8) -> cells [0..1]x[0..1] (area 4),
    # box B (4,4)-(20,12) -> x 0..3, y 0..2 (area 12): the overlap keeps A's 1/4
    boxes = [torch.tensor([[0.0, 0.0, 8.0, 8.0], [4.0, 4.0, 20.0, 12.0]]), torch.zeros(0, 4)]
    m_fg, m_bg = box_masks(boxes, [(32, 32), (32, 32)], 4, 4)
    expect = torch.zeros(4, 4)
    expect[0:3, 0:4] = 1 / 12
    expect[0:2, 0:2] = 1 / 4
    assert torch.allclose(m_fg[0], expect)
    assert torch.allclose(m_bg[0], (expect == 0).double() / 4)
    assert (m_fg[1] == 0).all() and torch.allclose(m_bg[1], torch.full((4, 4), 1 / 16))


def _fgd_level_official(s: Tensor, t: Tensor, m_fg: Tensor, m_bg: Tensor, temp: float,
                        w: tuple[float, float, float, float]) -> Tensor:
    """``FeatureLoss.forward`` with the GcBlocks at their initialisation (identity)."""
    n, c, h, wd = t.shape
    def att(x: Tensor) -> tuple[Tensor, Tensor]:
        v = x.abs()
        sp = h * wd * ref_softmax(v.mean(1).reshape(n, -1) / temp, 1).reshape(n, h, wd)
        return sp, c * ref_softmax(v.mean((2, 3)) / temp, 1)
    s_t, c_t = att(t)
    s_s, c_s = att(s)
    a = s_t.sqrt()[:, None] * c_t.sqrt()[:, :, None, None]
    fg = ((s * a * m_fg.sqrt()[:, None] - t * a * m_fg.sqrt()[:, None]) ** 2).sum() / n
    bg = ((s * a * m_bg.sqrt()[:, None] - t * a * m_bg.sqrt()[:, None]) ** 2).sum() / n
    mask = (c_s - c_t).abs().sum() / n + (s_s - s_t).abs().sum() / n
    rela = ((s - t) ** 2).sum() / n
    return w[0] * fg + w[1] * bg + w[2] * mask + w[3] * rela


def test_det_fgd_matches_the_official_loss_summed_over_levels() -> None:
    w = (1e-3, 5e-4, 5e-4, 5e-6)
    feats_s = [_randn(2, 4, 8, 8, seed=1), _randn(2, 4, 4, 4, seed=2)]
    feats_t = [_randn(2, 4, 8, 8, seed=3, scale=2.0), _randn(2, 4, 4, 4, seed=4)]
    boxes = [torch.tensor([[3.0, 5.0, 30.0, 40.0]]), torch.tensor([[0.0, 0.0, 60.0, 20.0],
                                                                   [10.0, 30.0, 50.0, 63.0]])]
    loss = DetFGDLoss([4, 4], [4, 4], loss_weight=2.0)
    assert (loss.temp, loss.alpha, loss.beta, loss.gamma, loss.lambda_) == (0.5, *w)
    out = loss(feats_s, feats_t, boxes, (64, 64))
    refs_s = [_leaf(f) for f in feats_s]
    ref = 0.0
    for s, t in zip(refs_s, feats_t):
        m_fg, m_bg = box_masks(boxes, [(64, 64)] * 2, *t.shape[-2:])
        ref = ref + _fgd_level_official(s, t.detach(), m_fg.double(), m_bg.double(), 0.5, w)
    ref = 2.0 * ref
    assert out.item() == pytest.approx(ref.item(), rel=1e-9)
    out.backward()
    ref.backward()
    for f, r in zip(feats_s, refs_s):
        assert torch.allclose(f.grad, r.grad, atol=1e-12)
    assert all(t.grad is None for t in feats_t)
    same = [f.detach() for f in feats_t]
    assert DetFGDLoss(4, 4, num_levels=2)(same, same, boxes, (64, 64)).item() == pytest.approx(0)


def test_det_fgd_aligns_the_student_width_per_level() -> None:
    loss = DetFGDLoss(3, 5, num_levels=3)
    assert len(loss.align) == 3 and all(isinstance(a, nn.Conv2d) for a in loss.align)
    out = loss([_randn(1, 3, 4, 4)], [_randn(1, 5, 4, 4, seed=1)], [torch.zeros(0, 4)], (32, 32))
    out.backward()
    assert loss.align[0].weight.grad is not None


# ------------------------------------------------------------------ PKD (MMRazor pkd_loss.py)
def _pkd_official(s: Tensor, t: Tensor) -> Tensor:
    def norm(x: Tensor) -> Tensor:
        out = torch.empty_like(x)
        for c in range(x.shape[1]):
            v = x[:, c]
            m = v.numel()
            mean = v.sum() / m
            std = ((v - mean) ** 2).sum().div(m - 1).sqrt()
            out[:, c] = (v - mean) / (std + 1e-6)
        return out
    return ((norm(s) - norm(t)) ** 2).mean() / 2


def test_pkd_on_fpn_levels_matches_mmrazor() -> None:
    feats_s = [_randn(2, 3, 8, 8, seed=i, shift=i) for i in range(5)]
    feats_t = [_randn(2, 3, 8 // 2 ** min(i, 1), 8 // 2 ** min(i, 1), seed=10 + i, scale=3.0)
               for i in range(5)]
    loss = PKDLoss(loss_weight=10.0, levels=(0, 1, 2, 3))
    out = loss(feats_s, feats_t)
    refs = [_leaf(f) for f in feats_s]
    interp = torch.nn.functional.interpolate
    ref = 10.0 * sum(_pkd_official(s if s.shape == t.shape else interp(s, t.shape[-2:],
                                                                          mode="bilinear"),
                                   t.detach())
                     for s, t in zip(refs[:4], feats_t[:4]))
    assert out.item() == pytest.approx(ref.item(), rel=1e-9)
    out.backward()
    ref.backward()
    for f, r in zip(feats_s[:4], refs[:4]):
        assert torch.allclose(f.grad, r.grad, atol=1e-12)
    assert feats_s[4].grad is None and all(t.grad is None for t in feats_t)
    same = [f.detach() for f in feats_t]
    assert PKDLoss()(same, same).item() == pytest.approx(0, abs=1e-12)


# ------------------------------------------------------------------ LD (mmdet ld_head.py)
def test_ld_is_mmdets_ldhead_loss() -> None:
    reg_max, tau = 4, 10.0
    b_s = [_randn(2, 4 * (reg_max + 1), 3, 3, seed=1), _randn(2, 4 * (reg_max + 1), 2, 2, seed=2)]
    b_t = [_randn(2, 4 * (reg_max + 1), 3, 3, seed=3), _randn(2, 4 * (reg_max + 1), 2, 2, seed=4)]
    c_s = [_randn(2, 3, 3, 3, seed=5), _randn(2, 3, 2, 2, seed=6)]
    pos = [torch.rand(2, 3, 3, generator=torch.Generator().manual_seed(0)) > 0.4,
           torch.ones(2, 2, 2, dtype=torch.bool)]
    loss = LDLoss(T=tau, reg_max=reg_max)
    assert loss.loss_weight == 0.25 and loss.kd.T == 10
    out = loss(b_s, b_t, c_s, pos)
    refs = [_leaf(b) for b in b_s]
    ref = 0.0
    for s, t, c, m in zip(refs, b_t, c_s, pos):
        for n in range(s.shape[0]):
            for y in range(s.shape[2]):
                for x in range(s.shape[3]):
                    if not m[n, y, x]:
                        continue
                    w = _sigmoid(c[n, :, y, x].detach()).max()
                    for e in range(4):
                        sl = slice(e * (reg_max + 1), (e + 1) * (reg_max + 1))
                        p = ref_softmax(t[n, sl, y, x].detach() / tau, 0)
                        q = ref_softmax(s[n, sl, y, x] / tau, 0)
                        kl = (p * (p.log() - q.log())).mean() * tau**2
                        ref = ref + 0.25 * w * kl / (4 + _EPS)
    assert out.item() == pytest.approx(ref.item(), rel=1e-9)
    out.backward()
    ref.backward()
    for b, r in zip(b_s, refs):
        assert torch.allclose(b.grad, r.grad, atol=1e-12)
    assert all(t.grad is None for t in b_t) and all(c.grad is None for c in c_s)
    same = [b.detach() for b in b_t]
    assert loss(same, same, c_s).item() == pytest.approx(0, abs=1e-12)


def test_ld_with_several_anchors_and_class_kd_is_the_retinanet_recipe() -> None:
    """LDRetinaHead's semantics: A anchors a location, each with 4 edge distributions and C
    class logits; LD weighted by the student's best class score; class KD (softmax over the
    classes, T^2, mean over classes) summed over a level's positives / their count."""
    reg_max, tau, tau_c, anchors, classes = 3, 10.0, 8.0, 2, 3
    b_s = [_randn(1, anchors * 4 * (reg_max + 1), 2, 3, seed=1)]
    b_t = [_randn(1, anchors * 4 * (reg_max + 1), 2, 3, seed=2)]
    c_s = [_randn(1, anchors * classes, 2, 3, seed=3)]
    c_t = [_randn(1, anchors * classes, 2, 3, seed=4)]
    pos = [torch.tensor([[1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0]], dtype=torch.bool)]
    loss = LDLoss(T=tau, reg_max=reg_max, loss_weight=5.0, cls_weight=10.0, cls_T=tau_c)
    out = loss(b_s, b_t, c_s, pos, cls_scores_T=c_t)
    s_ref = _leaf(b_s[0])
    cs_ref = _leaf(c_s[0])
    ld = kd = 0.0
    n_pos = int(pos[0].sum())
    for y in range(2):
        for x in range(3):
            for a in range(anchors):
                if not pos[0][0, (y * 3 + x) * anchors + a]:
                    continue
                cls = slice(a * classes, (a + 1) * classes)
                w = _sigmoid(c_s[0][0, cls, y, x].detach()).max()
                for e in range(4):
                    start = (a * 4 + e) * (reg_max + 1)
                    sl = slice(start, start + reg_max + 1)
                    p = ref_softmax(b_t[0][0, sl, y, x].detach() / tau, 0)
                    q = ref_softmax(s_ref[0, sl, y, x] / tau, 0)
                    ld = ld + 5.0 * w * (p * (p.log() - q.log())).mean() * tau**2 / (4 + _EPS)
                p = ref_softmax(c_t[0][0, cls, y, x].detach() / tau_c, 0)
                q = ref_softmax(cs_ref[0, cls, y, x] / tau_c, 0)
                kd = kd + 10.0 * (p * (p.log() - q.log())).mean() * tau_c**2 / (n_pos + _EPS)
    assert out.item() == pytest.approx((ld + kd).item(), rel=1e-9)
    out.backward()
    (ld + kd).backward()
    assert torch.allclose(b_s[0].grad, s_ref.grad, atol=1e-12)
    assert torch.allclose(c_s[0].grad, cs_ref.grad, atol=1e-12)
    assert b_t[0].grad is None and c_t[0].grad is None
    same_b, same_c = [b_t[0].detach()], [c_t[0].detach()]
    assert loss(same_b, same_b, same_c, pos, cls_scores_T=same_c).item() == pytest.approx(
        0, abs=1e-12)


# ------------------------------------------------------------------ CrossKD (crosskd_gfl.py)
def _align_official(x: Tensor, ref: Tensor) -> Tensor:
    out = torch.empty_like(x)
    for c in range(x.shape[1]):
        v, u = x[:, c], ref[:, c]
        m = v.numel()
        mv, mu = v.sum() / m, u.sum() / m
        sv = ((v - mv) ** 2).sum().div(m - 1).sqrt()
        su = ((u - mu) ** 2).sum().div(m - 1).sqrt()
        out[:, c] = (v - mv) / (sv + 1e-6) * su + mu
    return out


def _crossed(head: nn.Conv2d, f_s: Tensor, f_t: Tensor) -> Tensor:
    x = _align_official(f_s, f_t).clamp(min=0)
    return (torch.einsum("oc,nchw->nohw", head.weight.detach()[:, :, 0, 0], x)
            + head.bias.detach()[None, :, None, None])


def test_crosskd_cls_is_kd_quality_focal_on_the_crossed_scores() -> None:
    heads = [nn.Conv2d(4, 3, 1), nn.Conv2d(4, 3, 1)]
    f_s = [_randn(2, 4, 3, 3, seed=1, scale=0.5, shift=2.0), _randn(2, 4, 2, 2, seed=2)]
    f_t = [_randn(2, 4, 3, 3, seed=3, scale=3.0), _randn(2, 4, 2, 2, seed=4)]
    z_t = [_randn(2, 3, 3, 3, seed=5), _randn(2, 3, 2, 2, seed=6)]
    lw = [torch.ones(2, 3, 3), torch.ones(2, 2, 2)]
    lw[0][0, 0, 0] = 0
    loss = LOSSES.get("det_crosskd_cls")(teacher_head=heads)
    out = loss(f_s, f_t, z_t, label_weights=lw, avg_factor=3.0)
    refs = [_leaf(f) for f in f_s]
    ref = 0.0
    for i, (s, t, zt) in enumerate(zip(refs, f_t, z_t)):
        zx = _crossed(heads[i], s, t.detach())
        p = _sigmoid(zt.detach())
        q = _sigmoid(zx)
        bce = -(p * q.log() + (1 - p) * (1 - q).log())
        ref = ref + (bce * (q - p).abs() * lw[i][:, None]).sum()
    ref = ref / (3.0 + _EPS)
    assert out.item() == pytest.approx(ref.item(), rel=1e-9)
    out.backward()
    ref.backward()
    for f, r in zip(f_s, refs):
        assert torch.allclose(f.grad, r.grad, atol=1e-12)
    assert all(t.grad is None for t in f_t + z_t)
    assert all(h.weight.grad is None for h in heads)
    # the teacher's own feature through its own layers: zero (the focal factor vanishes)
    same_t = [f.detach() for f in f_t]
    z_same = [h(t.clamp(min=0)).detach() for h, t in zip(heads, same_t)]
    assert CrossKDClsLoss(heads)(same_t, same_t, z_same).item() == pytest.approx(0, abs=1e-6)


def test_crosskd_gfl_regression_is_the_weighted_ld_kl() -> None:
    reg_max = 3
    head = nn.Conv2d(4, 4 * (reg_max + 1), 1)
    f_s = [_randn(2, 4, 3, 3, seed=1)]
    f_t = [_randn(2, 4, 3, 3, seed=2, scale=2.0)]
    b_t = [_randn(2, 4 * (reg_max + 1), 3, 3, seed=3)]
    c_t = [_randn(2, 3, 3, 3, seed=4)]
    loss = CrossKDRegGFLLoss(head, reg_max=reg_max)
    assert loss.loss_weight == 4.0
    out = loss(f_s, f_t, b_t, c_t)
    s = _leaf(f_s[0])
    bx = _crossed(head, s, f_t[0].detach())
    num = den = 0.0
    for n in range(2):
        for y in range(3):
            for x in range(3):
                w = _sigmoid(c_t[0][n, :, y, x].detach().max())
                den = den + w
                for e in range(4):
                    sl = slice(e * (reg_max + 1), (e + 1) * (reg_max + 1))
                    p = ref_softmax(b_t[0][n, sl, y, x].detach(), 0)
                    q = ref_softmax(bx[n, sl, y, x], 0)
                    num = num + 4.0 * w * (p * (p.log() - q.log())).sum() / (4 + _EPS)
    ref = num / den
    assert out.item() == pytest.approx(ref.item(), rel=1e-9)
    assert torch.allclose(_grad(out, f_s[0]), _grad(ref, s), atol=1e-12)
    assert f_t[0].grad is None and b_t[0].grad is None and head.weight.grad is None


# ------------------------------------------------------------------ GID (paper, re-impl.)
def _grid(h: int, w: int, stride: int, size: float) -> Tensor:
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    cx, cy = (xs.reshape(-1) + 0.5) * stride, (ys.reshape(-1) + 0.5) * stride
    return torch.stack([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2], 1).double()


def _gid_inputs(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    sizes, strides = [(8, 8), (4, 4)], (8, 16)
    priors = [_grid(h, w, s, 4.0 * s) for (h, w), s in zip(sizes, strides)]
    def boxes() -> list[Tensor]:
        return [(p + 3 * torch.randn(p.shape, generator=g)).expand(2, -1, -1) for p in priors]
    return {
        "preds_S": [_randn(2, 4, h, w, seed=seed + 1 + i) for i, (h, w) in enumerate(sizes)],
        "preds_T": [_randn(2, 4, h, w, seed=seed + 11 + i) for i, (h, w) in enumerate(sizes)],
        "cls_scores_S": [_randn(2, 3, h, w, seed=seed + 21 + i) for i, (h, w) in enumerate(sizes)],
        "cls_scores_T": [_randn(2, 3, h, w, seed=seed + 31 + i) for i, (h, w) in enumerate(sizes)],
        "bbox_preds_S": [_randn(2, 4, h, w, seed=seed + 41 + i) for i, (h, w) in enumerate(sizes)],
        "bbox_preds_T": [_randn(2, 4, h, w, seed=seed + 51 + i) for i, (h, w) in enumerate(sizes)],
        "boxes_S": boxes(), "boxes_T": boxes(), "priors": priors,
    }


def _nms_ref(boxes: Tensor, scores: Tensor, thr: float) -> list[int]:
    order = scores.argsort(descending=True).tolist()
    keep: list[int] = []
    for i in order:
        b = boxes[i]
        ok = True
        for j in keep:
            c = boxes[j]
            iw = (torch.minimum(b[2], c[2]) - torch.maximum(b[0], c[0])).clamp(min=0)
            ih = (torch.minimum(b[3], c[3]) - torch.maximum(b[1], c[1])).clamp(min=0)
            inter = iw * ih
            union = (b[2] - b[0]) * (b[3] - b[1]) + (c[2] - c[0]) * (c[3] - c[1]) - inter
            ok = ok and bool(inter / union <= thr)
        if ok:
            keep.append(i)
    return keep


def test_gid_selects_the_most_disagreeing_boxes_after_nms() -> None:
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(40, 3, generator=g), torch.randn(40, 3, generator=g)
    centre = torch.rand(40, 2, generator=g) * 60
    b_s = torch.cat([centre, centre + 12], 1)
    b_t = b_s + torch.randn(40, 4, generator=g)
    got = select_general_instances(s, t, b_s, b_t, topk=5, nms_iou=0.3)
    ps, pt = _sigmoid(s), _sigmoid(t)
    score = (pt - ps).abs().max(1)[0]
    boxes = torch.stack([b_t[i] if pt[i].max() >= ps[i].max() else b_s[i] for i in range(40)])
    keep = _nms_ref(boxes, score, 0.3)[:5]
    assert torch.allclose(got, boxes[keep].to(got))


def test_gid_terms_follow_the_paper_and_vanish_for_identical_inputs() -> None:
    inp = _gid_inputs()
    loss = GIDLoss(4, 4, strides=(8, 16))
    assert (loss.feat_weight, loss.rel_weight, loss.cls_weight, loss.reg_weight) == \
        (5e-4, 40.0, 0.1, 1.0)
    t = loss.terms(*[inp[k] for k in ("preds_S", "preds_T", "cls_scores_S", "cls_scores_T",
                                      "bbox_preds_S", "bbox_preds_T", "boxes_S", "boxes_T",
                                      "priors")])
    assert all(v.item() > 0 for v in t.values())
    out = loss(**inp)
    out.backward()
    # the GIs (32-64 px) all fall on the first level by the FPN rule
    assert all(x.grad is not None for x in inp["preds_S"][:1] + inp["cls_scores_S"]
               + inp["bbox_preds_S"])
    assert all(x.grad is None for x in inp["preds_T"] + inp["cls_scores_T"] + inp["bbox_preds_T"])
    same = {k: [x.detach() for x in v] for k, v in _gid_inputs(seed=5).items()}
    for side in ("preds", "cls_scores", "bbox_preds", "boxes"):
        same[f"{side}_S"] = same[f"{side}_T"]
    # identical scores: every GI score is 0; the NMS still keeps boxes, all terms are 0
    assert loss(**same).item() == pytest.approx(0, abs=1e-9)


def test_gid_relation_term_is_the_normalised_distance_smooth_l1() -> None:
    from baselines.det_gid import relation_loss
    e_s, e_t = _randn(4, 6, seed=1), _randn(4, 6, seed=2, scale=3.0)
    out = relation_loss(e_s, e_t)
    def dist(e: Tensor) -> Tensor:
        d = torch.stack([torch.stack([(e[i] - e[j]).pow(2).sum().sqrt() if i != j
                                      else e.new_zeros(()) for j in range(4)]) for i in range(4)])
        return d / (d.sum() / 12)
    diff = (dist(e_s) - dist(e_t.detach())).abs()
    ref = torch.where(diff < 1, 0.5 * diff**2, diff - 0.5).mean()
    assert out.item() == pytest.approx(ref.item(), rel=1e-9)
