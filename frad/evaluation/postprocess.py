"""§1.5 post-processing shared by FRAD and every comparison method: per-position scores → bilinear upsampling
to the image size → Gaussian σ filter (as scipy computes it) → image score = max of the map (option: top-k mean).
Knows no model: a comparison method's stages depend on this file, never on FRAD's network or training."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError


def _symmetric_index(n: int, pad: int, device) -> torch.Tensor:
    """Indices of scipy's 'reflect' (half-sample symmetric: d c b a | a b c d) padding of a length-n axis."""
    idx = np.pad(np.arange(n), pad, mode="symmetric")
    return torch.as_tensor(idx, device=device)


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, device=None) -> torch.Tensor:
    """The kernel scipy.ndimage.gaussian_filter uses: radius = int(truncate·σ + 0.5), normalised."""
    radius = int(truncate * float(sigma) + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(device=device, dtype=torch.float32)


def gaussian_blur(maps: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian filter of (N, H, W) maps on their device, equal to
    ``scipy.ndimage.gaussian_filter(m, sigma, mode='reflect', truncate=4)`` per map (tested)."""
    if sigma <= 0:
        return maps
    k = gaussian_kernel1d(sigma, truncate, maps.device)
    r = (len(k) - 1) // 2
    n, h, w = maps.shape
    x = maps[:, None]
    x = x[:, :, _symmetric_index(h, r, maps.device)]  # pad H (any radius, like scipy)
    x = F.conv2d(x, k.view(1, 1, -1, 1))
    x = x[:, :, :, _symmetric_index(w, r, maps.device)]  # pad W
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    return x[:, 0]


def to_image_maps(d: torch.Tensor, image_size: int, sigma: float) -> torch.Tensor:
    """Per-position scores (N, h, w) → (N, S, S) maps on d's device: bilinear upsampling to the image size,
    then the Gaussian σ filter (§1.5). Shared by FRAD and the comparison methods so every method is post-processed alike."""
    up = F.interpolate(d[:, None], size=(image_size, image_size), mode="bilinear", align_corners=False)[:, 0]
    return gaussian_blur(up, sigma)


def image_scores(maps: torch.Tensor | np.ndarray, top_k: int = 1) -> np.ndarray:
    """A_sam = max of A_pix (§1.5); ``top_k`` > 1: the mean of the k largest values of each map instead
    (paper: the max; option for the study of the image score, docs/diagnosis.md)."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"score.top_k must be a positive integer, got {top_k!r}")
    m = torch.as_tensor(maps).flatten(1)
    if top_k == 1:
        return m.amax(dim=1).numpy()
    if top_k > m.shape[1]:
        raise ConfigError(f"score.top_k={top_k} exceeds the {m.shape[1]} pixels of an anomaly map; lower it")
    return m.topk(top_k, dim=1).values.mean(dim=1).numpy()
