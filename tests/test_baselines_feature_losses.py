"""Feature-level competing losses against hand computations: SKD (pair-wise, holistic), CIRKD,
IFVD, IFD, FGKD, CWT, TAT, FAM, SSTKD, BGLSSeg, C2VKD's VLFD. Formulas are re-derived here with
elementary torch ops; a loss's own trainable layers are read, not re-used as black boxes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from loss_fixtures import (
    assert_no_teacher_grad,
    dup,
    float64_default,
    random_labels,
    random_pair,
    ref_edges,
    ref_kl,
    ref_softmax,
    ref_unit,
)
from torch import nn

from baselines._common import HolisticAdversarialLoss
from baselines.bglsseg import BoundaryHeadLoss
from baselines.c2vkd import VisualLinguisticFeatureLoss
from baselines.cirkd import MemoryContrastLoss, MiniBatchPixelPairLoss
from baselines.cwt import ChannelWiseTransformLoss
from baselines.fam import FAMLoss
from baselines.fgkd import FGDLoss
from baselines.ifd import ProjectorEnsembleLoss
from baselines.ifvd import IFVLoss
from baselines.skd import PairWiseLoss
from baselines.sstkd import StatisticalTextureLoss, StructuralTextureLoss, contourlet_decompose
from baselines.tat import TargetAwareTransformerLoss

_float64 = pytest.fixture(autouse=True)(float64_default)


def _conv1x1(x, weight, bias=None):
    y = torch.einsum("oc,nchw->nohw", weight.reshape(weight.shape[0], -1), x)
    return y if bias is None else y + bias[None, :, None, None]


def _bn_train(x, eps=1e-5):
    mean = x.mean((0, 2, 3), keepdim=True)
    var = x.var((0, 2, 3), unbiased=False, keepdim=True)
    return (x - mean) / (var + eps).sqrt()


# ------------------------------------------------------------------------------------ SKD pair
def test_skd_pair_value() -> None:
    s, t = random_pair(ct=5)
    out = PairWiseLoss(pool_scale=0.5, loss_weight=2.0)(s, t)

    def affinity(f):
        pooled = torch.stack([torch.stack([f[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].amax((2, 3))
                                           for j in range(2)], -1) for i in range(2)], -2)
        v = pooled.flatten(2)
        v = v / (v.pow(2).sum(1, keepdim=True).sqrt() + 1e-8)
        return torch.einsum("nci,ncj->nij", v, v)

    expected = 2.0 * (affinity(t.detach()) - affinity(s.detach())).pow(2).mean()
    assert out.item() == pytest.approx(expected.item(), rel=1e-9)
    assert_no_teacher_grad(out, s, t)
    loss = PairWiseLoss()
    assert loss(t, t).item() == pytest.approx(0.0, abs=1e-12)
    assert loss(dup(s), dup(t)).item() == pytest.approx(loss(s, t).item(), rel=1e-9)


# ---------------------------------------------------------------------------- holistic (WGAN-GP)
class _LinearCritic(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.w = nn.Parameter(torch.randn(*shape, generator=torch.Generator().manual_seed(5)))

    def forward(self, x):
        return (x * self.w).sum((1, 2, 3))


def test_holistic_adversarial_joint_mode_value_and_gradients() -> None:
    s, t = random_pair(cs=3, ct=3)
    loss = HolisticAdversarialLoss(3, loss_weight=0.2, d_weight=0.3, gp_weight=10.0,
                                   d_optimizer="joint")
    loss.discriminator = _LinearCritic((1, 3, 4, 4))
    w = loss.discriminator.w
    out = loss(s, t)
    n = s.shape[0]
    expected = -0.2 * (s.detach() * w.detach()).sum((1, 2, 3)).mean()
    assert out.item() == pytest.approx(expected.item(), rel=1e-9)
    out.backward()
    assert t.grad is None
    assert torch.allclose(s.grad, (-0.2 * w.detach() / n).expand_as(s))
    wn = w.detach().pow(2).sum().sqrt()
    critic_grad = 0.3 * (s.detach().mean(0, keepdim=True) - t.detach().mean(0, keepdim=True)
                         + 10.0 * 2 * (wn - 1) * w.detach() / wn)
    assert torch.allclose(w.grad, critic_grad)


def test_holistic_adversarial_adam_mode_steps_the_critic_first() -> None:
    s, t = random_pair(cs=3, ct=3)
    loss = HolisticAdversarialLoss(3, loss_weight=0.2, d_weight=0.3, d_lr=1e-2)
    loss.discriminator = _LinearCritic((1, 3, 4, 4))
    w0 = loss.discriminator.w.detach().clone()
    wn = w0.pow(2).sum().sqrt()
    critic_grad = 0.3 * (s.detach().mean(0, keepdim=True) - t.detach().mean(0, keepdim=True)
                         + 10.0 * 2 * (wn - 1) * w0 / wn)
    out = loss(s, t)
    w1 = loss.discriminator.w.detach()
    # first Adam step: w - lr * g / (|g| + eps) elementwise
    assert torch.allclose(w1, w0 - 1e-2 * critic_grad / (critic_grad.abs() + 1e-8), atol=1e-9)
    assert out.item() == pytest.approx((-0.2 * (s.detach() * w1).sum((1, 2, 3)).mean()).item())
    assert_no_teacher_grad(out, s, t)
    assert loss.discriminator.w.grad is None


def test_holistic_adversarial_leaves_critic_alone_in_eval() -> None:
    s, t = random_pair(cs=3, ct=3)
    loss = HolisticAdversarialLoss(3).eval()
    before = [p.detach().clone() for p in loss.parameters()]
    loss(s, t)
    assert all(torch.equal(a, b) for a, b in zip(before, loss.parameters()))


# --------------------------------------------------------------------------------- CIRKD
def test_cirkd_minibatch_value() -> None:
    s, t = random_pair(n=3, h=3, w=3)
    tau = 0.5
    out = MiniBatchPixelPairLoss(tau=tau, loss_weight=2.0)(s, t)
    sd, td = s.detach(), t.detach()
    total = 0.0
    for a in range(3):
        for b in range(3):
            fa_s = sd[a].flatten(1) / sd[a].flatten(1).norm(dim=0, keepdim=True)
            fb_s = sd[b].flatten(1) / sd[b].flatten(1).norm(dim=0, keepdim=True)
            fa_t = td[a].flatten(1) / td[a].flatten(1).norm(dim=0, keepdim=True)
            fb_t = td[b].flatten(1) / td[b].flatten(1).norm(dim=0, keepdim=True)
            a_s, a_t = fa_s.t() @ fb_s / tau, fa_t.t() @ fb_t / tau
            rows = [ref_kl(ref_softmax(a_t[i], 0), ref_softmax(a_s[i], 0)) for i in range(9)]
            total = total + torch.stack(rows).mean()
    assert out.item() == pytest.approx((2.0 * total / 9).item(), rel=1e-9)
    assert_no_teacher_grad(out, s, t)
    loss = MiniBatchPixelPairLoss(tau=tau)
    same_s = torch.randn(3, 4, 3, 3)
    assert loss(same_s, same_s).item() == pytest.approx(0.0, abs=1e-10)
    assert loss(dup(s), dup(t)).item() == pytest.approx(loss(s, t).item(), rel=1e-9)


def test_cirkd_memory_queues_and_value() -> None:
    torch.manual_seed(0)
    s, t = random_pair(n=2, cs=3, ct=4, h=3, w=3)
    gt = random_labels(h=3, w=3)
    loss = MemoryContrastLoss(3, 4, num_classes=3, pixel_memory_size=40, region_memory_size=5,
                              pixel_contrast_size=200, region_contrast_size=100,  # whole queues
                              pixel_update_freq=100, contrast_tau=0.5, contrast_kd_tau=2.0,
                              pixel_weight=1.3, region_weight=0.7, loss_weight=2.0)
    pix0, reg0 = loss.pixel_queue.clone(), loss.region_queue.clone()
    out = loss(s, t, gt)

    tn = t.detach() / t.detach().norm(dim=1, keepdim=True)
    reg = reg0.clone()
    rptr, pptr = [0, 0, 0], [0, 0, 0]
    written: dict[int, list[torch.Tensor]] = {0: [], 1: [], 2: []}
    for b in range(2):
        for k in sorted(set(gt[b].flatten().tolist()) - {255}):
            vecs = [tn[b, :, i, j] for i in range(3) for j in range(3) if gt[b, i, j] == k]
            reg[k, rptr[k]] = ref_unit(torch.stack(vecs).mean(0))
            rptr[k] += 1
            written[k] += vecs
            pptr[k] += len(vecs)
    assert torch.allclose(loss.region_queue, reg)
    for k in range(3):  # pixel writes land at 0..count-1, in random order
        block = loss.pixel_queue[k, :pptr[k]]
        got = sorted(block.tolist())
        want = sorted(torch.stack(written[k]).tolist()) if written[k] else []
        assert torch.allclose(torch.tensor(got), torch.tensor(want)) if want else not got
        assert torch.equal(loss.pixel_queue[k, pptr[k]:], pix0[k, pptr[k]:])

    proj = loss.project_head(s.detach())
    proj = proj / proj.norm(dim=1, keepdim=True)
    anchors = [(b, i, j) for b in range(2) for i in range(3) for j in range(3)
               if gt[b, i, j] != 255]

    def contrast(bank):
        terms = []
        for b, i, j in anchors:
            ls, lt = bank @ proj[b, :, i, j] / 0.5, bank @ tn[b, :, i, j] / 0.5
            terms.append(ref_kl(ref_softmax(lt / 2.0, 0), ref_softmax(ls / 2.0, 0)))
        return 4.0 * torch.stack(terms).mean()

    expected = 2.0 * (1.3 * contrast(loss.pixel_queue.reshape(-1, 4))
                      + 0.7 * contrast(loss.region_queue.reshape(-1, 4)))
    assert out.item() == pytest.approx(expected.item(), rel=1e-7)
    assert_no_teacher_grad(out, s, t)
    assert loss.project_head[0].weight.grad is not None


def test_cirkd_memory_grows_its_class_queues() -> None:
    loss = MemoryContrastLoss(3, 4, pixel_memory_size=8, region_memory_size=4)
    s, t = random_pair(h=3, w=3)
    gt = random_labels(h=3, w=3, k=5)
    loss(s, t, gt)
    assert loss.pixel_queue.shape == (int(gt[gt != 255].max()) + 1, 8, 4)
    assert not [k for k in loss.state_dict() if "queue" in k or "ptr" in k]
    fixed = MemoryContrastLoss(3, 4, num_classes=2, pixel_memory_size=8, region_memory_size=4)
    with pytest.raises(ValueError, match="num_classes"):
        fixed(s, t, gt)


# ------------------------------------------------------------------------------------- IFVD
def _proto_cos(f, gt):
    n, c, h, w = f.shape
    out = torch.ones(n, h, w)
    for b in range(n):
        for i in range(h):
            for j in range(w):
                k = int(gt[b, i, j])
                if k == 255:
                    continue
                members = [f[b, :, a, d] for a in range(h) for d in range(w) if gt[b, a, d] == k]
                proto = torch.stack(members).sum(0) / (len(members) + 1e-6)
                v = f[b, :, i, j]
                out[b, i, j] = (v @ proto) / (v.norm() * proto.norm())
    return out


def test_ifvd_value() -> None:
    s, t = random_pair(ct=5)
    gt = random_labels()
    out = IFVLoss(loss_weight=3.0)(s, t, gt)
    expected = 3.0 * (_proto_cos(s.detach(), gt) - _proto_cos(t.detach(), gt)).pow(2).mean()
    assert out.item() == pytest.approx(expected.item(), rel=1e-7)
    assert_no_teacher_grad(out, s, t)
    loss = IFVLoss()
    assert loss(t, t, gt).item() == pytest.approx(0.0, abs=1e-12)
    assert loss(dup(s), dup(t), torch.cat([gt, gt])).item() == \
        pytest.approx(loss(s, t, gt).item(), rel=1e-9)
    big = gt.repeat_interleave(4, 1).repeat_interleave(4, 2)  # GT at input resolution
    assert loss(s, t, big).item() == pytest.approx(loss(s, t, gt).item(), rel=1e-12)


# ---------------------------------------------------------------------------------------- IFD
def test_ifd_value_and_identity_projectors() -> None:
    s, t = random_pair(ct=5)
    loss = ProjectorEnsembleLoss(3, 5, num_projectors=3, loss_weight=25.0)
    out = loss(s, t)
    g = sum(_conv1x1(s.detach(), p.weight, p.bias).relu() for p in loss.projectors) / 3
    cos = (g * t.detach()).sum(1) / (g.norm(dim=1) * t.detach().norm(dim=1))
    assert out.item() == pytest.approx((25.0 * (1 - cos).mean()).item(), rel=1e-9)
    assert_no_teacher_grad(out, s, t)
    assert all(p.weight.grad is not None for p in loss.projectors)
    same = ProjectorEnsembleLoss(4, 4)
    for p in same.projectors:
        nn.init.eye_(p.weight[:, :, 0, 0])
        nn.init.zeros_(p.bias)
    f = torch.rand(2, 4, 3, 3) + 0.1
    assert same(f, f).item() == pytest.approx(0.0, abs=1e-12)


# -------------------------------------------------------------------------------------- FGKD
def _gc_block(block, x):
    n, c, h, w = x.shape
    logits = _conv1x1(x, block.conv_mask.weight, block.conv_mask.bias).reshape(n, h * w)
    att = ref_softmax(logits, 1)
    context = torch.einsum("nci,ni->nc", x.reshape(n, c, h * w), att)[:, :, None, None]
    y = _conv1x1(context, block.channel_add[0].weight, block.channel_add[0].bias)
    ln = block.channel_add[1]
    mu = y.mean((1, 2, 3), keepdim=True)
    var = y.var((1, 2, 3), unbiased=False, keepdim=True)
    y = ((y - mu) / (var + ln.eps).sqrt() * ln.weight + ln.bias).relu()
    return x + _conv1x1(y, block.channel_add[3].weight, block.channel_add[3].bias)


def test_fgkd_value() -> None:
    s, t = random_pair(cs=4, ct=4, h=4, w=4)
    gt = random_labels()
    gt[1] = 0  # an image that is all background
    loss = FGDLoss(4, 4, temp=0.5, alpha=2.0, beta=3.0, gamma=0.5, lambda_=0.25,
                   background_classes=(0,), background="labelled", loss_weight=1.5)
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for block in (loss.gc_s, loss.gc_t):
            block.channel_add[3].weight.copy_(torch.randn(block.channel_add[3].weight.shape,
                                                          generator=g))
    out = loss(s, t, gt)
    sd, td = s.detach(), t.detach()
    n, c, h, w = sd.shape

    def att(x):
        a = x.abs()
        sp = h * w * ref_softmax(a.mean(1).reshape(n, -1) / 0.5, 1).reshape(n, h, w)
        ch = c * ref_softmax(a.mean((2, 3)) / 0.5, 1)
        return sp, ch

    st, ct = att(td)
    ss, cs = att(sd)
    m_fg, m_bg = torch.zeros(n, h, w), torch.zeros(n, h, w)
    for b in range(n):
        labs = gt[b]
        bg = labs == 0
        for k in set(labs.flatten().tolist()) - {0, 255}:
            m_fg[b][labs == k] = 1.0 / (labs == k).sum()
        if bg.any():
            m_bg[b][bg] = 1.0 / bg.sum()
    sq = (sd - td).pow(2) * st[:, None] * ct[:, :, None, None]
    fg = (sq * m_fg[:, None]).sum() / n
    bg = (sq * m_bg[:, None]).sum() / n
    at = (cs - ct).abs().sum() / n + (ss - st).abs().sum() / n
    gl = (_gc_block(loss.gc_s, sd) - _gc_block(loss.gc_t, td)).pow(2).sum() / n
    expected = 1.5 * (2.0 * fg + 3.0 * bg + 0.5 * at + 0.25 * gl)
    assert out.item() == pytest.approx(expected.item(), rel=1e-7)
    assert_no_teacher_grad(out, s, t)
    fresh = FGDLoss(4, 4)  # zero-initialised GcBlock outputs: identical features give zero
    assert fresh(t, t, gt).item() == pytest.approx(0.0, abs=1e-12)
    assert fresh(dup(s), dup(t), torch.cat([gt, gt])).item() == \
        pytest.approx(fresh(s, t, gt).item(), rel=1e-9)


# --------------------------------------------------------------------------------------- CWT
@pytest.mark.parametrize("reduction", ["mean", "sum_per_sample"])
def test_cwt_value(reduction: str) -> None:
    s, t = random_pair(ct=5)
    loss = ChannelWiseTransformLoss(3, 5, reduction=reduction, loss_weight=2.0)
    out = loss(s, t)
    a, b = loss.mlp[0], loss.mlp[2]
    y = _conv1x1(_conv1x1(s.detach(), a.weight, a.bias).relu(), b.weight, b.bias)
    sq = (y - t.detach()).pow(2)
    expected = sq.mean() if reduction == "mean" else sq.sum() / 2
    assert out.item() == pytest.approx(2.0 * expected.item(), rel=1e-9)
    assert_no_teacher_grad(out, s, t)
    ident = ChannelWiseTransformLoss(4, 4)
    with torch.no_grad():
        for conv in (ident.mlp[0], ident.mlp[2]):
            conv.weight.copy_(torch.eye(4)[:, :, None, None])
            conv.bias.zero_()
    f = torch.rand(2, 4, 3, 3)
    assert ident(f, f).item() == pytest.approx(0.0, abs=1e-12)
    assert loss(dup(s), dup(t)).item() == pytest.approx(out.item(), rel=1e-9)


# --------------------------------------------------------------------------------------- TAT
def _tat_expected(loss, s, t, n, m, heads, anchor):
    q = _bn_train(_conv1x1(s, loss.embed_query[0].weight))
    k = _bn_train(_conv1x1(t, loss.embed_key[0].weight))
    v = _bn_train(_conv1x1(s, loss.embed_value[0].weight))
    b, c, h, w = t.shape
    ph, pw = h // n, w // m

    def patches(x):  # list over patches (row-major) of B x C x (ph*pw)
        return [x[:, :, i * ph:(i + 1) * ph, j * pw:(j + 1) * pw].reshape(b, c, -1)
                for i in range(n) for j in range(m)]

    pq, pk, pv, pt = patches(q), patches(k), patches(v), patches(t)
    per_head = len(pq) // heads
    sq_err = []
    for hd in range(heads):
        sel = range(hd * per_head, (hd + 1) * per_head)
        qq = torch.cat([pq[i] for i in sel], 1)  # B x d x P
        kk = torch.cat([pk[i] for i in sel], 1)
        vv = torch.cat([pv[i] for i in sel], 1)
        tt = torch.cat([pt[i] for i in sel], 1)
        attn = ref_softmax(torch.einsum("bdi,bdj->bij", qq, kk), 2)
        sq_err.append((torch.einsum("bij,bdj->bdi", attn, vv) - tt).pow(2).flatten())
    patch = torch.cat(sq_err).mean()
    ks = h // anchor

    def pool(x):
        return x.reshape(b, c, h // ks, ks, w // ks, ks).mean((3, 5)).reshape(b, c, -1)

    aq, ak, av, at = pool(q), pool(k), pool(v), pool(t)
    attn = ref_softmax(torch.einsum("bdi,bdj->bij", aq, ak), 2)
    anchor_loss = (torch.einsum("bij,bdj->bdi", attn, av) - at).pow(2).mean()
    return patch, anchor_loss


@pytest.mark.parametrize("heads", [4, 2])
def test_tat_value(heads: int) -> None:
    s, t = random_pair(cs=3, ct=4, h=4, w=4)
    loss = TargetAwareTransformerLoss(3, 4, beta=1.0, gamma=0.4, n=2, m=2, heads=heads,
                                      anchor_h=2, anchor_w=2, per_image_bn=False,
                                      loss_weight=0.1)
    out = loss(s, t)
    patch, anchor = _tat_expected(loss, s.detach(), t.detach(), 2, 2, heads, 2)
    assert out.item() == pytest.approx((0.1 * (patch + 0.4 * anchor)).item(), rel=1e-7)
    assert_no_teacher_grad(out, s, t)
    assert loss.embed_key[0].weight.grad is not None
    assert loss(dup(s), dup(t)).item() == pytest.approx(out.item(), rel=1e-7)


def test_tat_clamps_to_small_maps() -> None:
    s, t = random_pair(cs=3, ct=4, h=3, w=3)
    out = TargetAwareTransformerLoss(3, 4)(s, t)  # defaults: 16x16 patches, 64 heads, 32 anchors
    assert out.dim() == 0 and torch.isfinite(out)


# --------------------------------------------------------------------------------------- FAM
def test_fam_local_branch_value() -> None:
    s, t = random_pair(cs=3, ct=4, h=4, w=4, relu=True)
    loss = FAMLoss([3], [4], loss_weight=2.0)
    fam = loss.fams[0]
    with torch.no_grad():
        fam.rate1.zero_()
    out = loss([s], [t])
    y = _bn_train(0.5 * _conv1x1(s.detach(), fam.local.weight, fam.local.bias)).relu()
    assert out.item() == pytest.approx((2.0 * (y - t.detach()).pow(2).mean()).item(), rel=1e-7)
    assert_no_teacher_grad(out, s, t)
    assert fam.weight.grad is not None and fam.rate1.grad is not None


def test_fam_spectral_branch_filter_and_high_pass() -> None:
    fam = FAMLoss([2], [2], freq_size=6, cuton=0.0).fams[0]
    with torch.no_grad():
        fam.mix.weight.copy_(torch.eye(2)[:, :, None, None])
        fam.weight.zero_()
        fam.weight[0] = 1.0  # all-pass real filter
    x = torch.randn(1, 2, 6, 6)
    assert torch.allclose(fam.spectral(x), x, atol=1e-10)
    high = FAMLoss([2], [2], freq_size=6, cuton=0.5).fams[0]
    with torch.no_grad():
        high.mix.weight.copy_(torch.eye(2)[:, :, None, None])
        high.weight.zero_()
        high.weight[0] = 1.0
    const = torch.full((1, 2, 8, 8), 3.0)  # DC only: removed by the high-pass
    assert high.spectral(const).abs().max() < 1e-10
    y = torch.randn(1, 2, 8, 8)
    spec = torch.fft.fftshift(torch.fft.fft2(y, norm="ortho"), dim=(-2, -1))
    spec[..., 2:6, 2:6] = 0  # cy = 4, rh = int(0.5 * 4) = 2
    want = torch.fft.ifft2(torch.fft.ifftshift(spec, dim=(-2, -1)), norm="ortho").real
    assert torch.allclose(high.spectral(y), want, atol=1e-10)


def test_fam_multi_stage_sum_and_reduction() -> None:
    feats_s = [torch.rand(2, 3, 4, 4, requires_grad=True), torch.rand(2, 5, 2, 2)]
    feats_t = [torch.rand(2, 4, 4, 4, requires_grad=True), torch.rand(2, 6, 2, 2)]
    loss = FAMLoss([3, 5], [4, 6])
    out = loss(feats_s, feats_t)
    parts = [F.mse_loss(fam(s), t) for fam, s, t in zip(loss.fams, feats_s, feats_t)]
    assert out.item() == pytest.approx(sum(p.item() for p in parts), rel=1e-9)
    assert_no_teacher_grad(out, feats_s[0], feats_t[0])
    doubled = loss([dup(x) for x in feats_s], [dup(x) for x in feats_t])
    assert doubled.item() == pytest.approx(out.item(), rel=1e-9)


# ------------------------------------------------------------------------------------- SSTKD
def _decompose_by_hand(x):
    """One channel, one image, 2 levels."""
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
    blur_k = torch.outer(k1, k1)
    dirs = [torch.tensor(d, dtype=torch.float64) / 6 for d in (
        [[-1, -1, -1], [2, 2, 2], [-1, -1, -1]], [[-1, -1, 2], [-1, 2, -1], [2, -1, -1]],
        [[-1, 2, -1], [-1, 2, -1], [-1, 2, -1]], [[2, -1, -1], [-1, 2, -1], [-1, -1, 2]])]

    def filt(img, ker):
        r = ker.shape[0] // 2
        h, w = img.shape
        out = torch.zeros(h, w)
        for i in range(h):
            for j in range(w):
                for a in range(-r, r + 1):
                    for b in range(-r, r + 1):
                        ii, jj = min(max(i + a, 0), h - 1), min(max(j + b, 0), w - 1)
                        out[i, j] += ker[a + r, b + r] * img[ii, jj]
        return out

    outs, cur = [], x
    for _ in range(2):
        blurred = filt(cur, blur_k)
        h, w = cur.shape
        low = blurred.reshape(h // 2, 2, w // 2, 2).mean((1, 3))
        up = F.interpolate(low[None, None], (h, w), mode="bilinear", align_corners=False)[0, 0]
        band = cur - up
        outs.append(torch.stack([filt(band, d) for d in dirs]))
        cur = low
    outs.append(cur[None])
    return outs


def test_sstkd_structural_decomposition_and_value() -> None:
    x = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    got = contourlet_decompose(x, levels=2)
    want = _decompose_by_hand(x[0, 0])
    assert len(got) == 3
    for g, w in zip(got, want):
        assert torch.allclose(g[0], w, atol=1e-10)
    const = torch.full((1, 2, 8, 8), 2.5)
    bands = contourlet_decompose(const, 2)
    assert all(b.abs().max() < 1e-10 for b in bands[:-1])
    assert torch.allclose(bands[-1], torch.full_like(bands[-1], 2.5))
    s, t = random_pair(cs=2, ct=2, h=8, w=8)
    loss = StructuralTextureLoss(2, 2, loss_weight=2.0)
    out = loss(s, t)
    diff = [contourlet_decompose(a, 2) for a in (s.detach(), t.detach())]
    expected = 2.0 * torch.stack([(a - b).pow(2).mean() for a, b in zip(*diff)]).mean()
    assert out.item() == pytest.approx(expected.item(), rel=1e-9)
    assert_no_teacher_grad(out, s, t)
    assert loss(t, t).item() == pytest.approx(0.0, abs=1e-12)
    aligned = StructuralTextureLoss(3, 2)
    s3 = torch.randn(2, 3, 8, 8, requires_grad=True)
    aligned(s3, t).backward()
    assert aligned.align.weight.grad is not None and s3.grad is not None


def test_sstkd_statistical_value() -> None:
    s, t = random_pair(cs=3, ct=5, h=4, w=4)
    q = 4
    out = StatisticalTextureLoss(num_levels=q, loss_weight=2.0)(s, t)

    def stats(f):
        n, c, h, w = f.shape
        hists, cdfs = [], []
        for b in range(n):
            g = f[b].mean((1, 2))
            cosm = torch.stack([torch.stack([(f[b, :, i, j] @ g) / (f[b, :, i, j].norm() * g.norm())
                                             for j in range(w)]) for i in range(h)])
            sm = torch.zeros(h, w)
            for i in range(h):
                for j in range(w):
                    sm[i, j] = cosm[max(0, i - 1):i + 2, max(0, j - 1):j + 2].mean()
            lo, hi = sm.min(), sm.max()
            delta = (hi - lo) / q
            hist = torch.stack([(1 - (sm - (lo + (lv + 0.5) * delta)).abs() / delta).clamp(min=0)
                                .mean() for lv in range(q)])
            hists.append(hist)
            cdfs.append(hist.cumsum(0) / hist.sum())
        return torch.stack(hists), torch.stack(cdfs)

    hs, cs = stats(s.detach())
    ht, ct = stats(t.detach())
    expected = 2.0 * (((hs - ht) ** 2).sum(1) + ((cs - ct) ** 2).sum(1)).mean() / q
    assert out.item() == pytest.approx(expected.item(), rel=1e-7)
    assert_no_teacher_grad(out, s, t)
    same = StatisticalTextureLoss()
    assert same(t, t).item() == pytest.approx(0.0, abs=1e-12)
    assert same(dup(s), dup(t)).item() == pytest.approx(same(s, t).item(), rel=1e-9)


# ----------------------------------------------------------------------------------- BGLSSeg
def test_bglsseg_boundary_head_value() -> None:
    s, _ = random_pair(cs=3, h=4, w=4)
    gt = random_labels(h=8, w=8)
    loss = BoundaryHeadLoss(3, hidden_channels=4, edge_radius=1, loss_weight=2.0)
    out = loss(s, gt)
    logit = F.interpolate(loss.head(s.detach()), (8, 8), mode="bilinear",
                          align_corners=False)[:, 0]
    edge = ref_edges(gt, 1).double()
    valid = (gt != 255).double()
    p = 1 / (1 + (-logit).exp())
    bce = -(edge * p.log() + (1 - edge) * (1 - p).log())
    bce = (bce * valid).sum() / valid.sum()
    dice = 1 - (2 * (p * valid * edge).sum() + 1) / ((p * valid).sum() + edge.sum() + 1)
    assert out.item() == pytest.approx((2.0 * (bce + dice)).item(), rel=1e-7)
    out.backward()
    assert s.grad is not None and loss.head[0].weight.grad is not None


# ------------------------------------------------------------------------------- C2VKD VLFD
def test_vlfd_value_and_anchors() -> None:
    s, t = random_pair(cs=3, ct=4)
    cls = nn.Conv2d(4, 5, 1)
    loss = VisualLinguisticFeatureLoss(3, 4, teacher_classifier=cls, tau=0.5, loss_weight=2.0)
    out = loss(s, t)
    e = cls.weight.detach()[:, :, 0, 0]
    e = e / e.norm(dim=1, keepdim=True)
    ps = _conv1x1(s.detach(), loss.proj.weight, loss.proj.bias)
    terms = []
    for b in range(2):
        for i in range(4):
            for j in range(4):
                vs, vt = ref_unit(ps[b, :, i, j]), ref_unit(t.detach()[b, :, i, j])
                terms.append(ref_kl(ref_softmax(e @ vt / 0.5, 0), ref_softmax(e @ vs / 0.5, 0)))
    assert out.item() == pytest.approx((2.0 * torch.stack(terms).mean()).item(), rel=1e-9)
    assert_no_teacher_grad(out, s, t)
    assert cls.weight.grad is None and loss.proj.weight.grad is not None
    assert not any("classifier" in k for k in loss.state_dict())
    with pytest.raises(RuntimeError, match="teacher classifier"):
        VisualLinguisticFeatureLoss(3, 4)(s, t)
    assert math.isfinite(loss(dup(s), dup(t)).item())
