"""The suite's CWD, KD, PKD and C2VKD-PDD against MMRazor 1.0.0's standalone loss files.

MMRazor does not import on torch 2.13 (its quantisation package), and it is not a project
dependency: the wheel is fetched with ``pip download`` into a cache directory (override with
``SUITE_TEST_CACHE``) and the four loss files are loaded by path with a stub
``mmrazor.registry``. Without network access or pip the tests are skipped.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch

from baselines.c2vkd import PixelDecoupledKDLoss
from baselines.cwd import ChannelWiseDivergence
from baselines.kd import PixelKDLoss
from baselines.pkd import PKDLoss

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

WHEEL = "mmrazor-1.0.0-py2.py3-none-any.whl"
FILES = {"cwd": "ChannelWiseDivergence", "kl_divergence": "KLDivergence", "pkd_loss": "PKDLoss",
         "decoupled_kd": "DKDLoss"}


def _cache_dir() -> Path:
    root = os.environ.get("SUITE_TEST_CACHE") or Path.home() / ".cache" / "suite-tests"
    return Path(root) / "mmrazor-1.0.0"


def _fetch_wheel() -> Path:
    cache = _cache_dir()
    wheel = cache / WHEEL
    if wheel.exists():
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        "mmrazor==1.0.0", "-d", str(cache)],
                       check=True, timeout=180, capture_output=True)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"mmrazor wheel not obtainable: {exc}")
    if not wheel.exists():
        pytest.skip("mmrazor wheel not obtainable")
    return wheel


@pytest.fixture(scope="module")
def mmrazor() -> dict[str, type]:
    wheel = _fetch_wheel()
    out_dir = _cache_dir() / "losses"
    with zipfile.ZipFile(wheel) as zf:
        for stem in FILES:
            member = f"mmrazor/models/losses/{stem}.py"
            target = out_dir / f"{stem}.py"
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(member))

    class _Models:
        @staticmethod
        def register_module(*args, **kwargs):
            return lambda cls: cls

    saved = {k: sys.modules.get(k) for k in ("mmrazor", "mmrazor.registry")}
    fake = types.ModuleType("mmrazor")
    registry = types.ModuleType("mmrazor.registry")
    registry.MODELS = _Models()
    fake.registry = registry
    sys.modules.update({"mmrazor": fake, "mmrazor.registry": registry})
    try:
        classes = {}
        for stem, cls_name in FILES.items():
            spec = importlib.util.spec_from_file_location(f"_mmrazor_oracle_{stem}",
                                                          out_dir / f"{stem}.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            classes[cls_name] = getattr(module, cls_name)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return classes


def _pair(shape=(3, 6, 5, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g), 3 * torch.randn(*shape, generator=g)


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_cwd_matches_mmrazor(mmrazor, tau: float) -> None:
    s, t = _pair()
    ours = ChannelWiseDivergence(tau=tau, loss_weight=3.0)(s, t)
    ref = mmrazor["ChannelWiseDivergence"](tau=tau, loss_weight=3.0)(s, t)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduction", ["batchmean", "mean", "sum"])
def test_kd_matches_mmrazor_kldivergence(mmrazor, reduction: str) -> None:
    s, t = _pair()
    ours = PixelKDLoss(tau=2.0, reduction=reduction, loss_weight=0.7)(s, t)
    ref = mmrazor["KLDivergence"](tau=2.0, reduction=reduction, loss_weight=0.7)(s, t)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6)
    # the default per-pixel mean is MMRazor's batchmean divided by h*w
    pix = PixelKDLoss(tau=2.0)(s, t)
    bm = mmrazor["KLDivergence"](tau=2.0, reduction="batchmean")(s, t)
    assert torch.allclose(pix, bm / (s.shape[2] * s.shape[3]), rtol=1e-5)


def test_pkd_matches_mmrazor(mmrazor) -> None:
    feats_s = [_pair((2, 4, 6, 6), 1)[0], _pair((2, 4, 3, 3), 2)[0]]
    feats_t = [_pair((2, 4, 6, 6), 3)[1], _pair((2, 4, 3, 3), 4)[1]]
    ours = PKDLoss(loss_weight=6.0)(feats_s, feats_t)
    ref = mmrazor["PKDLoss"](loss_weight=6.0)(feats_s, feats_t)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6)
    resized = PKDLoss()(torch.randn(2, 4, 3, 3), feats_t[0])
    ref2 = mmrazor["PKDLoss"]()(torch.randn(2, 4, 3, 3), feats_t[0])
    assert resized.dim() == ref2.dim() == 0


def test_pdd_matches_mmrazor_dkd_on_flattened_pixels(mmrazor) -> None:
    s, t = _pair((2, 5, 3, 3))
    gt = torch.randint(0, 5, (2, 3, 3), generator=torch.Generator().manual_seed(7))
    gt[0, 0] = 255
    ours = PixelDecoupledKDLoss(tau=4.0, alpha=1.0, beta=8.0)(s, t, gt)
    valid = gt != 255
    flat_s = s.permute(0, 2, 3, 1)[valid]
    flat_t = t.permute(0, 2, 3, 1)[valid]
    ref = mmrazor["DKDLoss"](tau=4.0, alpha=1.0, beta=8.0, reduction="batchmean")(
        flat_s, flat_t, gt[valid])
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6)
