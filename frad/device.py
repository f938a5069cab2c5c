"""Which torch device a stage runs on (``train.device``): ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

``auto`` on a machine with several GPUs takes a free one, so that N ``dvc queue`` workers spread their
stages over N GPUs instead of all landing on ``cuda:0``: each GPU has a lock file in a folder shared by
every process of the machine (``$FRAD_GPU_LOCK_DIR``, default ``/tmp/frad-gpu-locks``); the process takes
the first unlocked GPU with ``fcntl.flock`` and holds it until it exits (the kernel drops the lock then,
even after a crash). When every GPU is taken, it shares the one with the most free memory. GPUs are
counted through torch, so ``CUDA_VISIBLE_DEVICES`` is respected; lock files are named by the GPU's UUID,
so processes that see the GPUs under different indices still agree.

torch is imported only when a device is resolved (``import frad.device`` stays cheap).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, TrainingError

if TYPE_CHECKING:
    import torch

__all__ = ["LOCK_DIR_ENV", "check_device", "choose_gpu", "GpuLocks", "resolve_device"]

LOCK_DIR_ENV = "FRAD_GPU_LOCK_DIR"
DEFAULT_LOCK_DIR = "/tmp/frad-gpu-locks"
_auto: torch.device | None = None  # this process's answer to "auto" (it holds that GPU's lock)
_locks: GpuLocks | None = None


def check_device(device: str) -> None:
    """Raise ConfigError unless ``device`` is one of 'auto', 'cpu', 'cuda', 'cuda:N' (no torch needed)."""
    text = str(device)
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return
    raise ConfigError(f"train.device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")


def resolve_device(device: str) -> torch.device:
    """'auto' → a free GPU when there is one (see the module docstring), else the CPU; 'cpu', 'cuda',
    'cuda:N' as written; a CUDA device without a GPU is a clear error."""
    import torch

    check_device(device)
    if device == "auto":
        return _auto_device() if torch.cuda.is_available() else torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(
            f"train.device={device!r} but no CUDA device is available here; set train.device: auto (falls back to CPU) or cpu"
        )
    return torch.device(device)


def choose_gpu(n: int, try_lock: Callable[[int], bool], free_bytes: Callable[[int], int]) -> tuple[int, bool]:
    """(GPU index, whether its lock was taken): the first of ``n`` GPUs whose lock ``try_lock`` takes, else
    (all busy) the one with the most ``free_bytes``, the lowest index on a tie. ``free_bytes`` is only
    called when every GPU is busy (querying a GPU's memory costs it a CUDA context)."""
    if n < 1:
        raise ValueError(f"choose_gpu needs at least one GPU, got n={n}")
    for i in range(n):
        if try_lock(i):
            return i, True
    free = [free_bytes(i) for i in range(n)]
    return max(range(n), key=lambda i: (free[i], -i)), False


class GpuLocks:
    """Per-GPU lock files ``<folder>/gpu-<key>.lock``, taken with a non-blocking ``fcntl.flock`` and held
    while this object lives (in practice: the process). ``keys[i]`` names GPU ``i``."""

    def __init__(self, folder: str | os.PathLike[str], keys: Sequence[str]):
        self.folder, self.keys = Path(folder), list(keys)
        self.held: dict[int, int] = {}  # GPU index -> open file descriptor holding its lock

    def try_lock(self, i: int) -> bool:
        if i in self.held:
            return True
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"gpu-{self.keys[i]}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.held[i] = fd
        return True

    def release(self) -> None:
        for fd in self.held.values():
            os.close(fd)  # closing the last descriptor drops the flock
        self.held.clear()


def _auto_device() -> torch.device:
    """The thin torch side of ``choose_gpu``: count, name and query the visible GPUs; one answer per process."""
    global _auto, _locks
    import torch

    if _auto is None:
        n = torch.cuda.device_count()
        if n == 1:
            _auto = torch.device("cuda:0")  # one GPU: nothing to choose, no lock file
        else:
            keys = [_gpu_key(i) for i in range(n)]
            _locks = GpuLocks(os.environ.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR, keys)
            i, _ = choose_gpu(n, _locks.try_lock, lambda k: torch.cuda.mem_get_info(k)[0])
            torch.cuda.set_device(i)  # calls without a device (synchronize, caches) then go to this GPU too
            _auto = torch.device(f"cuda:{i}")
    return _auto


def _gpu_key(i: int) -> str:
    """A name of GPU ``i`` that is the same in every process: its UUID (the index if torch gives none)."""
    import torch

    uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
    return str(uuid) if uuid else f"index{i}"
