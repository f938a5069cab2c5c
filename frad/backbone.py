"""Frozen ImageNet backbone giving the multi-level features of §1.1.

"Layers 1, 2, 3" are the stride-4/8/16 feature maps (the nets, their stages and where their weights come from
are :mod:`frad.backbone_registry`). A :class:`Backbone` keeps only the modules up to the deepest requested layer,
so nothing past it is ever computed. Inputs must already be normalised with ``backbone.mean``/``backbone.std``
(see :meth:`Backbone.normalize`). :func:`load_backbone` builds one with its weights (``"random"`` must be asked
for and warns); :func:`extract_layers` runs it over images in batches.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor, nn

from frad.backbone_registry import BACKBONES, BackboneSpec, load_strict, read_state_dict
from frad.errors import ConfigError, TrainingError

__all__ = [
    "PRECISIONS",
    "Backbone",
    "extract_layers",
    "load_backbone",
]

# autocast dtype per precision name; None = plain fp32
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Backbone(nn.Module):
    """Frozen feature extractor: ``forward(x) -> {layer: (B, C_layer, H/stride, W/stride)}``.

    Always in eval mode and without trainable parameters. ``precision`` ("fp32"/"bf16"/"fp16")
    sets an autocast dtype applied inside ``forward`` on the input's device type, after the
    stem (which stays fp32 for accuracy); ``channels_last`` converts weights and input to NHWC.
    Outputs are contiguous float32.
    """

    def __init__(
        self,
        spec: BackboneSpec,
        net: nn.Module,
        layers: Iterable[int],
        *,
        channels_last: bool = False,
        precision: str = "fp32",
    ):
        super().__init__()
        self.layers: tuple[int, ...] = _check_layers(spec, layers)
        if precision not in PRECISIONS:
            raise ConfigError(f"backbone precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.name = spec.name
        self.channels: dict[int, int] = {i: spec.channels[i] for i in self.layers}
        self.strides: dict[int, int] = {i: spec.strides[i] for i in self.layers}
        self.mean: tuple[float, float, float] = spec.mean
        self.std: tuple[float, float, float] = spec.std
        self.precision = precision
        self.channels_last = channels_last
        # stem + stages up to the deepest requested layer; the rest of `net` is dropped
        self.stages = nn.ModuleList(spec.stages(net)[: max(self.layers) + 1])
        self.requires_grad_(False)
        if channels_last:
            self.to(memory_format=torch.channels_last)
        super().train(False)

    def train(self, mode: bool = True) -> Backbone:
        """Stays in eval mode whatever ``mode`` is (frozen BatchNorm statistics)."""
        return super().train(False)

    def normalize(self, images: Tensor) -> Tensor:
        """Map images in [0, 1] (B, 3, H, W) to this backbone's input normalisation."""
        mean = images.new_tensor(self.mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.std).view(1, 3, 1, 1)
        return (images - mean) / std

    def forward(self, x: Tensor) -> dict[int, Tensor]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = PRECISIONS[self.precision]
        feats: dict[int, Tensor] = {}
        # the stem stays fp32 (a few % of the FLOPs): bf16 rounding there is amplified by every
        # later layer (EffNet-Lite0 layer-3 cosine vs fp32 on noise textures: ~0.998 -> ~0.9993)
        x = self.stages[0](x)
        with torch.autocast(device_type=x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            for i, stage in enumerate(self.stages[1:], start=1):
                x = stage(x)
                if i in self.layers:
                    feats[i] = x
        return {i: f.float().contiguous() for i, f in feats.items()}

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, layers={self.layers}, channels={self.channels}, "
            f"precision={self.precision!r}, channels_last={self.channels_last}"
        )


def _check_layers(spec: BackboneSpec, layers: Iterable[int]) -> tuple[int, ...]:
    try:
        out = tuple(sorted({int(i) for i in layers}))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"backbone layers must be integers from {sorted(spec.channels)}, got {layers!r}") from err
    if not out or not set(out) <= set(spec.channels):
        raise ConfigError(f"backbone layers must be a non-empty subset of {sorted(spec.channels)}, got {layers!r}")
    return out


def load_backbone(
    name: str,
    weights: str | os.PathLike[str] = "imagenet",
    layers: Iterable[int] = (1, 2, 3),
    *,
    channels_last: bool = False,
    precision: str = "fp32",
    download_timeout: float = 10.0,
) -> Backbone:
    """Build a frozen :class:`Backbone` ``name`` (a key of :data:`BACKBONES`) on CPU.

    ``weights``: "imagenet" (default), "random" (warns: meaningless as a benchmark), or a path
    to a local state_dict file of the full classification net (torchvision/timm naming, raw or
    under "state_dict"/"model"). Raises WeightsError when weights are missing, unreachable
    (WRN download bounded by ``download_timeout`` seconds) or of the wrong architecture.
    """
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    spec = BACKBONES[name]
    layers = _check_layers(spec, layers)  # fail on bad config before any slow load
    if precision not in PRECISIONS:
        raise ConfigError(f"backbone precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if isinstance(weights, str) and weights == "random":
        warnings.warn(
            f"backbone {name} uses RANDOM weights (weights='random'): features and any "
            f"anomaly-detection results are meaningless as a benchmark",
            UserWarning,
            stacklevel=2,
        )
        net = spec.build()
    else:
        # weights first (fail fast, e.g. offline), then the net on the meta device: no wasted init
        if isinstance(weights, str) and weights == "imagenet":
            sd, source = spec.imagenet(download_timeout), f"{name} ImageNet weights"
        else:
            path = Path(weights).expanduser()
            sd, source = spec.convert(read_state_dict(path)), str(path)
        with torch.device("meta"):
            net = spec.build()
        load_strict(net, sd, source, name)
    return Backbone(spec, net, layers, channels_last=channels_last, precision=precision)


@torch.inference_mode()
def extract_layers(
    backbone: Backbone, images: Tensor, *, batch_size: int = 16, device: str | torch.device = "cpu"
) -> dict[int, Tensor]:
    """Run ``backbone`` over normalised ``images`` (N, 3, H, W) in batches on ``device`` (the
    backbone is moved there); returns ``{layer: (N, C, h, w)}`` float32 tensors on CPU."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {device!r} requested but CUDA is not available")
    backbone.to(dev)
    chunks: dict[int, list[Tensor]] = {i: [] for i in backbone.layers}
    for start in range(0, len(images), batch_size):
        out = backbone(images[start : start + batch_size].to(dev, non_blocking=True))
        for i, f in out.items():
            chunks[i].append(f.cpu())
    if not chunks or not all(chunks.values()):
        raise ConfigError("extract_layers got no images")
    return {i: torch.cat(c) for i, c in chunks.items()}
