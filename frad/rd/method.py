"""Reverse distillation (Deng & Li, "Anomaly Detection via Reverse Distillation from One-Class Embedding",
CVPR 2022) on the cached backbone maps.

Teacher E: the frozen backbone's layer maps, read from the cache as they are (their §3.1).
Student: the one-class bottleneck embedding OCBE (§3.3: multi-scale feature fusion, then the one-class
embedding block) and a decoder D mirroring the backbone (de-ResNet, 2×2 stride-2 transposed convolutions).
Loss (eq. 2–3): Σ_k mean over positions of 1 − cos(f_E^k, f_D^k) along channels. Anomaly map (eq. 4):
Σ_k of each layer's 1 − cos upsampled to the image size (bilinear), then the σ Gaussian; image score = max.

Widths are read from the teacher's channels, so the same code runs on WRN50-2 (256/512/1024, their setting)
and EfficientNet-Lite0 (24/40/112). Their student ends every decoder stage in a ReLU, as ResNet's stages do, so
it matches ResNet's non-negative maps; Lite0's stages end in a linear projection (about half of their energy is
negative), which a ReLU output can never match (cosine distance ≥ 0.29–0.38 per layer at every position on
screw and bottle). ``student_output: linear`` drops the decoder stages' last ReLU; the default keeps their design
(on MVTec AD screw with Lite0 it scored higher: docs/diagnosis.md). Block counts and widths follow their
``wide_resnet50_2`` configuration:
OCE = 3 bottleneck blocks to 2·C_last channels; decoder stages of 3, 4, 6 blocks (coarse to fine); every
bottleneck's inner width is half its output (the "wide" variant).
"""

from __future__ import annotations

import math
import time
from typing import Mapping, Sequence

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from ..evaluation.postprocess import gaussian_blur, to_image_maps
from ..features import cosine_distance
from ..harness import MethodResult, as_device, check_maps
from ..optim import Adam, epoch_mean
from . import RDConfig

OCE_BLOCKS = 3  # their BN_layer(Bottleneck, 3)
DECODER_BLOCKS = (3, 4, 6)  # their de_wide_resnet50_2 layers 1–3, coarsest stage first


def _bn_relu(conv: nn.Module, c: int) -> list[nn.Module]:
    return [conv, nn.BatchNorm2d(c), nn.ReLU(inplace=True)]


class Bottleneck(nn.Module):
    """ResNet bottleneck 1×1 → 3×3 (stride) → 1×1 with a residual; ``up``: the 3×3 becomes a 2×2 stride-2
    transposed conv and the shortcut a 2×2 stride-2 transposed conv + BN (their de-ResNet ``DeBottleneck``)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, up: bool = False):
        super().__init__()
        self.relu = True  # False: linear output (a decoder stage's last block with ``student_output: linear``)
        w = max(1, cout // 2)  # wide variant: inner width = output / 2
        mid = nn.ConvTranspose2d(w, w, 2, stride=2, bias=False) if up else nn.Conv2d(w, w, 3, stride, 1, bias=False)
        self.body = nn.Sequential(
            *_bn_relu(nn.Conv2d(cin, w, 1, bias=False), w),
            *_bn_relu(mid, w),
            nn.Conv2d(w, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        if up:
            self.shortcut = nn.Sequential(nn.ConvTranspose2d(cin, cout, 2, stride=2, bias=False), nn.BatchNorm2d(cout))
        elif stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x) + self.shortcut(x)
        return torch.relu(out) if self.relu else out


class OCBE(nn.Module):
    """One-class bottleneck embedding (§3.3): multi-scale feature fusion (each finer map brought to the coarsest
    resolution by stride-2 3×3 conv + BN + ReLU steps through the next layers' widths, then concatenated), then
    the one-class embedding block (bottleneck blocks, the first with stride 2) → 2·C_last channels."""

    def __init__(self, channels: Sequence[int], blocks: int = OCE_BLOCKS):
        super().__init__()
        last = channels[-1]
        self.fuse = nn.ModuleList(
            nn.Sequential(
                *[
                    m
                    for a, b in zip(channels[i:-1], channels[i + 1 :])
                    for m in _bn_relu(nn.Conv2d(a, b, 3, 2, 1, bias=False), b)
                ]
            )
            for i in range(len(channels))
        )  # the coarsest layer's entry is empty: used as it is
        embed = 2 * last
        self.oce = nn.Sequential(
            Bottleneck(len(channels) * last, embed, stride=2), *[Bottleneck(embed, embed) for _ in range(blocks - 1)]
        )

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.oce(torch.cat([f(x) for f, x in zip(self.fuse, feats)], dim=1))


class Decoder(nn.Module):
    """De-ResNet: one stage per teacher layer, coarse to fine, each opened by an upsampling bottleneck (2×2
    stride-2 transposed convs) to that layer's width; returns the maps finest first (the teacher's order)."""

    def __init__(self, channels: Sequence[int], blocks: Sequence[int] = DECODER_BLOCKS, linear_output: bool = False):
        super().__init__()
        stages, cin = [], 2 * channels[-1]
        for c, n in zip(reversed(channels), blocks):
            body = [Bottleneck(cin, c, up=True), *[Bottleneck(c, c) for _ in range(n - 1)]]
            body[-1].relu = not linear_output  # each stage's output is compared with a teacher map
            stages.append(nn.Sequential(*body))
            cin = c
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out[::-1]


class Student(nn.Module):
    """OCBE + decoder; ``linear_output``: no ReLU at the decoder stages' outputs (for a signed teacher)."""

    def __init__(self, channels: Sequence[int], linear_output: bool = False):
        super().__init__()
        if len(channels) > len(DECODER_BLOCKS):
            raise ConfigError(f"RD supports at most {len(DECODER_BLOCKS)} layers, got {len(channels)}")
        self.channels = tuple(int(c) for c in channels)
        self.linear_output = bool(linear_output)
        self.bottleneck = OCBE(self.channels)
        self.decoder = Decoder(self.channels, linear_output=self.linear_output)

    def forward(self, teacher: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return self.decoder(self.bottleneck(teacher))


def rd_loss(teacher: list[torch.Tensor], student: list[torch.Tensor]) -> torch.Tensor:
    """eq. 2–3: Σ_k mean over the batch and positions of 1 − cos(f_E^k, f_D^k) along channels. (Their released
    code takes the cosine of whole flattened maps; the paper's per-position form is the one used here.)"""
    return sum(cosine_distance(t, s).mean() for t, s in zip(teacher, student))


def _check_grids(maps: Mapping[int, torch.Tensor], layers: Sequence[int]) -> None:
    """Each layer's grid is twice the next one's and the coarsest is even (the OCE halves it, the decoder doubles)."""
    shapes = [tuple(maps[l].shape[-2:]) for l in layers]
    ok = all(a == (2 * b[0], 2 * b[1]) for a, b in zip(shapes, shapes[1:])) and all(s % 2 == 0 for s in shapes[-1])
    if not ok:
        raise DataError(
            f"RD needs layer grids halving from layer to layer with an even coarsest one, got "
            f"{dict(zip(layers, shapes))}; use an image size that is a multiple of 32"
        )


def _teacher(maps: Mapping[int, torch.Tensor], layers: Sequence[int], idx) -> list[torch.Tensor]:
    return [maps[l][idx].float() for l in layers]


def train_rd(
    train: Mapping[int, torch.Tensor],
    config: RDConfig,
    *,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> tuple[Student, list[float]]:
    """Train the student on the train maps (house conventions of frad.train: seeded init and batch order, the
    maps moved to the device once, one loss sync per epoch, a clear error on divergence). Returns the student
    (eval mode) and the per-epoch mean loss."""
    device = as_device(config.device if device is None else device)
    layers = config.layers
    n = check_maps(train, layers, "train")
    _check_grids(train, layers)
    if device.type != "cpu":
        torch.backends.cudnn.benchmark = True  # GPU: speed over bitwise reproducibility (as frad.train)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)  # batch order
    maps = {l: train[l].to(device, non_blocking=True) for l in layers}
    linear = config.student_output == "linear"
    model = Student([int(train[l].shape[1]) for l in layers], linear_output=linear).to(device)
    model.train()
    opt = Adam(model.parameters(), lr=config.lr, betas=config.betas)
    bs = min(config.batch_size, n)
    steps = math.ceil(n / bs)
    history: list[float] = []
    bar = tqdm(range(config.epochs), desc="rd train", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        order = torch.randperm(n, generator=gen).to(device)
        sums = torch.zeros(steps, 1, device=device)
        for step in range(steps):
            teacher = _teacher(maps, layers, order[step * bs : (step + 1) * bs])
            loss = rd_loss(teacher, model(teacher))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sums[step, 0] = loss.detach()
        history.append(epoch_mean(sums, bs, n, epoch + 1, "compare.rd.lr")[0].item())
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    return model.eval(), history


@torch.inference_mode()
def anomaly_maps(
    model: Student,
    test: Mapping[int, torch.Tensor],
    layers: Sequence[int],
    *,
    image_size: int,
    sigma: float,
    batch_size: int = 32,
) -> torch.Tensor:
    """eq. 4: Σ_k upsampled (1 − cos(f_E^k, f_D^k)), then the σ Gaussian: (N, S, S) float32 on the CPU."""
    device = next(model.parameters()).device
    n = check_maps(test, layers, "test")
    out = torch.empty((n, image_size, image_size), dtype=torch.float32)
    for start in range(0, n, batch_size):
        teacher = _teacher(test, layers, slice(start, start + batch_size))
        teacher = [t.to(device) for t in teacher]
        total = sum(to_image_maps(cosine_distance(t, s), image_size, 0.0) for t, s in zip(teacher, model(teacher)))
        out[start : start + len(total)] = gaussian_blur(total, sigma).cpu()  # the blur is linear: blur(Σ) = Σ blur
    return out


def fit_and_score(
    train: Mapping[int, torch.Tensor],
    test: Mapping[int, torch.Tensor],
    config: RDConfig,
    *,
    image_size: int,
    sigma: float,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> MethodResult:
    """Train the student on ``train`` (``device`` None: ``config.device``), score ``test``: maps (N, S, S) and
    image scores (max of the map); ``info`` holds the per-epoch loss ``history``."""
    t0 = time.perf_counter()
    model, history = train_rd(train, config, device=device, progress=progress)
    t1 = time.perf_counter()
    maps = anomaly_maps(model, test, config.layers, image_size=image_size, sigma=sigma, batch_size=batch_size)
    timings = {"fit_s": t1 - t0, "s_per_epoch": (t1 - t0) / config.epochs, "score_s": time.perf_counter() - t1}
    info = {
        "epochs": config.epochs,
        "final_loss": history[-1],
        "history": history,
        "parameters": sum(p.numel() for p in model.parameters()),
        "student_output": "linear" if model.linear_output else "relu",
    }
    return MethodResult(maps=maps, image_scores=maps.flatten(1).amax(dim=1).numpy(), info=info, timings=timings)
