"""BCD: boundary map, losses, fusion, schedules — values against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from suite.distill.connectors import AlignedStageFusion, StageFusion
from suite.methods import build_method
from suite.methods.bcd import (
    BoundaryDistillLoss,
    ContextDistillLoss,
    adaptive_temperature,
    boundary_map,
    boundary_offsets,
    context_divergence,
    pairwise_dissimilarity,
    spatial_kl,
    weight_decay_alpha,
)


def test_offsets_radius_2_and_paths_radius_3():
    disk, half, paths = boundary_offsets(2)
    assert sorted(disk) == sorted([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)])
    assert half == [(0, 1), (1, -1), (1, 0), (1, 1)]
    assert all(len(p) == 1 and disk[p[0]] == h for p, h in zip(paths, half))
    disk, half, paths = boundary_offsets(3)
    k = half.index((0, 2))
    assert [disk[i] for i in paths[k]] == [(0, 1), (0, 2)]
    k = half.index((2, 2))
    assert [disk[i] for i in paths[k]] == [(1, 1), (2, 2)]


def _row_features(vectors: list[list[float]]) -> torch.Tensor:
    """1 x C x 1 x W feature map from a list of per-pixel vectors."""
    return torch.tensor(vectors, dtype=torch.float32).t()[None, :, None, :]


def test_boundary_path_max_hand_example():
    # pixels a, b, a along one row: endpoint affinity of 0 -> 2 is 1 (no boundary), but the line
    # crosses b, so the path max must report the boundary (dissimilarity 1).
    f = _row_features([[1, 0], [0, 1], [1, 0], [1, 0]])
    _, half, _ = boundary_offsets(3)
    b = boundary_map(f, radius=3)
    right1, right2 = half.index((0, 1)), half.index((0, 2))
    # offset (0,1): 1 - cos(p_i, p_{i+1}); the last pixel's neighbour is itself (replicate).
    assert torch.allclose(b[0, right1, 0], torch.tensor([1.0, 1.0, 0.0, 0.0]), atol=1e-6)
    # offset (0,2): max(1 - cos(p_i, p_{i+1}), 1 - cos(p_i, p_{i+2})).
    assert torch.allclose(b[0, right2, 0], torch.tensor([1.0, 1.0, 0.0, 0.0]), atol=1e-6)
    # plain endpoint affinity would have given 0 for pixel 0 at offset (0, 2)
    assert 1 - F.cosine_similarity(f[0, :, 0, 0], f[0, :, 0, 2], dim=0) < 1e-6


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 3, 4, 40)])
def test_dissimilarity_row_gram_and_per_offset_forms_agree(shape):
    torch.manual_seed(0)
    disk, _, _ = boundary_offsets(4)
    f = torch.randn(*shape)
    # reference: the definition, pixel by pixel, border neighbours clamped (replicate padding)
    n, _, h, w = shape
    ref = torch.empty(n, len(disk), h, w)
    for k, (dy, dx) in enumerate(disk):
        for y in range(h):
            for x in range(w):
                yy, xx = min(max(y + dy, 0), h - 1), min(max(x + dx, 0), w - 1)
                ref[:, k, y, x] = 1 - F.cosine_similarity(f[:, :, y, x], f[:, :, yy, xx], dim=1)
    grads = []
    for gram_width in (0, 64):  # per-offset products, row Gram
        x = f.clone().requires_grad_(True)
        out = pairwise_dissimilarity(x, disk, gram_width=gram_width)
        assert torch.allclose(out, ref, atol=1e-5)
        (out * torch.linspace(0, 1, out.numel()).view_as(out)).sum().backward()
        grads.append(x.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-5)
    with pytest.raises(ValueError, match="grouped by dy"):
        pairwise_dissimilarity(f, [(0, 1), (1, 0), (0, 2)], gram_width=64)


def test_boundary_hard_variant_is_binary_forward():
    f = torch.randn(1, 4, 6, 6)
    b = boundary_map(f, radius=3, hard=True, threshold=0.5)
    b = b.detach()
    assert torch.all((b.abs() < 1e-5) | ((b - 1).abs() < 1e-5))
    assert b.max() > 0.5  # random features do have boundaries


def test_spatial_kl_matches_formula():
    torch.manual_seed(0)
    s, t = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    tau = 2.0
    p_t = torch.softmax(t.flatten(2) / tau, -1)
    p_s = torch.softmax(s.flatten(2) / tau, -1)
    expected = (p_t * (p_t.log() - p_s.log())).sum(-1).mean() * tau**2
    assert torch.allclose(spatial_kl(s, t, tau), expected, atol=1e-6)


def _full_context(fs, ft, tau=1.0):
    n, c, h, w = fs.shape
    s = fs.flatten(2).transpose(1, 2)
    t = ft.flatten(2).transpose(1, 2)
    r_s = torch.softmax(s @ s.transpose(1, 2) / math.sqrt(c) / tau, -1)
    r_t = torch.softmax(t @ t.transpose(1, 2) / math.sqrt(c) / tau, -1)
    return r_s, r_t


def test_context_kl_and_mse_match_hand_computation():
    torch.manual_seed(1)
    fs, ft = torch.randn(2, 6, 3, 4), torch.randn(2, 6, 3, 4)
    r_s, r_t = _full_context(fs, ft)
    kl = (r_t * (r_t.log() - r_s.log())).sum(-1).mean()
    assert torch.allclose(context_divergence(fs, ft, mode="kl", chunk=None), kl, atol=1e-6)
    items = (r_t * (r_t.log() - r_s.log())).mean()  # mean over all N*HW*HW items
    assert torch.allclose(context_divergence(fs, ft, chunk=None, reduction="item"), items, atol=1e-7)
    mse = (r_s - r_t).pow(2).mean()
    assert torch.allclose(context_divergence(fs, ft, mode="mse", chunk=None), mse, atol=1e-7)


@pytest.mark.parametrize("mode", ["kl", "mse"])
def test_context_chunked_equals_unchunked_values_and_grads(mode):
    torch.manual_seed(2)
    ft = torch.randn(2, 8, 5, 7)
    fs1 = torch.randn(2, 8, 5, 7, requires_grad=True)
    fs2 = fs1.detach().clone().requires_grad_(True)
    full = context_divergence(fs1, ft, mode=mode, chunk=None)
    chunked = context_divergence(fs2, ft, mode=mode, chunk=4)  # 35 rows in 9 chunks
    assert torch.allclose(full, chunked, atol=1e-6)
    full.backward()
    chunked.backward()
    assert torch.allclose(fs1.grad, fs2.grad, atol=1e-6)


def _stage_feats(seed: int, channels=(4, 8, 8, 8), sizes=(16, 8, 8, 8), requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, s, s, generator=g).requires_grad_(requires_grad) for c, s in zip(channels, sizes)]


def test_losses_zero_for_equal_features_with_identity_alignment_and_positive_otherwise():
    chans = [4, 8, 8, 8]
    student_fuse = AlignedStageFusion(chans, chans, identity_init=True)
    teacher_fuse = StageFusion(chans)
    feats = _stage_feats(0)
    fs, ft = student_fuse(feats), teacher_fuse(feats)
    assert fs.shape == (2, 28, 8, 8)
    for loss in (BoundaryDistillLoss(radius=3), ContextDistillLoss(chunk=16)):
        assert loss(fs, ft).abs().item() < 1e-6
        other = teacher_fuse(_stage_feats(1))
        assert loss(fs, other).item() > 1e-4


def test_gradients_reach_student_and_connector_never_teacher():
    s_chans, t_chans = [4, 8, 8, 8], [8, 16, 16, 16]
    student_fuse = AlignedStageFusion(s_chans, t_chans)
    teacher_fuse = StageFusion(t_chans)
    s_feats = _stage_feats(0, s_chans, requires_grad=True)
    t_feats = _stage_feats(1, t_chans, requires_grad=True)
    fs, ft = student_fuse(s_feats), teacher_fuse(t_feats)
    total = BoundaryDistillLoss(radius=3, loss_weight=10)(fs, ft) + ContextDistillLoss(
        loss_weight=50, chunk=8)(fs, ft)
    total.backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in s_feats)
    assert all(f.grad is None for f in t_feats)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student_fuse.parameters())


def test_loss_weight_scales_linearly():
    fs, ft = torch.randn(1, 6, 6, 6), torch.randn(1, 6, 6, 6)
    assert torch.allclose(ContextDistillLoss(loss_weight=50)(fs, ft), 50 * ContextDistillLoss()(fs, ft))
    assert torch.allclose(BoundaryDistillLoss(loss_weight=10, radius=3)(fs, ft),
                          10 * BoundaryDistillLoss(radius=3)(fs, ft))


def test_boundary_channel_compression_is_shared_and_frozen():
    loss = BoundaryDistillLoss(radius=3, channels=4, teacher_channels=12)
    assert not list(loss.parameters())
    f = torch.randn(1, 12, 6, 6)
    assert loss(f, f).abs().item() < 1e-6


def test_weight_decay_schedule_documented_values():
    assert weight_decay_alpha(1, 100) == 1.0
    assert weight_decay_alpha(51, 100) == pytest.approx(0.5)
    assert weight_decay_alpha(100, 100) == pytest.approx(0.01)
    with pytest.raises(ValueError):
        weight_decay_alpha(0, 100)


def test_temperature_rule():
    x = torch.tensor([0.0, 10.0])
    assert adaptive_temperature(x, 1.0, None, None) == 1.0  # off by default
    assert adaptive_temperature(x, 1.0, 2.0, 3.0) == 4.0  # 10/1 > 3, 10/2 > 3, 10/4 <= 3
    assert adaptive_temperature(x, 1.0, 2.0, 20.0) == 1.0


def test_method_options():
    spec = build_method("bcd", {"context": False})
    assert set(spec.losses) == {"loss_bd"} and spec.weight_decay
    spec = build_method("bcd", {})
    assert spec.losses["loss_bd"].weight == 10 and spec.losses["loss_cd"].weight == 50
    assert spec.assumptions["bcd.radius"] == 5
    with pytest.raises(ValueError, match="unknown options"):
        build_method("bcd", {"lambda": 3})
    with pytest.raises(ValueError, match="at least one"):
        build_method("bcd", {"boundary": False, "context": False})


def test_reference_defaults_context_item_mean_and_the_temperature_rules_factor():
    from suite.methods import build_method

    spec = build_method("bcd", {})
    assert spec.assumptions["bcd.context_reduction"] == "item"
    assert spec.losses["loss_cd"].kwargs["reduction"] == "item"
    assert spec.assumptions["bcd.tau_factor"] == 1.05 and spec.assumptions["bcd.tau_threshold"] is None
    # the rule stays off without a threshold, and multiplies by 1.05 steps with one
    x = torch.tensor([0.0, 3.0])
    assert adaptive_temperature(x, 1.0, 1.05, None) == 1.0
    assert adaptive_temperature(x, 1.0, 1.05, 2.0) == pytest.approx(1.05**9)  # 3/1.05^8 > 2
    # the old default is one option away: the same KL summed per row, HW times larger
    fs, ft = torch.randn(2, 6, 4, 5), torch.randn(2, 6, 4, 5)
    row = ContextDistillLoss(reduction="row", chunk=None)(fs, ft)
    assert torch.allclose(row, 20 * ContextDistillLoss(chunk=None)(fs, ft), rtol=1e-5)
