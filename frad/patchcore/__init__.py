"""PatchCore (Roth et al., CVPR 2022): its settings, ``PatchcoreConfig`` (params key ``compare.patchcore``, registered in
frad.methods). Torch-free: params.yaml is validated against it at load, before any stage runs, without importing
the method's code (:mod:`frad.patchcore.method`), so only this method's stage items depend on that code."""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import check_positive_int, check_seed
from ..errors import ConfigError
from ..layers import check_layers


@dataclass(frozen=True)
class PatchcoreConfig:
    coreset: float = 0.1  # coreset size as a fraction of |M| (their MVTec results: 1 %, 10 %, 25 %)
    dims: int = 1024  # per-position feature size (their code: pretrain and target embed dimension 1024)
    projection: int = 128  # random projection for the coreset selection (their code: 128)
    neighbourhood: int = 3  # p of eq. 3
    reweight: bool = False  # eq. 7 image-score reweighting
    k: int = 9  # b of eq. 7: neighbours of m* in M
    seed: int = 0
    layers: tuple[int, ...] = (2, 3)

    def __post_init__(self) -> None:
        c = self.coreset
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 < c <= 1:
            raise ConfigError(f"compare.patchcore.coreset must be in (0, 1], got {c!r}")
        object.__setattr__(self, "coreset", float(c))
        check_positive_int(self.dims, "compare.patchcore.dims")
        check_positive_int(self.projection, "compare.patchcore.projection")
        p = self.neighbourhood
        if check_positive_int(p, "compare.patchcore.neighbourhood") % 2 == 0:
            raise ConfigError(f"compare.patchcore.neighbourhood must be odd (a centred p×p patch), got {p}")
        if not isinstance(self.reweight, bool):
            raise ConfigError(f"compare.patchcore.reweight must be true or false, got {self.reweight!r}")
        check_positive_int(self.k, "compare.patchcore.k")
        check_seed(self.seed, "compare.patchcore.seed")
        object.__setattr__(self, "layers", check_layers(self.layers, "compare.patchcore.layers"))
