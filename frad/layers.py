"""Layer sets L ⊆ {1, 2, 3} of §1.1 ("layers 1, 2, 3" = the stride-4/8/16 backbone maps).

Kept free of torch so that validating params (every stage, before any heavy import) stays cheap."""

from __future__ import annotations

from typing import Sequence

from .errors import ConfigError

VALID_LAYERS = (1, 2, 3)

# Channels of layers 1, 2, 3 of each supported backbone (frad.backbone builds them; params checks use them at load).
BACKBONE_CHANNELS: dict[str, dict[int, int]] = {
    "wide_resnet50_2": {1: 256, 2: 512, 3: 1024},
    "tf_efficientnet_lite0": {1: 24, 2: 40, 3: 112},
}


def check_layers(layers: Sequence[int], key: str = "features.layers") -> tuple[int, ...]:
    """Validate a layer set L ⊆ {1,2,3}; returns it sorted and de-duplicated."""
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence) or len(layers) == 0:
        raise ConfigError(f"{key} must be a non-empty list drawn from [1, 2, 3], got {layers!r}")
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int) or layer not in VALID_LAYERS:
            raise ConfigError(f"{key} must be drawn from [1, 2, 3], got {list(layers)!r}")
    if len(set(layers)) != len(layers):
        raise ConfigError(f"{key} lists a layer twice: {list(layers)!r}")
    return tuple(sorted(layers))
