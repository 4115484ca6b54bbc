"""The competing baselines against the semantics of their official code.

Each test re-derives what the official implementation computes (the upstream file is named in
the test) with elementary torch ops on small random tensors, and compares the suite's loss with
it: values and the gradient reaching the student. Where the suite keeps a deliberate deviation
as an option, the test checks that the default is the official choice and that the option
changes what it says.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from loss_fixtures import (
    build_spec_loss,
    float64_default,
    random_labels,
    random_pair,
    ref_softmax,
)
from torch import Tensor, nn

from baselines.cirkd import MemoryContrastLoss
from baselines.crosskd import CrossHeadKDLoss
from baselines.fam import FAMLoss
from baselines.fgkd import FGDLoss, fg_bg_masks
from baselines.tat import TargetAwareTransformerLoss
from suite.methods.registry import METHODS

_float64 = pytest.fixture(autouse=True)(float64_default)


def _leaf(x: Tensor) -> Tensor:
    return x.detach().clone().requires_grad_(True)


def _log_softmax(x: Tensor, dim: int) -> Tensor:
    return ref_softmax(x, dim).log()


def _kl_rows(p_t: Tensor, log_p_s: Tensor, dim: int) -> Tensor:
    """``sum_dim p_t (log p_t - log p_s)``."""
    return (p_t * (p_t.log() - log_p_s)).sum(dim)


def _conv1x1(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    y = torch.einsum("oc,nchw->nohw", weight.reshape(weight.shape[0], -1), x)
    return y if bias is None else y + bias[None, :, None, None]


def _student_grad(out: Tensor, s: Tensor) -> Tensor:
    out.backward()
    assert s.grad is not None
    return s.grad


# ------------------------------------------------------------------ 1. SKD pixel-wise term
def _skd_pixel_official(s: Tensor, t: Tensor) -> Tensor:
    """structure_knowledge_distillation ``utils/criterion.py`` ``CriterionPixelWise``:
    ``sum(-softmax(z_T) * log_softmax(z_S))`` over classes, pixels *and images*, ``/ W / H``."""
    h, w = s.shape[-2:]
    return -(ref_softmax(t, 1) * _log_softmax(s, 1)).sum() / w / h


def _teacher_entropy(t: Tensor) -> Tensor:
    h, w = t.shape[-2:]
    p = ref_softmax(t, 1)
    return -(p * p.log()).sum() / (h * w)


@pytest.mark.parametrize("n", [1, 3])
def test_skd_pixel_term_has_the_official_effective_weight(n: int) -> None:
    spec = METHODS.get("skd")({})
    pixel = spec.losses["loss_skd_pixel"]
    assert pixel.weight == 10.0
    s, t = random_pair(n=n, cs=5, ct=5, h=3, w=4, seed=n)
    out = build_spec_loss(pixel, {"logits": s}, {"logits": t})(s, t)
    s_ref = _leaf(s)
    ref = 10.0 * _skd_pixel_official(s_ref, t.detach())
    # upstream logs the cross entropy; the KL is smaller by the teacher's entropy, same gradient
    assert out.item() == pytest.approx((ref - 10.0 * _teacher_entropy(t.detach())).item(),
                                       rel=1e-10)
    g = _student_grad(out, s)
    assert torch.allclose(g, _student_grad(ref, s_ref), rtol=1e-9, atol=1e-12)
    assert t.grad is None
    # the suite's former pixel mean (CIRKD's reduction, still an option) is N times weaker
    old = METHODS.get("skd")({"pixel_reduction": "pixelmean"}).losses["loss_skd_pixel"]
    s_old = _leaf(s)
    g_old = _student_grad(build_spec_loss(old, {"logits": s_old}, {"logits": t})(s_old, t), s_old)
    assert torch.allclose(g, n * g_old, rtol=1e-9, atol=1e-12)
    assert spec.assumptions["skd.pixel_reduction"].startswith("spatialmean")


def test_skd_pixel_reduction_option_is_checked() -> None:
    with pytest.raises(ValueError, match="pixel_reduction"):
        METHODS.get("skd")({"pixel_reduction": "sum"})


# ------------------------------------------------------------------ 2. SKD's critic optimiser
class _LinearCritic(nn.Module):
    """D(x) = <w, x> per image: its input gradient is w everywhere, so the GP is (|w| - 1)^2."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(*shape, generator=torch.Generator().manual_seed(4)))

    def forward(self, x: Tensor) -> Tensor:
        return (x * self.w).sum((1, 2, 3))


def _wgan_gp_critic_grad(w: Tensor, s: Tensor, t: Tensor, d_weight: float,
                         gp_weight: float) -> Tensor:
    """Gradient in w of SKD's ``d_loss = lambda_d * (D(S).mean() - D(T).mean() + lambda_gp * gp)``
    (``networks/kd_model.py`` ``discriminator_backward``) for the linear critic."""
    norm = w.pow(2).sum().sqrt()
    return d_weight * (s.mean(0, keepdim=True) - t.mean(0, keepdim=True)
                       + gp_weight * 2 * (norm - 1) * w / norm)


def test_skd_critic_is_trained_with_sgd_as_upstream() -> None:
    spec = METHODS.get("skd")({"d_conv_dim": 4})  # replaced by a linear critic below
    adv = spec.losses["loss_skd_adv"]
    kw = adv.kwargs
    assert (kw["d_optimizer"], kw["d_lr"], kw["d_momentum"], kw["d_weight_decay"]) == \
        ("sgd", 4e-4, 0.9, 5e-4)
    assert adv.weight == 0.1 and kw["d_weight"] == 0.1 and kw["gp_weight"] == 10.0
    s, t = random_pair(n=2, cs=3, ct=3, h=4, w=4)
    loss = build_spec_loss(adv, {"logits": s}, {"logits": t}).train()
    loss.discriminator = _LinearCritic((1, 3, 4, 4))
    w0 = loss.discriminator.w.detach().clone()
    lr, mom, wd = 4e-4, 0.9, 5e-4
    out = loss(s, t)
    # upstream D_solver = optim.SGD(lr_d, momentum, weight_decay): first step from zero momentum
    buf = _wgan_gp_critic_grad(w0, s.detach(), t.detach(), 0.1, 10.0) + wd * w0
    w1 = w0 - lr * buf
    assert torch.allclose(loss.discriminator.w.detach(), w1, rtol=1e-10, atol=1e-14)
    assert isinstance(loss._opt[0], torch.optim.SGD)
    # generator term with the stepped critic: -lambda_d * mean D(S)
    s_ref = _leaf(s)
    ref = -0.1 * (s_ref * w1).sum((1, 2, 3)).mean()
    assert out.item() == pytest.approx(ref.item(), rel=1e-10)
    assert torch.allclose(_student_grad(out, s), _student_grad(ref, s_ref))
    assert t.grad is None and loss.discriminator.w.grad is None
    # second step: momentum carries the first step's buffer
    loss(s.detach(), t)
    buf = mom * buf + _wgan_gp_critic_grad(w1, s.detach(), t.detach(), 0.1, 10.0) + wd * w1
    assert torch.allclose(loss.discriminator.w.detach(), w1 - lr * buf, rtol=1e-10, atol=1e-14)
    assert "SGD" in spec.assumptions["skd.critic"]


@pytest.mark.parametrize("name", ["ifvd", "sstkd"])
def test_ifvd_and_sstkd_critics_keep_adam(name: str) -> None:
    spec = METHODS.get(name)({})
    adv = next(v for k, v in spec.losses.items() if k.endswith("_adv"))
    assert adv.kwargs["d_optimizer"] == "adam" and "d_momentum" not in adv.kwargs


# ------------------------------------------------------------------ 3. CrossKD align_scale
def _align_scale_official(x: Tensor, ref: Tensor) -> Tensor:
    """CrossKD ``crosskd_gfl.py`` ``align_scale``: per channel over (N, H, W), unbiased std,
    eps 1e-6 on the student's std only, then the teacher's mean and std."""
    out = []
    for c in range(x.shape[1]):
        v, u = x[:, c], ref[:, c]
        m = v.numel()
        mv, mu = v.sum() / m, u.sum() / m
        sv = ((v - mv).pow(2).sum() / (m - 1)).sqrt()
        su = ((u - mu).pow(2).sum() / (m - 1)).sqrt()
        out.append((v - mv) / (sv + 1e-6) * su + mu)
    return torch.stack(out, 1)


def _crosskd_official(feat_s: Tensor, feat_t: Tensor, logits_t: Tensor, adapter: nn.Conv2d | None,
                      cls: nn.Conv2d, tau: float) -> Tensor:
    """Student pre-activation -> align_scale -> ReLU -> teacher classifier; pixel KL."""
    x = feat_s if adapter is None else _conv1x1(feat_s, adapter.weight, adapter.bias)
    x = _align_scale_official(x, feat_t).clamp(min=0)
    z = _conv1x1(x, cls.weight.detach(), cls.bias.detach())
    kl = _kl_rows(ref_softmax(logits_t / tau, 1), _log_softmax(z / tau, 1), 1)
    return tau**2 * kl.mean()


@pytest.mark.parametrize(("cs", "ct", "tau"), [(8, 8, 1.0), (6, 8, 2.0)])
def test_crosskd_aligns_the_student_feature_to_the_teacher_statistics(cs: int, ct: int,
                                                                      tau: float) -> None:
    spec = METHODS.get("crosskd")({"tau": tau})
    lspec = spec.losses["loss_crosskd"]
    assert lspec.kwargs["align_scale"] and lspec.inputs["feat_T"].tap == "head_feature_preact"
    g = torch.Generator().manual_seed(7)
    feat_s = (0.5 * torch.randn(2, cs, 3, 4, generator=g) + 2.0).requires_grad_(True)
    feat_t = (3.0 * torch.randn(2, ct, 3, 4, generator=g) - 1.0).requires_grad_(True)
    logits_t = torch.randn(2, 5, 3, 4, generator=g).requires_grad_(True)
    cls = nn.Conv2d(ct, 5, 1)
    taps_s = {"head_feature_preact": feat_s}
    taps_t = {"head_feature_preact": feat_t, "logits": logits_t}
    loss = build_spec_loss(lspec, taps_s, taps_t, cls)
    out = loss(preds_S=feat_s, preds_T=logits_t, feat_T=feat_t)
    adapter = None if isinstance(loss.adapter, nn.Identity) else loss.adapter
    s_ref = _leaf(feat_s)
    ref = _crosskd_official(s_ref, feat_t.detach(), logits_t.detach(), adapter, cls, tau)
    assert out.item() == pytest.approx(ref.item(), rel=1e-9)
    assert torch.allclose(_student_grad(out, feat_s), _student_grad(ref, s_ref), atol=1e-12)
    assert feat_t.grad is None and logits_t.grad is None and cls.weight.grad is None
    assert spec.assumptions["crosskd.align_scale"].startswith("per-channel")


def test_crosskd_without_align_scale_feeds_the_raw_feature() -> None:
    g = torch.Generator().manual_seed(8)
    feat_s = torch.randn(2, 4, 3, 3, generator=g) + 1.0
    feat_t = 4.0 * torch.randn(2, 4, 3, 3, generator=g)
    cls = nn.Conv2d(4, 3, 1)
    raw = CrossHeadKDLoss(4, 4, cls, align_scale=False, relu=True)
    aligned = CrossHeadKDLoss(4, 4, cls, align_scale=True, relu=True)
    z_raw = raw.cross_logits(feat_s)
    assert torch.allclose(z_raw, _conv1x1(feat_s.clamp(min=0), cls.weight, cls.bias))
    assert not torch.allclose(aligned.cross_logits(feat_s, feat_t), z_raw, rtol=0.1)
    spec = METHODS.get("crosskd")({"align_scale": False, "tap": "head_feature"})
    lspec = spec.losses["loss_crosskd"]
    assert "feat_T" not in lspec.inputs and not lspec.kwargs["relu"]
    assert spec.assumptions["crosskd.align_scale"].startswith("off")
    with pytest.raises(ValueError, match="feat_T"):
        aligned(feat_s, torch.randn(2, 3, 3, 3))


# ------------------------------------------------------------------ 4. CWD's default weight
def test_cwd_defaults_are_mmrazors_published_pair() -> None:
    spec = METHODS.get("cwd")({})
    lspec = spec.losses["loss_cwd"]
    assert (lspec.weight, lspec.kwargs["tau"]) == (5.0, 1.0)  # MMRazor cwd_logits_pspnet config
    assert "MMRazor" in spec.assumptions["cwd.defaults"]
    s, t = random_pair(n=2, cs=3, ct=3, h=3, w=3)
    out = build_spec_loss(lspec, {"logits": s}, {"logits": t})(s, t)
    s_ref = _leaf(s)
    n, c = s.shape[:2]
    p_t = ref_softmax(t.detach().reshape(n, c, -1), 2)
    ref = 5.0 * _kl_rows(p_t, _log_softmax(s_ref.reshape(n, c, -1), 2), 2).sum() / (n * c)
    assert out.item() == pytest.approx(ref.item(), rel=1e-10)
    assert torch.allclose(_student_grad(out, s), _student_grad(ref, s_ref))


# ------------------------------------------------------------------ 5. CIRKD contrast sizes
def _upstream_per_class(total: int, num_classes: int) -> int:
    """CIRKD ``train_cirkd.py``: ``args.pixel_contrast_size // train_dataset.num_class + 1``."""
    return total // num_classes + 1


def test_cirkd_samples_upstreams_fixed_contrast_sizes() -> None:
    mem = METHODS.get("cirkd")({}).losses["loss_cirkd_memory"].kwargs
    assert (mem["pixel_contrast_size"], mem["region_contrast_size"]) == (4096, 1024)
    assert mem["contrast_size_rule"] == "fixed"
    k = 19
    loss = MemoryContrastLoss(4, 4, num_classes=k, pixel_memory_size=20000,
                              region_memory_size=2000)
    want = (_upstream_per_class(4096, k), _upstream_per_class(1024, k))
    for anchors in (16, 8192, 10**6):  # independent of the batch
        assert loss.contrast_sizes(anchors) == want
    auto = MemoryContrastLoss(4, 4, num_classes=k, contrast_size_rule="auto")
    # upstream's per-process batch (2 x 64 x 64 anchors) under the automatic rule: 512 / 128
    assert auto.contrast_sizes(8192) == (_upstream_per_class(512, k),
                                         _upstream_per_class(128, k))
    small = MemoryContrastLoss(4, 4, num_classes=2, pixel_memory_size=10, region_memory_size=3)
    assert small.contrast_sizes(8192) == (10, 3)  # capped only by what the queues hold
    with pytest.raises(ValueError, match="contrast_size_rule"):
        MemoryContrastLoss(4, 4, contrast_size_rule="adaptive")


def test_cirkd_contrast_bank_holds_k_times_the_per_class_size() -> None:
    torch.manual_seed(0)
    cls = nn.Conv2d(4, 3, 1)  # the teacher classifier gives K = 3
    loss = MemoryContrastLoss(3, 4, teacher_classifier=cls, pixel_memory_size=50,
                              region_memory_size=20, pixel_contrast_size=60,
                              region_contrast_size=30)
    assert loss.pixel_queue.shape[0] == 3
    seen: list[int] = []
    inner = loss._contrast_kd

    def record(s: Tensor, t: Tensor, bank: Tensor) -> Tensor:
        seen.append(bank.shape[0])
        return inner(s, t, bank)

    loss._contrast_kd = record  # type: ignore[method-assign]
    s, t = random_pair(n=2, cs=3, ct=4, h=3, w=3)
    loss(s, t, random_labels(h=3, w=3))
    assert seen == [3 * _upstream_per_class(60, 3), 3 * _upstream_per_class(30, 3)]


# ------------------------------------------------------------------ 6. TaT: tap and BN stats
def _bn_per_image(x: Tensor, bn: nn.BatchNorm2d) -> Tensor:
    mean = x.mean((0, 2, 3), keepdim=True)
    var = x.var((0, 2, 3), unbiased=False, keepdim=True)
    return (x - mean) / (var + bn.eps).sqrt() * bn.weight[None, :, None, None] \
        + bn.bias[None, :, None, None]


def _tat_attend(q: Tensor, k: Tensor, v: Tensor, t: Tensor) -> Tensor:
    """``mean (softmax_j(q_i . k_j) v_j - t_i)^2`` with d x P matrices (one head)."""
    attn = ref_softmax(q.t() @ k, 1)
    return (v @ attn.t() - t).pow(2).mean()


def _tat_one_image(loss: TargetAwareTransformerLoss, s: Tensor, t: Tensor) -> Tensor:
    """TaT-seg ``distiller_tat.py`` ``distillation_loss_all`` on one image (1 x C x 4 x 4),
    2 x 2 patches stacked into 4*C channels split into 2 heads, 2 x 2 anchors."""
    emb = [(loss.embed_query, s), (loss.embed_key, t), (loss.embed_value, s)]
    q, k, v = (_bn_per_image(_conv1x1(x, e[0].weight), e[1]) for e, x in emb)

    def stacked(x: Tensor) -> Tensor:  # (patch, channel) rows x (2*2) positions
        return torch.cat([x[0, :, i:i + 2, j:j + 2].reshape(x.shape[1], 4)
                          for i in (0, 2) for j in (0, 2)])

    sq, sk, sv, st = (stacked(x) for x in (q, k, v, t))
    half = sq.shape[0] // 2
    patch = torch.stack([_tat_attend(sq[h:h + half], sk[h:h + half], sv[h:h + half],
                                     st[h:h + half]) for h in (0, half)]).mean()
    pooled = [F.avg_pool2d(x, 2)[0].reshape(x.shape[1], 4) for x in (q, k, v, t)]
    return loss.beta * patch + loss.gamma * _tat_attend(*pooled)


def test_tat_uses_per_image_batchnorm_statistics_as_upstream() -> None:
    spec = METHODS.get("tat")({"n": 2, "m": 2, "heads": 2, "anchor_h": 2, "anchor_w": 2})
    lspec = spec.losses["loss_tat"]
    assert lspec.inputs["preds_S"].tap == "head_feature_preact"
    assert lspec.inputs["preds_T"].tap == "head_feature_preact"
    assert lspec.kwargs["per_image_bn"]
    s, t = random_pair(n=3, cs=3, ct=4, h=4, w=4, seed=2)
    taps_s, taps_t = {"head_feature_preact": s}, {"head_feature_preact": t}
    loss = build_spec_loss(lspec, taps_s, taps_t).train()
    out = loss(s, t)
    s_ref = _leaf(s)
    # upstream: sum over images of the per-image loss, / batch size, * alpha
    ref = 0.1 * torch.stack([_tat_one_image(loss, s_ref[i:i + 1], t.detach()[i:i + 1])
                             for i in range(3)]).mean()
    assert out.item() == pytest.approx(ref.item(), rel=1e-9)
    assert torch.allclose(_student_grad(out, s), _student_grad(ref, s_ref), atol=1e-12)
    assert t.grad is None
    loss.per_image_bn = False  # the option: batch statistics, a different value
    assert loss(s.detach(), t).item() != pytest.approx(out.item(), rel=1e-6)
    assert spec.assumptions["tat.bn_statistics"].startswith("per image")
    off = METHODS.get("tat")({"per_image_bn": False, "tap": "head_feature"})
    assert off.assumptions["tat.bn_statistics"].startswith("per batch")
    assert off.losses["loss_tat"].inputs["preds_S"].tap == "head_feature"


@pytest.mark.parametrize("name", ["deeplabv3plus_r18", "pspnet_r18"])
def test_preact_tap_records_the_head_feature_before_its_relu(name: str) -> None:
    pytest.importorskip("mmseg")
    from mmengine.registry import MODELS, init_default_scope

    from suite.distill.recorders import ModuleOutputsRecorder
    from suite.models import segmentor_config, taps

    init_default_scope("mmseg")
    import mmseg.models  # noqa: F401  (registers the segmentors)

    torch.manual_seed(0)
    model = MODELS.build(segmentor_config(name, 5, 0.0625)).train().float()
    rec = ModuleOutputsRecorder(model, {k: taps(name)[k]
                                        for k in ("head_feature", "head_feature_preact")})
    model._forward(torch.randn(2, 3, 32, 32, dtype=torch.float32))
    pre, post = rec.get("head_feature_preact"), rec.get("head_feature")
    assert pre.shape == post.shape and (pre < 0).any()
    assert torch.equal(pre.clamp(min=0), post)
    rec.remove()


# ------------------------------------------------------------------ 7. FAM's resize order
def test_fam_upsamples_the_student_stage_before_the_module_as_upstream() -> None:
    spec = METHODS.get("fam")({})
    assert spec.losses["loss_fam"].kwargs["resize"] == "input_nearest"
    s, t = random_pair(n=2, cs=3, ct=4, h=4, w=4, relu=True)
    t = torch.randn(2, 4, 8, 8)
    loss = FAMLoss([3], [4], freq_size=4, loss_weight=2.0)
    out = loss([s], [t])
    s_ref = _leaf(s)
    # FAM-KD ``CROSSATF.forward``: F.interpolate(x, out_shape, mode="nearest") before conv2
    up = s_ref.repeat_interleave(2, 2).repeat_interleave(2, 3)
    ref = 2.0 * (loss.fams[0](up) - t).pow(2).mean()
    assert out.item() == pytest.approx(ref.item(), rel=1e-10)
    assert torch.allclose(_student_grad(out, s), _student_grad(ref, s_ref), atol=1e-12)
    after = FAMLoss([3], [4], freq_size=4, resize="output_bilinear")
    after.load_state_dict(loss.state_dict())
    y = F.interpolate(after.fams[0](s.detach()), size=(8, 8), mode="bilinear",
                      align_corners=False)
    assert after([s.detach()], [t]).item() == pytest.approx((y - t).pow(2).mean().item())
    assert "upstream" in spec.assumptions["fam.resize"]


# ------------------------------------------------------------------ 8. FGKD's background
def _fgd_masks_official(labels: Tensor, background_classes: tuple[int, ...]) -> tuple[Tensor,
                                                                                       Tensor]:
    """FGD ``fgd.py``: ``Mask_bg = where(Mask_fg > 0, 0, 1) / sum`` -- every non-foreground
    pixel; foreground = 1 / area of the pixel's (non-background, labelled) class region."""
    n, h, w = labels.shape
    fg = torch.zeros(n, h, w)
    for b in range(n):
        for i in range(h):
            for j in range(w):
                k = int(labels[b, i, j])
                if k != 255 and k not in background_classes:
                    fg[b, i, j] = 1.0 / float((labels[b] == k).sum())
    bg = (fg == 0).double()
    return fg, bg / bg.sum((1, 2), keepdim=True).clamp(min=1)


def test_fgkd_background_is_everything_but_the_foreground_as_fgd() -> None:
    spec = METHODS.get("fgkd")({})
    assert spec.losses["loss_fgkd"].kwargs["background"] == "complement"
    gt = random_labels(n=2, h=4, w=4, k=3, ignored=3)
    fg, bg = _fgd_masks_official(gt, (0,))
    m_fg, m_bg = fg_bg_masks(gt, (0,))
    assert torch.allclose(m_fg.double(), fg) and torch.allclose(m_bg.double(), bg)
    assert (m_bg[gt == 255] > 0).all()
    _, m_bg_old = fg_bg_masks(gt, (0,), background="labelled")
    assert (m_bg_old[gt == 255] == 0).all()
    # the focal background term with these masks (alpha = gamma = lambda = 0)
    s, t = random_pair(n=2, cs=4, ct=4, h=4, w=4)
    loss = FGDLoss(4, 4, temp=0.5, alpha=0.0, beta=2.0, gamma=0.0, lambda_=0.0)
    out = loss(s, t, gt)
    s_ref = _leaf(s)
    td = t.detach()
    n, c, h, w = td.shape
    sp = h * w * ref_softmax(td.abs().mean(1).reshape(n, -1) / 0.5, 1).reshape(n, h, w)
    ch = c * ref_softmax(td.abs().mean((2, 3)) / 0.5, 1)
    sq = (s_ref - td).pow(2) * sp[:, None] * ch[:, :, None, None]
    ref = 2.0 * (sq * bg[:, None]).sum() / n
    assert out.item() == pytest.approx(ref.item(), rel=1e-6)  # the masks are float32
    assert torch.allclose(_student_grad(out, s), _student_grad(ref, s_ref), atol=1e-12)
    assert "FGD" in spec.assumptions["fgkd.background"]


# ------------------------------------------------------------------ 9. IFVD's KD: no tau^2
@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_ifvd_kd_has_no_tau_squared_as_upstream(tau: float) -> None:
    spec = METHODS.get("ifvd")({"tau": tau})
    kd = spec.losses["loss_ifvd_kd"]
    s, t = random_pair(n=2, cs=4, ct=4, h=3, w=3)
    out = build_spec_loss(kd, {"logits": s}, {"logits": t})(s, t)
    s_ref = _leaf(s)
    # IFVD ``utils/criterion.py`` CriterionKD: nn.KLDivLoss() (element mean) on softened logits
    p_t = ref_softmax(t.detach() / tau, 1)
    ref = 10.0 * (p_t * (p_t.log() - _log_softmax(s_ref / tau, 1))).mean()
    assert out.item() == pytest.approx(ref.item(), rel=1e-10)
    assert torch.allclose(_student_grad(out, s), _student_grad(ref, s_ref))
    assert "no tau^2" in spec.assumptions["ifvd.kd"]
    # plain KD keeps Hinton's tau^2, and its config does not mention the flag
    assert "tau_squared" not in METHODS.get("kd")({}).losses["loss_kd"].kwargs
    with_sq = METHODS.get("ifvd")({"tau": tau, "kd_tau_squared": True}).losses["loss_ifvd_kd"]
    s2 = _leaf(s)
    out2 = build_spec_loss(with_sq, {"logits": s2}, {"logits": t})(s2, t)
    assert out2.item() == pytest.approx(tau**2 * ref.item(), rel=1e-10)


# ------------------------------------------------------------------ records
@pytest.mark.parametrize(("name", "keys"), [
    ("skd", ("skd.pixel_reduction", "skd.critic", "skd.d_optimizer")),
    ("crosskd", ("crosskd.align_scale", "crosskd.cross_point")),
    ("cwd", ("cwd.defaults",)),
    ("cirkd", ("cirkd.contrast_size_rule", "cirkd.contrast_sizes")),
    ("tat", ("tat.tap", "tat.bn_statistics")),
    ("fam", ("fam.resize",)),
    ("fgkd", ("fgkd.background",)),
    ("ifvd", ("ifvd.kd", "ifvd.d_optimizer")),
])
def test_choices_are_recorded_in_the_method_assumptions(name: str, keys: tuple[str, ...]) -> None:
    assumptions = METHODS.get(name)({}).assumptions
    assert all(k in assumptions for k in keys), sorted(assumptions)
