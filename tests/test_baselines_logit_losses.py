"""Logit-level competing losses against hand computations: KD, CWD, SCKD, BPKD, SlimSeg's
boundary CE, C2VKD's PDD, CrossKD. Formulas are re-derived here with elementary torch ops."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from loss_fixtures import (
    assert_no_teacher_grad,
    dup,
    float64_default,
    random_labels,
    random_pair,
    ref_edges,
    ref_kl,
    ref_softmax,
)
from torch import nn

from baselines._common import label_edges, resize_gt
from baselines.bpkd import BPKDLoss
from baselines.c2vkd import PixelDecoupledKDLoss
from baselines.crosskd import CrossHeadKDLoss
from baselines.cwd import ChannelWiseDivergence
from baselines.kd import PixelKDLoss
from baselines.sckd import StudentCustomizedKDLoss
from baselines.slimseg import BoundaryCELoss

_float64 = pytest.fixture(autouse=True)(float64_default)
_pair = partial(random_pair, cs=5, ct=5, t_scale=2.0)  # student / teacher logits, 5 classes
_labels = partial(random_labels, k=5, ignored=2)


# ----------------------------------------------------------------------------------------- helpers
def test_label_edges_and_resize_gt() -> None:
    gt = _labels(h=6, w=6)
    for r in (1, 2):
        assert torch.equal(label_edges(gt, r), ref_edges(gt, r))
    big = torch.randint(0, 4, (2, 8, 8))
    assert torch.equal(resize_gt(big, (4, 4)), big[:, ::2, ::2])


# ---------------------------------------------------------------------------------------------- KD
@pytest.mark.parametrize("reduction", ["pixelmean", "mean", "batchmean", "sum"])
def test_kd_value(reduction: str) -> None:
    s, t = _pair()
    tau, w = 2.0, 3.0
    n, k, h, wd = s.shape
    per_pixel = torch.stack([ref_kl(ref_softmax(t[b, :, i, j] / tau, 0),
                                    ref_softmax(s[b, :, i, j] / tau, 0))
                             for b in range(n) for i in range(h) for j in range(wd)])
    total = per_pixel.sum()
    expected = {"pixelmean": total / (n * h * wd), "mean": total / (n * k * h * wd),
                "batchmean": total / n, "sum": total}[reduction] * tau**2 * w
    out = PixelKDLoss(tau=tau, reduction=reduction, loss_weight=w)(s, t)
    assert out.item() == pytest.approx(expected.item(), rel=1e-9)
    assert_no_teacher_grad(out, s, t)


def test_kd_zero_reduction_and_resize() -> None:
    s, t = _pair()
    loss = PixelKDLoss(tau=1.5)
    assert loss(t, t).item() == pytest.approx(0.0, abs=1e-12)
    assert loss(dup(s), dup(t)).item() == pytest.approx(loss(s, t).item(), rel=1e-9)
    doubled = PixelKDLoss(reduction="sum")(dup(s), dup(t)).item()
    assert doubled == pytest.approx(2 * PixelKDLoss(reduction="sum")(s, t).item(), rel=1e-9)
    small = torch.randn(2, 5, 2, 2)
    assert loss(small, t).dim() == 0  # a coarser student map is resized to the teacher's


# --------------------------------------------------------------------------------------------- CWD
def test_cwd_value_zero_and_reduction() -> None:
    s, t = _pair()
    tau, w = 2.0, 3.0
    n, c = s.shape[:2]
    total = sum(ref_kl(ref_softmax(t[b, ch].flatten() / tau, 0),
                       ref_softmax(s[b, ch].flatten() / tau, 0))
                for b in range(n) for ch in range(c))
    out = ChannelWiseDivergence(tau=tau, loss_weight=w)(s, t)
    assert out.item() == pytest.approx((w * tau**2 * total / (n * c)).item(), rel=1e-9)
    assert_no_teacher_grad(out, s, t)
    loss = ChannelWiseDivergence()
    assert loss(t, t).item() == pytest.approx(0.0, abs=1e-12)
    assert loss(dup(s), dup(t)).item() == pytest.approx(loss(s, t).item(), rel=1e-9)


# -------------------------------------------------------------------------------------------- SCKD
def _sckd_expected(s, t, gt, tau, mode, gate_ignored):
    n, k, h, w = s.shape
    vals = []
    for b in range(n):
        for i in range(h):
            for j in range(w):
                ps, pt = ref_softmax(s[b, :, i, j] / tau, 0), ref_softmax(t[b, :, i, j] / tau, 0)
                kl = ref_kl(pt, ps) * tau**2
                y = int(gt[b, i, j])
                if y == 255:
                    gate = 1.0 if not gate_ignored else None
                if y != 255 or gate_ignored:
                    onehot = torch.zeros(k)
                    if y != 255:
                        onehot[y] = 1
                    g_task = ref_softmax(s[b, :, i, j], 0) - onehot
                    g_kd = tau * (ps - pt)
                    cos = (g_task @ g_kd) / (g_task.norm() * g_kd.norm())
                    gate = float(cos >= 0) if mode == "hard" else max(float(cos), 0.0)
                vals.append(gate * kl)
    return torch.stack(vals).mean()


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_sckd_value(mode: str) -> None:
    s, t = _pair()
    gt = _labels()
    out = StudentCustomizedKDLoss(tau=2.0, mode=mode, loss_weight=2.0)(s, t, gt)
    expected = 2.0 * _sckd_expected(s.detach(), t.detach(), gt, 2.0, mode, False)
    assert out.item() == pytest.approx(expected.item(), rel=1e-9)
    assert_no_teacher_grad(out, s, t)


def test_sckd_gate_opens_for_a_correct_teacher_and_resizes_gt() -> None:
    s, _ = _pair()
    gt = _labels()
    t = 20.0 * nn.functional.one_hot(gt.clamp(max=4), 5).permute(0, 3, 1, 2).double()
    sckd = StudentCustomizedKDLoss()(s, t, gt)
    assert sckd.item() == pytest.approx(PixelKDLoss()(s, t).item(), rel=1e-9)
    big_gt = gt.repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert StudentCustomizedKDLoss()(s, t, big_gt).item() == pytest.approx(sckd.item(), rel=1e-12)
    assert StudentCustomizedKDLoss()(t, t, gt).item() == pytest.approx(0.0, abs=1e-12)
    assert StudentCustomizedKDLoss()(dup(s), dup(t), torch.cat([gt, gt])).item() == \
        pytest.approx(sckd.item(), rel=1e-9)


# -------------------------------------------------------------------------------------------- BPKD
def test_bpkd_value() -> None:
    s, t = _pair(h=6, w=6)
    gt = _labels(h=6, w=6)
    gt[1] = 2
    gt[1, 3:, 3:] = 4  # one image with a clear body and edge
    tau_e, tau_b, we, wb = 2.0, 1.5, 3.0, 0.5
    out = BPKDLoss(edge_weight=we, body_weight=wb, tau_edge=tau_e, tau_body=tau_b,
                   edge_radius=1, loss_weight=2.0)(s, t, gt)
    sd, td = s.detach(), t.detach()
    edge = ref_edges(gt, 1)
    body = (gt != 255) & ~edge
    n, k = s.shape[:2]
    edge_terms = [ref_kl(ref_softmax(td[b, :, i, j] / tau_e, 0),
                         ref_softmax(sd[b, :, i, j] / tau_e, 0))
                  for b, i, j in edge.nonzero().tolist()]
    l_edge = tau_e**2 * torch.stack(edge_terms).mean()
    body_terms = []
    for b in range(n):
        for ch in range(k):
            if body[b].any():
                pt = ref_softmax(td[b, ch][body[b]] / tau_b, 0)
                ps = ref_softmax(sd[b, ch][body[b]] / tau_b, 0)
                body_terms.append(ref_kl(pt, ps))
            else:
                body_terms.append(torch.tensor(0.0))
    l_body = tau_b**2 * torch.stack(body_terms).sum() / (n * k)
    assert out.item() == pytest.approx((2.0 * (we * l_edge + wb * l_body)).item(), rel=1e-9)
    assert_no_teacher_grad(out, s, t)
    loss = BPKDLoss()
    assert loss(t, t, gt).item() == pytest.approx(0.0, abs=1e-10)
    assert loss(dup(s), dup(t), torch.cat([gt, gt])).item() == \
        pytest.approx(loss(s, t, gt).item(), rel=1e-9)


# ------------------------------------------------------------------------------- SlimSeg boundary
def test_boundary_ce_value() -> None:
    s, _ = _pair(h=6, w=6)
    gt = _labels(h=6, w=6)
    out = BoundaryCELoss(edge_radius=1, loss_weight=2.0)(s, gt)
    edge = ref_edges(gt, 1)
    terms = [-ref_softmax(s.detach()[b, :, i, j], 0)[gt[b, i, j]].log()
             for b, i, j in edge.nonzero().tolist()]
    assert out.item() == pytest.approx(2.0 * torch.stack(terms).mean().item(), rel=1e-9)
    out.backward()
    assert s.grad is not None
    flat = torch.zeros_like(gt)
    assert BoundaryCELoss()(s, flat).item() == 0.0  # no boundary, no loss


# --------------------------------------------------------------------------------------- C2VKD PDD
def test_pdd_value() -> None:
    s, t = _pair()
    gt = _labels()
    tau, alpha, beta = 2.0, 1.0, 8.0
    out = PixelDecoupledKDLoss(tau=tau, alpha=alpha, beta=beta, loss_weight=0.5)(s, t, gt)
    terms = []
    for b, i, j in (gt != 255).nonzero().tolist():
        y = int(gt[b, i, j])
        ps = ref_softmax(s.detach()[b, :, i, j] / tau, 0)
        pt = ref_softmax(t.detach()[b, :, i, j] / tau, 0)
        tckd = ref_kl(torch.stack([pt[y], 1 - pt[y]]), torch.stack([ps[y], 1 - ps[y]]))
        others = [c for c in range(5) if c != y]
        qs = ref_softmax(s.detach()[b, others, i, j] / tau, 0)
        qt = ref_softmax(t.detach()[b, others, i, j] / tau, 0)
        terms.append(alpha * tckd + beta * ref_kl(qt, qs))
    expected = 0.5 * tau**2 * torch.stack(terms).mean()
    assert out.item() == pytest.approx(expected.item(), rel=1e-6)
    assert_no_teacher_grad(out, s, t)
    loss = PixelDecoupledKDLoss()
    assert loss(t, t, gt).item() == pytest.approx(0.0, abs=1e-9)
    assert loss(dup(s), dup(t), torch.cat([gt, gt])).item() == \
        pytest.approx(loss(s, t, gt).item(), rel=1e-9)


# ----------------------------------------------------------------------------------------- CrossKD
def test_crosskd_value_and_frozen_classifier() -> None:
    g = torch.Generator().manual_seed(3)
    feat = torch.randn(2, 6, 4, 4, generator=g).requires_grad_(True)
    t_logits = torch.randn(2, 5, 4, 4, generator=g).requires_grad_(True)
    cls = nn.Conv2d(8, 5, 1)
    loss = CrossHeadKDLoss(student_channels=6, teacher_channels=8, teacher_classifier=cls,
                           tau=2.0, align_scale=False, loss_weight=1.5)
    assert not any(p is q for p in loss.parameters() for q in cls.parameters())
    assert not any(k.startswith("_teacher") for k in loss.state_dict())
    out = loss(feat, t_logits)
    a = loss.adapter
    x = torch.einsum("oc,nchw->nohw", a.weight[:, :, 0, 0], feat) + a.bias[None, :, None, None]
    z = torch.einsum("oc,nchw->nohw", cls.weight[:, :, 0, 0], x) + cls.bias[None, :, None, None]
    expected = 1.5 * PixelKDLoss(tau=2.0)(z.detach(), t_logits.detach())
    assert out.item() == pytest.approx(expected.item(), rel=1e-9)
    out.backward()
    assert feat.grad is not None and a.weight.grad is not None
    assert t_logits.grad is None and cls.weight.grad is None and cls.bias.grad is None
    same = CrossHeadKDLoss(student_channels=8, teacher_channels=8, teacher_classifier=cls,
                           align_scale=False)
    f8 = torch.randn(2, 8, 4, 4)
    assert same(f8, cls(f8).detach()).item() == pytest.approx(0.0, abs=1e-10)
    assert isinstance(same.adapter, nn.Identity)
