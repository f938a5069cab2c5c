"""Measuring helpers shared by both benchmarks: wall/CPU timing (synchronised on CUDA), the memory of this
process now and at its peak, and what the CPU supports. torch is imported only for CUDA devices, so the
metrics benchmark stays numpy-only."""

from __future__ import annotations

import math
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _is_cuda(device: Any) -> bool:
    return str(device).startswith("cuda")


def sync(device: Any) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if _is_cuda(device):
        import torch

        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Wall and process-CPU seconds of each call (all threads: CPU < wall when other processes compete)."""

    walls: list[float]
    cpus: list[float]
    out: Any  # the last call's result

    @property
    def best(self) -> int:
        return min(range(len(self.walls)), key=self.walls.__getitem__)

    @property
    def wall(self) -> float:
        """Best wall time."""
        return self.walls[self.best]

    @property
    def cpu(self) -> float:
        """CPU time of the best call."""
        return self.cpus[self.best]


def timed(fn: Callable[[], Any], reps: int = 1, device: Any = "cpu") -> Timing:
    """``reps`` calls of ``fn``, each timed between two synchronisations of ``device``."""
    walls, cpus, out = [], [], None
    for _ in range(reps):
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        sync(device)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return Timing(walls, cpus, out)


def _proc_status_mib(field_name: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"{field_name} not in /proc/self/status")


def memory_now(device: Any = "cpu") -> float:
    """MiB in use now: CUDA memory allocated by torch, else the resident set of this process."""
    if _is_cuda(device):
        import torch

        return torch.cuda.memory_allocated(device) / 2**20
    try:
        return _proc_status_mib("VmRSS")
    except OSError:
        return math.nan


class PeakMemory:
    """Peak memory of the enclosed block: CUDA allocator peak on CUDA, else peak RSS (VmHWM) of this process
    after resetting the peak counter (``/proc/self/clear_refs`` = 5; where that is refused, the lifetime peak).
    ``peak_mib`` is the absolute peak, ``delta_mib`` its rise above ``base`` (MiB, default: the level at entry)."""

    def __init__(self, device: Any = "cpu", base: float | None = None):
        self.device = device
        self.given_base = base
        self.peak_mib = math.nan
        self.delta_mib = math.nan
        self.kind = "GPU" if _is_cuda(device) else "RSS"
        self.reset_ok = True

    def __enter__(self) -> PeakMemory:
        if _is_cuda(self.device):
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:
                with open("/proc/self/clear_refs", "w") as clear:
                    clear.write("5")
            except OSError:
                self.reset_ok = False
        self.base = memory_now(self.device) if self.given_base is None else self.given_base
        return self

    def __exit__(self, *exc: object) -> None:
        if _is_cuda(self.device):
            import torch

            torch.cuda.synchronize(self.device)
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            try:
                self.peak_mib = _proc_status_mib("VmHWM")
            except OSError:
                self.peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
                self.reset_ok = False
        self.delta_mib = self.peak_mib - self.base

    def record(self) -> dict[str, Any]:
        return {
            "mem_kind": self.kind,
            "peak_mib": self.peak_mib,
            "delta_mib": self.delta_mib,
            "peak_reset": self.reset_ok,
        }


def _cpuinfo(prefix: str) -> str | None:
    """The value of the first ``/proc/cpuinfo`` line starting with ``prefix`` (None without /proc)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def native_low_precision(device: Any, precision: str) -> bool:
    """Whether ``precision`` autocast runs on real hardware support (always on CUDA; on CPU only
    with AVX512-BF16/AMX for bf16 and AVX512-FP16/AMX-FP16 for fp16)."""
    if precision == "fp32" or _is_cuda(device):
        return True
    flags = set((_cpuinfo("flags") or "").split())
    wanted = {"avx512_bf16", "amx_bf16"} if precision == "bf16" else {"avx512_fp16", "amx_fp16"}
    return bool(wanted & flags)
