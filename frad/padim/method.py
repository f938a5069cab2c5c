"""PaDiM (Defard et al., "PaDiM: a Patch Distribution Modeling Framework for Anomaly Detection and
Localization", ICPR workshops 2021) on the cached backbone maps.

§3.1 embedding: layers 1–3 brought to the layer-1 grid and concatenated, a fixed random subset of d channels.
§3.2 learning: per position (i, j) a Gaussian N(μ_ij, Σ_ij), Σ_ij the unbiased covariance + ε·I (eq. 1).
§3.3 inference: M(x_ij) = sqrt((x_ij − μ_ij)ᵀ Σ_ij⁻¹ (x_ij − μ_ij)) (eq. 2); the map goes through the same
upsampling + σ blur as FRAD (§1.5 of the FRAD paper), image score = max of the map (as in their code).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from ..evaluation.postprocess import to_image_maps
from ..harness import MethodResult, as_device, check_maps, clock
from . import PadimConfig


@dataclass
class PadimModel:
    channels: torch.Tensor  # (d,) sorted indices into the concatenated layer channels
    mean: torch.Tensor  # (P, d) float64, P = H·W positions of the finest grid
    precision: torch.Tensor  # (P, d, d) float64, Σ⁻¹ per position
    grid: tuple[int, int]


def channel_subset(total: int, d: int, seed: int) -> torch.Tensor:
    """The fixed random subset of d of the ``total`` concatenated channels (§3.1), from a seeded generator.
    Sorted: the Mahalanobis distance does not depend on the channel order."""
    if d > total:
        raise ConfigError(f"compare.padim.d must be at most {total} (the channels of the layers used), got {d}")
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:d].sort().values


def embed(maps: Mapping[int, torch.Tensor], channels: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, d, H, W) float64: the chosen channels of each layer resized to ``grid`` and concatenated in layer order.
    Nearest-neighbour resizing: their code's ``embedding_concat`` copies each coarse position to its s×s block."""
    parts, offset = [], 0
    for layer in sorted(maps):
        m = maps[layer]
        c = m.shape[1]
        own = channels[(channels >= offset) & (channels < offset + c)] - offset  # select first: resizing is per channel
        offset += c
        if len(own):
            x = m[:, own.to(m.device)].double()
            parts.append(x if tuple(x.shape[-2:]) == grid else F.interpolate(x, size=grid, mode="nearest"))
    return torch.cat(parts, dim=1)


def _positions(x: torch.Tensor) -> torch.Tensor:
    """(B, d, H, W) → (P, B, d): one batch of vectors per position, for batched per-position algebra."""
    return x.flatten(2).permute(2, 0, 1)


def _batches(maps: Mapping[int, torch.Tensor], batch_size: int, device: torch.device, progress: bool, desc: str):
    n = int(next(iter(maps.values())).shape[0])
    for start in tqdm(range(0, n, batch_size), desc=desc, disable=not progress, leave=False):
        yield {l: m[start : start + batch_size].to(device) for l, m in maps.items()}


@torch.inference_mode()
def fit(
    train: Mapping[int, torch.Tensor],
    config: PadimConfig,
    *,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> PadimModel:
    """Per-position mean and Σ⁻¹ of the train embeddings (eq. 1), accumulated batch by batch in float64."""
    device = as_device(device)
    layers = config.layers
    n = check_maps(train, layers, "train")
    if n < 2:
        raise DataError(f"PaDiM needs at least 2 train images for a covariance, got {n}")
    maps = {l: train[l] for l in layers}
    grid = tuple(int(s) for s in maps[layers[0]].shape[-2:])  # the finest grid of the layers used
    channels = channel_subset(sum(int(m.shape[1]) for m in maps.values()), config.d, config.seed)
    total = torch.zeros(grid[0] * grid[1], config.d, dtype=torch.float64, device=device)
    for batch in _batches(maps, batch_size, device, progress, "padim mean"):
        total += _positions(embed(batch, channels, grid)).sum(dim=1)
    mean = total / n
    cov = torch.zeros(len(mean), config.d, config.d, dtype=torch.float64, device=device)
    for batch in _batches(maps, batch_size, device, progress, "padim covariance"):
        xc = _positions(embed(batch, channels, grid)) - mean[:, None]  # (P, B, d)
        cov.baddbmm_(xc.transpose(1, 2), xc)  # Σ_k (x_k − μ)(x_k − μ)ᵀ per position
    cov /= n - 1  # unbiased estimator (their code: np.cov)
    cov += config.eps * torch.eye(config.d, dtype=torch.float64, device=device)  # eq. 1: + ε·I
    chol, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()):
        raise DataError(
            "PaDiM covariance is not positive definite at some position (NaN/inf in the train features?); "
            "check the feature cache or raise compare.padim.eps"
        )
    return PadimModel(channels=channels, mean=mean, precision=torch.cholesky_inverse(chol), grid=grid)


@torch.inference_mode()
def mahalanobis(model: PadimModel, x: torch.Tensor) -> torch.Tensor:
    """eq. 2 for every position of embeddings x (B, d, H, W) → (B, H, W), batched over positions."""
    diff = _positions(x) - model.mean[:, None]  # (P, B, d)
    d2 = (torch.bmm(diff, model.precision) * diff).sum(-1)  # (x − μ)ᵀ Σ⁻¹ (x − μ)
    return d2.clamp_min(0).sqrt().T.reshape(len(x), *model.grid)


@torch.inference_mode()
def fit_and_score(
    train: Mapping[int, torch.Tensor],
    test: Mapping[int, torch.Tensor],
    config: PadimConfig,
    *,
    image_size: int,
    sigma: float,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> MethodResult:
    """Fit the per-position Gaussians on ``train``, score ``test``: maps (N, S, S) and image scores (max)."""
    device = as_device(device)
    t0 = time.perf_counter()
    model = fit(train, config, batch_size=batch_size, device=device, progress=progress)
    t1 = clock(device)
    n = check_maps(test, config.layers, "test")
    maps = torch.empty((n, image_size, image_size), dtype=torch.float32)
    start = 0
    for batch in _batches({l: test[l] for l in config.layers}, batch_size, device, progress, "padim score"):
        d = mahalanobis(model, embed(batch, model.channels, model.grid)).float()
        maps[start : start + len(d)] = to_image_maps(d, image_size, sigma).cpu()
        start += len(d)
    timings = {"fit_s": t1 - t0, "score_s": time.perf_counter() - t1}
    info = {
        "d": config.d,
        "grid": list(model.grid),
        "channels_total": sum(int(train[l].shape[1]) for l in config.layers),
    }
    return MethodResult(maps=maps, image_scores=maps.flatten(1).amax(dim=1).numpy(), info=info, timings=timings)
