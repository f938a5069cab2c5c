"""§1.5 Inference of FRAD: per-position cosine distance (eq. 8) between z and the reconstruction ẑ, then the shared
post-processing of :mod:`frad.evaluation.postprocess` (bilinear upsampling, Gaussian σ = 4, image score = max). Runs batched on
the model's device."""

from __future__ import annotations

from typing import Mapping

import torch

from .evaluation.postprocess import to_image_maps
from .features import cosine_distance, fuse_features
from .model import ReconstructionNet


@torch.inference_mode()
def anomaly_maps(
    model: ReconstructionNet,
    layer_maps: Mapping[int, torch.Tensor],
    channels: int,
    image_size: int,
    sigma: float = 4.0,
    batch_size: int = 32,
) -> torch.Tensor:
    """A_pix for every image (§1.5): (N, image_size, image_size) float32 on the CPU.

    ``layer_maps``: cached per-layer backbone maps {layer: (N, C_l, H_l, W_l)} of the test images.
    """
    device = next(model.parameters()).device
    layers = sorted(layer_maps)
    n = int(layer_maps[layers[0]].shape[0])
    out = torch.empty((n, image_size, image_size), dtype=torch.float32)
    model.eval()
    normalize = getattr(model, "normalize", None) or (lambda z: z)  # any module mapping z to ẑ scores too
    for start in range(0, n, batch_size):
        batch = {l: layer_maps[l][start : start + batch_size].to(device, non_blocking=True) for l in layers}
        z = normalize(fuse_features(batch, channels))
        d = cosine_distance(z, model(z))  # eq. 8 per position
        out[start : start + len(d)] = to_image_maps(d, image_size, sigma).float().cpu()
    return out
