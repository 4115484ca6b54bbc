"""What a cell cost: wall time, CPU seconds, peak host memory, device time and peak memory.

:class:`CostMeter` is started when a cell starts and read when its result is written; the
``cost`` record of ``result.json``:

* ``wall_s``: elapsed seconds (``time.perf_counter``);
* ``cpu_s``: CPU seconds of this process, all threads, user + system (``time.process_time``),
  plus those of its reaped child processes (data-loader workers:
  ``resource.getrusage(RUSAGE_CHILDREN)``);
* ``peak_host_mib``: the peak resident memory of the process (``VmHWM`` of
  ``/proc/self/status``; ``ru_maxrss`` elsewhere). A worker process runs many cells, so the meter
  resets the peak at the start (``/proc/self/clear_refs``, Linux); ``peak_host_scope`` says
  ``cell`` when the reset worked and ``process`` (the peak since the process started) otherwise;
* ``device``: ``cpu`` or ``cuda``; with CUDA, ``gpus`` (the processes of the job, one device
  each: ``WORLD_SIZE``), ``gpu_s`` (wall seconds × gpus: the device time a scheduler bills) and
  ``peak_device_mib`` (``torch.cuda.max_memory_allocated`` of this process's device, its
  counter reset at the start).
"""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def peak_rss_mib() -> float:
    """The process's peak resident set size in MiB (``VmHWM``, else ``ru_maxrss``)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024  # kB
    peak = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, kB on Linux


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux ``clear_refs`` 5); whether it
    worked."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _children_cpu_s() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def _cuda() -> Any | None:
    """``torch.cuda`` when a CUDA device is available and initialised-able, else None."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    return torch.cuda if torch.cuda.is_available() else None


@dataclass
class CostMeter:
    """Started at a cell's start; :meth:`record` gives its ``cost`` record (module docstring)."""

    wall0: float
    cpu0: float
    children0: float
    scope: str
    cuda: Any | None

    @classmethod
    def start(cls) -> CostMeter:
        """Reset the peak counters and take the starting readings."""
        scope = "cell" if reset_peak_rss() else "process"
        cuda = _cuda()
        if cuda is not None:
            cuda.reset_peak_memory_stats()
        return cls(time.perf_counter(), time.process_time(), _children_cpu_s(), scope, cuda)

    def record(self) -> dict[str, Any]:
        """The ``cost`` record so far (seconds rounded to 0.01, MiB to 0.1)."""
        wall = time.perf_counter() - self.wall0
        cpu = time.process_time() - self.cpu0 + _children_cpu_s() - self.children0
        out: dict[str, Any] = {
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "peak_host_mib": round(peak_rss_mib(), 1),
            "peak_host_scope": self.scope,
            "device": "cpu",
        }
        if self.cuda is not None and self.cuda.is_initialized():
            gpus = max(1, int(os.environ.get("WORLD_SIZE") or 1))  # one device per process
            out.update(device="cuda", gpus=gpus, gpu_s=round(wall * gpus, 2),
                       peak_device_mib=round(self.cuda.max_memory_allocated() / MIB, 1))
        return out


def device_seconds(cost: dict[str, Any] | None) -> float:
    """The seconds a cell held its accelerator (``gpu_s``), or its CPU seconds on a CPU run."""
    cost = cost or {}
    if cost.get("device") == "cuda" and cost.get("gpu_s") is not None:
        return float(cost["gpu_s"])
    return float(cost.get("cpu_s", float("nan")))
