"""The harness of ``scripts/diagnose.py`` (docs/diagnosis.md): load a feature cache, train FRAD on its train maps
and score its test maps exactly as the pipeline does (§1.5: bilinear upsampling, Gaussian σ = 4, max of the map),
measure image/pixel AUROC, AU-PRO and the cosine distance D_cos (eq. 8) on the fused grid, and write rows (one
run per seed) as a Markdown table. The experiments built on it are ``diagnose_experiments``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from frad.cache import FeatureCache
from frad.config import ModelConfig, TrainConfig
from frad.evaluation import metrics
from frad.evaluation.postprocess import image_scores
from frad.features import cosine_distance, fuse_features
from frad.score import anomaly_maps
from frad.train import train_model

LAYERS = (2, 3)
SIGMA = 4.0


@dataclasses.dataclass
class Data:
    train: dict[int, torch.Tensor]
    test: dict[int, torch.Tensor]
    masks: np.ndarray | None  # (N, S, S) bool; None: a category without masks (image metrics only)
    labels: np.ndarray
    image_size: int
    grid_defect: torch.Tensor | None  # (N, h, w) bool: defect area ≥ 1/2 of the grid cell
    grid_normal: torch.Tensor  # (N, h, w) bool: cells of good images
    foreign: dict[int, torch.Tensor] | None = None  # train maps of another category (the copy test)


def load(path: str, channels: int, foreign: str | None = None) -> Data:
    cache = FeatureCache(path)
    train, test = cache.layers("train", LAYERS), cache.layers("test", LAYERS)
    masks, labels = cache.test_masks(), cache.test_labels()
    h, w = fuse_features({l: m[:1] for l, m in test.items()}, channels).shape[-2:]
    defect = None
    if masks is not None:
        masks = masks.astype(bool)
        defect = F.adaptive_avg_pool2d(torch.from_numpy(masks).float()[:, None], (h, w))[:, 0] >= 0.5
    normal = torch.from_numpy(labels == 0)[:, None, None].expand(-1, h, w)
    other = FeatureCache(foreign).layers("train", LAYERS) if foreign else None
    return Data(train, test, masks, labels, cache.image_size, defect, normal.clone(), other)


@torch.inference_mode()
def pasted_ratio(model, data: Data, channels: int) -> float:
    """Copy test: the central (h/4)² block of each good test z replaced by the same block of another category's z;
    mean D_cos on the pasted block / mean D_cos of the unpasted good z. ≈ 1: foreign features are reconstructed
    (copied) as well as normal ones."""
    good = torch.from_numpy(data.labels == 0)
    z = fuse_features({l: m[good] for l, m in data.test.items()}, channels)
    n, _, h, w = z.shape
    f = fuse_features({l: m[:n] for l, m in data.foreign.items()}, channels)
    idx = torch.arange(n) % len(f)
    ys, xs = slice(h // 2 - h // 8, h // 2 + h // 8), slice(w // 2 - w // 8, w // 2 + w // 8)
    pasted = z.clone()
    pasted[:, :, ys, xs] = f[idx][:, :, ys, xs]
    d_clean = cosine_distance(model.normalize(z), model(model.normalize(z)))
    d_pasted = cosine_distance(model.normalize(pasted), model(model.normalize(pasted)))
    return float(d_pasted[:, ys, xs].mean() / d_clean.mean())


def fmt(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return f"{v[0]:.3f}"
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


@torch.inference_mode()
def grid_distances(model, maps: dict[int, torch.Tensor], channels: int) -> torch.Tensor:
    """D_cos per position of the fused grid (eq. 8) for every image of ``maps``: (N, h, w)."""
    out = []
    for s in range(0, len(next(iter(maps.values()))), 32):
        z = model.normalize(fuse_features({l: m[s : s + 32] for l, m in maps.items()}, channels))
        out.append(cosine_distance(z, model(z)))
    return torch.cat(out)


def evaluate(maps: torch.Tensor, d: torch.Tensor | None, data: Data, top_k: int = 1) -> dict[str, float]:
    m = maps.numpy()
    row = {"image": metrics.image_auroc(image_scores(maps, top_k), data.labels)}
    if data.masks is not None:
        row.update(pixel=metrics.pixel_auroc(m, data.masks), pro=metrics.au_pro(m, data.masks, 0.3))
    if d is not None:
        row["d_norm"] = float(d[data.grid_normal].mean())
        row["d_bad"] = float(d[torch.from_numpy(data.labels == 1)].mean())  # every position of defective images
        if data.grid_defect is not None:
            row["d_def"] = float(d[data.grid_defect].mean())
            row["ratio"] = row["d_def"] / row["d_norm"]
        row["mean_auroc"] = metrics.image_auroc(d.flatten(1).mean(1).numpy(), data.labels)
        peak = d.flatten(1).amax(1).numpy()  # unblurred grid maximum per image
        row["max_good"], row["max_bad"] = float(peak[data.labels == 0].mean()), float(peak[data.labels == 1].mean())
    return row


def base_model(args) -> dict:
    """The diagnosis's reference model: GFE after every encoder module, the reading these numbers were measured
    against (docs/diagnosis.md); the project default since the study is GFE at the bottleneck only."""
    return {"in_channels": args.channels, "widths": (args.width,) * 3, "gfe_modules": tuple(args.gfe_modules)}


def relu_maps(maps: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """The cached maps through a ReLU: non-negative like the post-ReLU ResNet stages of the paper's WRN50-2
    (EfficientNet-Lite0's stage outputs end in a linear projection: about half their energy is negative)."""
    return {l: m.clamp(min=0) for l, m in maps.items()}


def train_eval(data: Data, args, seed: int, on_model: Callable | None = None, **over) -> dict[str, float]:
    channels = over.pop("channels", args.channels)
    if over.pop("relu", False):
        data = dataclasses.replace(data, train=relu_maps(data.train), test=relu_maps(data.test), foreign=None)
    mc = {**base_model(args), "in_channels": channels, **over.pop("model", {})}
    tc = {"epochs": args.epochs, "seed": seed, "device": "cpu", **over.pop("train", {})}
    result = train_model(data.train, channels, ModelConfig(**mc), TrainConfig(**tc), progress=False)
    maps = anomaly_maps(result.model, data.test, channels, data.image_size, SIGMA)
    row = evaluate(maps, grid_distances(result.model, data.test, channels), data, over.pop("top_k", 1))
    row["loss"] = result.history[-1]["rec"]
    if data.foreign is not None and channels == args.channels:
        row["pasted"] = pasted_ratio(result.model, data, args.channels)
    row["max_train"] = float(grid_distances(result.model, data.train, channels).flatten(1).amax(1).mean())
    if on_model is not None:
        on_model(result.model, maps, row)
    return row


def table(title: str, rows: list[tuple[str, list[dict]]], cols: tuple[str, ...]) -> str:
    names = {
        "image": "image AUROC",
        "pixel": "pixel AUROC",
        "pro": "AU-PRO",
        "d_norm": "D_cos normal",
        "d_def": "D_cos defect",
        "d_bad": "D_cos defective images",
        "ratio": "defect/normal",
        "mean_auroc": "AUROC of mean D",
        "loss": "train L_rec",
        "max_train": "max D train",
        "pasted": "pasted/normal",
        "max_good": "max D good",
        "max_bad": "max D defective",
    }
    lines = [
        f"### {title}",
        "",
        "| setting | seeds | " + " | ".join(names.get(c, c.replace("_", " ")) for c in cols) + " |",
    ]
    lines.append("|---|---|" + "---|" * len(cols))
    for label, runs in rows:
        cells = [fmt([r[c] for r in runs]) if all(c in r for r in runs) else "—" for c in cols]
        lines.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


FULL = (
    "image",
    "pixel",
    "pro",
    "d_norm",
    "d_def",
    "d_bad",
    "ratio",
    "mean_auroc",
    "loss",
    "max_train",
    "max_good",
    "max_bad",
    "pasted",
)
