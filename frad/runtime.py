"""Process-level CPU settings that make frad faster without changing any result.

glibc's ``malloc`` serves every block above a (dynamic) threshold with a fresh ``mmap`` and returns
freed memory to the system. A CPU forward or training step allocates and frees the same large
activation tensors batch after batch, so each batch pays the page faults of zero-filling them again.
:func:`tune_malloc` keeps those blocks in the heap instead (what PyTorch's CPU tuning guide gets by
preloading jemalloc/tcmalloc). Measured with ``python -m bench`` on a 2-core AVX2 CPU
(reports/benchmark.md): the channels_last fp32 WRN50-2 backbone 4.38 -> 5.16 img/s (1.18x), a training
step of the paper's model (C=512, widths 256) 2.01 -> 3.77 samples/s (1.88x), at the cost of a higher
peak resident set (the freed blocks stay in the process: 2.8 -> 3.6 GiB for that training).
Allocation never changes arithmetic, so features, models and scores are bitwise the same.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["tune_malloc", "MALLOC_ENV"]

MALLOC_ENV = "FRAD_MALLOC_TUNE"  # set to 0 to keep glibc's defaults
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_applied: bool | None = None


def tune_malloc(threshold: int = 1 << 30) -> bool:
    """Serve blocks below ``threshold`` bytes from the heap and keep up to ``threshold`` bytes of freed
    memory there (glibc ``mallopt`` M_MMAP_THRESHOLD and M_TRIM_THRESHOLD) for the rest of this process.

    Returns whether it is in effect: False off Linux/glibc, or when ``FRAD_MALLOC_TUNE=0``. Idempotent.
    The process then keeps its peak heap instead of handing freed memory back: fine for a pipeline stage
    or a benchmark row, which ends soon after its peak.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(MALLOC_ENV, "1").strip().lower() in ("0", "false", "no", "off") or not sys.platform.startswith(
        "linux"
    ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # Older glibc caps M_MMAP_THRESHOLD at 32 MiB (HEAP_MAX/2): fall back to that cap.
    mmap_ok = any(mallopt(_M_MMAP_THRESHOLD, value) == 1 for value in (threshold, min(threshold, 32 << 20)))
    trim_ok = mallopt(_M_TRIM_THRESHOLD, threshold) == 1
    _applied = mmap_ok and trim_ok
    return _applied
