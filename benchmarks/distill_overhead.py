"""BCD's cost on CPU: step time and the context loss's peak memory.

Prints, at the smoke size and at a larger size:
  * time of one BCD distillation training step / (one student training step + one teacher
    forward) -- the overhead of the distillation losses and connectors themselves;
  * peak resident memory of the context loss (forward + backward) computed in row chunks vs all
    rows at once, each measured in a fresh process (VmHWM above the inputs, peak reset first).

Usage: python benchmarks/distill_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

SIZES = {
    "smoke": {"width": 0.25, "crop": 64, "batch": 8},
    "larger": {"width": 0.5, "crop": 128, "batch": 4},
}


def _batch(n: int, crop: int, classes: int) -> dict[str, Any]:
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    samples = []
    for _ in range(n):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, classes, (1, crop, crop)))
        s.set_metainfo({"img_shape": (crop, crop), "ori_shape": (crop, crop), "pad_shape": (crop, crop)})
        samples.append(s)
    return {"inputs": torch.randn(n, 3, crop, crop), "data_samples": samples}


def _timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def step_ratio(width: float, crop: int, batch: int, repeats: int) -> dict[str, float]:
    import torch
    from mmengine.registry import MODELS, DefaultScope
    from mmseg.utils import register_all_modules

    import suite.distill.model  # noqa: F401
    from suite.methods import build_method
    from suite.models import segmentor_config, taps

    register_all_modules(init_default_scope=False)
    DefaultScope.get_instance(f"bench-{time.time()}", scope_name="mmseg")
    from dataclasses import asdict

    classes = 21
    s_cfg = segmentor_config("pspnet_r18", classes, width)
    t_cfg = segmentor_config("pspnet_r101", classes, width)
    distill = MODELS.build(dict(
        type="DistillationModel", student=s_cfg, teacher=t_cfg,
        method=asdict(build_method("bcd", {})), student_taps=taps("pspnet_r18"),
        teacher_taps=taps("pspnet_r101"), probe_size=(crop, crop), load_teacher_checkpoint=False,
    ))
    student = MODELS.build(s_cfg)
    teacher = distill.teacher
    data = _batch(batch, crop, classes)
    inputs, samples = data["inputs"], data["data_samples"]
    opt_d = torch.optim.SGD([p for p in distill.parameters() if p.requires_grad], lr=1e-3)
    opt_s = torch.optim.SGD(student.parameters(), lr=1e-3)
    distill.train()
    student.train()

    def distill_step() -> None:
        losses = distill.loss(inputs, samples)
        total = sum(v for k, v in losses.items() if "loss" in k)
        opt_d.zero_grad()
        total.backward()
        opt_d.step()

    def baseline_step() -> None:
        with torch.no_grad():
            teacher._forward(inputs)
        losses = student.loss(inputs, samples)
        total = sum(v for k, v in losses.items() if "loss" in k)
        opt_s.zero_grad()
        total.backward()
        opt_s.step()

    t_d = _timed(distill_step, repeats)
    t_b = _timed(baseline_step, repeats)
    return {"distill_s": t_d, "student_plus_teacher_s": t_b, "ratio": t_d / t_b}


def _vm(field: str) -> float:
    """A ``/proc/self/status`` memory field in MiB (Linux)."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _context_peak(chunk: int | None, n: int, c: int, hw: int) -> float:
    """Peak resident memory (MiB) added by one forward+backward of the context loss.

    The peak (VmHWM) is reset after imports and inputs by writing 5 to /proc/self/clear_refs,
    so what is left is the loss's own working memory.
    """
    import torch

    from suite.methods.bcd import context_divergence

    torch.manual_seed(0)
    fs = torch.randn(n, c, hw, hw, requires_grad=True)
    ft = torch.randn(n, c, hw, hw)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = _vm("VmRSS")
    context_divergence(fs, ft, chunk=chunk).backward()
    return _vm("VmHWM") - base


def memory(n: int, c: int, hw: int, chunk: int) -> dict[str, float]:
    out = {}
    for name, value in (("chunked", chunk), ("unchunked", None)):
        code = ("import json,sys; sys.path.insert(0,'benchmarks'); import distill_overhead as d; "
                f"print(json.dumps(d._context_peak({value!r}, {n}, {c}, {hw})))")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out[name] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("BCD distillation step / (student step + teacher forward), CPU")
    for name, size in SIZES.items():
        r = step_ratio(size["width"], size["crop"], size["batch"], args.repeats)
        print(f"  {name:6s} width x{size['width']}, crop {size['crop']}, batch {size['batch']}: "
              f"{r['distill_s']*1e3:7.1f} ms / {r['student_plus_teacher_s']*1e3:7.1f} ms = {r['ratio']:.2f}x")
    print("context loss peak memory (forward + backward), chunked vs unchunked")
    for name, (n, c, hw, chunk) in {"smoke": (8, 240, 8, 16), "larger": (2, 256, 64, 256)}.items():
        m = memory(n, c, hw, chunk)
        ratio = m["unchunked"] / max(m["chunked"], 1e-3)
        print(f"  {name:6s} N={n} C={c} HW={hw}x{hw} chunk={chunk}: chunked {m['chunked']:.1f} MiB, "
              f"unchunked {m['unchunked']:.1f} MiB, ratio {ratio:.1f}x")


if __name__ == "__main__":
    main()
