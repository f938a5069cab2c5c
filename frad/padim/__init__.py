"""PaDiM (Defard et al., ICPR workshops 2021): its settings, ``PadimConfig`` (params key ``compare.padim``, registered in
frad.methods). Torch-free: params.yaml is validated against it at load, before any stage runs, without importing
the method's code (:mod:`frad.padim.method`), so only this method's stage items depend on that code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..checks import check_positive, check_positive_int, check_seed
from ..errors import ConfigError
from ..layers import check_layers


@dataclass(frozen=True)
class PadimConfig:
    d: int = 100  # their paper: 100 for ResNet-18 (448 channels), 550 for WRN50-2 (1792 channels)
    eps: float = 0.01  # ε of eq. 1 (their code: 0.01)
    seed: int = 0
    layers: tuple[int, ...] = (1, 2, 3)

    def __post_init__(self) -> None:
        check_positive_int(self.d, "compare.padim.d")
        object.__setattr__(self, "eps", check_positive(self.eps, "compare.padim.eps"))
        check_seed(self.seed, "compare.padim.seed")
        object.__setattr__(self, "layers", check_layers(self.layers, "compare.padim.layers"))

    def check_backbone(self, backbone: str, channels: Mapping[int, int]) -> None:
        """d is drawn from the channels of the layers used (§3.1): at most their sum (``channels``: {layer: C_l})."""
        total = sum(channels[layer] for layer in self.layers)
        if self.d > total:
            raise ConfigError(
                f"compare.padim.d={self.d} exceeds the {total} channels of {backbone}'s layers {list(self.layers)}; "
                "lower it (the PaDiM paper: 550 for WRN50-2, 100 for ResNet-18-size backbones)"
            )
