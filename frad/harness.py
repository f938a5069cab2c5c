"""What the comparison methods (PaDiM, PatchCore, RD) share: their result type, device and input checks.

Each comparison method reads the same cached per-layer backbone maps as FRAD ({layer: (N, C_l, H_l, W_l)}, layers 1–3 =
strides 4/8/16) and post-processes its per-position scores with the same §1.5 upsampling and σ blur
(:func:`frad.evaluation.postprocess.to_image_maps`), so the comparison runs in one harness with zero extra backbone forwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch

from .device import resolve_device
from .errors import DataError


@dataclass
class MethodResult:
    maps: torch.Tensor  # (N, S, S) float32 CPU, after upsampling + σ blur
    image_scores: np.ndarray  # (N,)
    info: dict = field(default_factory=dict)  # memory-bank size, loss history, ...: facts of the result
    timings: dict = field(default_factory=dict)  # phase -> seconds: the clock, kept out of the result files


def as_device(device: torch.device | str) -> torch.device:
    """A torch.device, or a params-style string ('auto', 'cpu', 'cuda[:N]') through :func:`resolve_device`."""
    return device if isinstance(device, torch.device) else resolve_device(str(device))


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the device's queued work is done (CUDA kernels run asynchronously), so a phase
    timing in ``MethodResult.info`` holds its own work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def check_maps(maps: Mapping[int, torch.Tensor], layers: Sequence[int], split: str) -> int:
    """The per-layer maps hold every needed layer, each (N, C, H, W) with the same N > 0; returns N."""
    missing = [l for l in layers if l not in maps]
    if missing:
        raise DataError(
            f"{split} features lack layer(s) {missing} (have {sorted(maps)}); load the config's layers from the cache"
        )
    sizes = {int(maps[l].shape[0]) for l in layers}
    if any(maps[l].dim() != 4 for l in layers) or len(sizes) != 1 or 0 in sizes:
        shapes = {l: tuple(maps[l].shape) for l in layers}
        raise DataError(f"{split} features must be non-empty (N, C, H, W) maps with the same N per layer, got {shapes}")
    return sizes.pop()
