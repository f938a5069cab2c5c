"""§1.1 Multi-level feature extractor: fuse per-layer backbone maps into z ∈ R^{C×H×W} (eq. 1–3).

The backbone forward (``frad.backbone``) and the fusion are split on purpose: the per-layer maps are
computed once per image and cached, and every model variant (layer set, channel count) fuses them cheaply.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from .errors import ConfigError
from .layers import VALID_LAYERS, check_layers  # noqa: F401  (torch-free: the params checks import it)


def pool_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """1-D adaptive average pooling of every position's channel vector to ``channels`` (eq. 2)."""
    b, c, h, w = x.shape
    if c == channels:
        return x
    # adaptive_avg_pool3d over (C, H, W) with output (channels, H, W) pools the channel axis only,
    # exactly like adaptive_avg_pool1d applied to each φ_{i,l,h,w}, without a transpose copy.
    return F.adaptive_avg_pool3d(x.unsqueeze(1), (channels, h, w)).squeeze(1)


def fuse_features(maps: Mapping[int, torch.Tensor] | Sequence[torch.Tensor], channels: int) -> torch.Tensor:
    """z = pool_C(concat_l pool_C(resize(φ_l(x)))) (eq. 1–3 and the final pooling of §1.1).

    ``maps``: per-layer maps (B, C_l, H_l, W_l), in layer order. Returns (B, C, H, W) with H×W the
    largest selected map. Channel pooling is done before the bilinear resize: both are linear and act
    on different axes, so the order does not change z (tested), and pooling first resizes fewer channels.
    """
    tensors = list(maps.values()) if isinstance(maps, Mapping) else list(maps)
    if not tensors:
        raise ConfigError("features.layers is empty: select at least one of [1, 2, 3]")
    if channels < 1:
        raise ConfigError(f"features.channels must be a positive integer, got {channels}")
    h = max(t.shape[-2] for t in tensors)
    w = max(t.shape[-1] for t in tensors)
    parts = []
    for t in tensors:
        t = pool_channels(t.float(), channels)  # eq. 2
        if t.shape[-2:] != (h, w):  # eq. 1: bilinear resize to the largest map
            t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)
        parts.append(t)
    phi = torch.cat(parts, dim=1)  # eq. 3
    return pool_channels(phi, channels)  # z_i ∈ R^{C×H×W}


def cosine_distance(z: torch.Tensor, z_hat: torch.Tensor) -> torch.Tensor:
    """D_cos per position (eq. 7–8): (B, C, H, W) × 2 → (B, H, W)."""
    return 1.0 - F.cosine_similarity(z, z_hat, dim=1)
