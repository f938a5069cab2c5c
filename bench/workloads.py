"""What the jobs of ``python -m bench`` run on (``bench.jobs``, ``bench.method_jobs``): each job process's
set-up, its inputs (normalised synthetic renders, random per-layer maps of the cached shapes), the backbone and
its modes, the fused-feature cosine between two modes, FLOP counts, and the grid K a map size allows."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .settings import Mode, Settings


def start_job(settings: Settings, malloc: bool = False) -> torch.device:
    """What every job does first in its process: silence the expected warnings (random weights, compile chatter),
    tune malloc when asked (``frad.runtime.tune_malloc``, as the pipeline stages run), set the thread count,
    and turn on cudnn.benchmark on CUDA. Returns the device."""
    warnings.simplefilter("ignore")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if malloc:
        from frad.runtime import tune_malloc

        if not tune_malloc():
            raise RuntimeError("frad.runtime.tune_malloc is not available here (not glibc, or FRAD_MALLOC_TUNE=0)")
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    dev = torch.device(settings.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return dev


def synthetic_images(
    n: int, size: int, mean: Sequence[float], std: Sequence[float], split: str = "train"
) -> torch.Tensor:
    """``n`` normalised synthetic MVTec-like renders (objects and textures) of ``size``², CPU float32.
    At most 8 distinct images are rendered; the rest repeat them (content does not change speed)."""
    from frad.datasets.synthetic_render import render_sample

    cats = ("bottle", "tile", "screw", "carpet")
    distinct = [render_sample(cats[i % len(cats)], index=i, split=split, size=size).image for i in range(min(n, 8))]
    x = torch.from_numpy(np.stack([distinct[i % len(distinct)] for i in range(n)]))
    x = x.permute(0, 3, 1, 2).float().div_(255)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous()


def build_backbone(
    name: str, weights: str, layers: Sequence[int], mode: Mode, device: torch.device, seed: int
) -> tuple[Any, Callable[[torch.Tensor], dict[int, torch.Tensor]]]:
    """(Backbone module, callable running it): same weights for every mode (seeded when random)."""
    from frad.backbone import load_backbone

    torch.manual_seed(seed)
    backbone = load_backbone(name, weights, layers, channels_last=mode.channels_last, precision=mode.precision).to(
        device
    )
    return backbone, compiled(backbone, mode, device)


def as_mode(backbone: Any, mode: Mode) -> Any:
    """A copy of ``backbone`` (same weights) run as ``mode`` (eager; compile separately)."""
    import copy

    out = copy.deepcopy(backbone)
    out.precision, out.channels_last = mode.precision, mode.channels_last
    return out.to(memory_format=torch.channels_last if mode.channels_last else torch.contiguous_format)


def compiled(backbone: Any, mode: Mode, device: torch.device) -> Callable[[torch.Tensor], dict[int, torch.Tensor]]:
    if not mode.compile:
        return backbone
    if device.type == "cpu":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # frozen weights: fold BN, prepack conv weights (oneDNN)
    return torch.compile(backbone)


def fused_cosine(ref: dict[int, torch.Tensor], out: dict[int, torch.Tensor], channels: int) -> tuple[float, float]:
    """Mean and min over positions of cos(z_mode, z_fp32) of the fused features (eq. 1–3)."""
    from frad.features import fuse_features

    z0 = fuse_features({k: v.float().cpu() for k, v in ref.items()}, channels).double()
    z1 = fuse_features({k: v.float().cpu() for k, v in out.items()}, channels).double()
    cos = F.cosine_similarity(z1, z0, dim=1)
    return float(cos.mean()), float(cos.min())


def backbone_flops(backbone: Any, size: int) -> float:
    """FLOPs (2 per multiply-add) of one image through the stages up to the deepest layer
    (counted on a weightless meta copy)."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    stages = copy.deepcopy(backbone.stages).to("meta")
    x = torch.empty(1, 3, size, size, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        for stage in stages:
            x = stage(x)
    return float(counter.get_total_flops())


def recon_flops(channels: int, widths: tuple[int, int, int], side: int, train: bool, gfe_grid: int = 4) -> float:
    """FLOPs per sample through the reconstruction net (forward, or forward+backward when ``train``)."""
    from torch.utils.flop_counter import FlopCounterMode

    from frad.config import ModelConfig
    from frad.features import cosine_distance
    from frad.model import ReconstructionNet

    with torch.device("meta"):
        model = ReconstructionNet(ModelConfig(in_channels=channels, widths=widths, gfe_grid=gfe_grid)).train(train)
        z = torch.empty(2, channels, side, side)
        with FlopCounterMode(display=False) as counter:
            if train:
                cosine_distance(z, model(z)).mean().backward()
            else:
                with torch.no_grad():
                    model(z)
    return float(counter.get_total_flops()) / 2


def random_maps(
    settings: Settings, n: int, generator: torch.Generator, layers: Sequence[int] | None = None
) -> dict[int, torch.Tensor]:
    """Per-layer maps of the cached shapes and dtype (fp16) for ``layers`` (default: the layer set L)."""
    from frad.backbone_registry import BACKBONES

    spec = BACKBONES[settings.backbone]
    return {
        l: torch.randn(
            n,
            spec.channels[l],
            settings.image_size // spec.strides[l],
            settings.image_size // spec.strides[l],
            generator=generator,
        ).half()
        for l in (settings.layers if layers is None else layers)
    }


def grids(side: int, widths: Sequence[int] = (256, 256, 256)) -> tuple[int, int]:
    """(GFE K, shuffle K): the paper's K = 4 (§2.3) when the fused map allows it (GFE needs the side
    to be a multiple of 4·K and every width a multiple of K², the shuffle grid a divisor of the side),
    else the largest of 2, 1 that fits (only tiny --quick maps need that)."""
    gfe = next((k for k in (4, 2) if side % (4 * k) == 0 and all(w % (k * k) == 0 for w in widths)), 1)
    ssl = next(k for k in (4, 2, 1) if side % k == 0)
    return gfe, ssl
