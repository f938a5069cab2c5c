"""The settings of FRAD's network (§1, §1.3) and training (§1.4, §2.3) as frozen configs: the one place their rules
are checked (each error names the params key). Torch-free: params.yaml is validated against them at load, before
any stage runs, without importing the network or the training code."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .device import check_device
from .errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the reconstruction network; saved with every checkpoint."""

    in_channels: int = 512  # C of the fused features (§2.3)
    widths: tuple[int, int, int] = (256, 256, 256)
    gfe: bool = True
    gfe_grid: int = 4  # K of §1.3 (§2.3: K = 4)
    # Encoder modules followed by GFE (§1.3 does not say which): the bottleneck only. Study (3 dev categories, 3
    # seeds): pixel AUROC / AU-PRO better beyond seed noise on tire (+0.4 / +1.6) and bottle (+0.1), worse nowhere.
    gfe_modules: tuple[int, ...] = (3,)
    blocks_per_module: int = 3  # "3 modules × 3 BN layers" (§1)
    skips: tuple[int, ...] = (1, 2, 3)  # encoder modules with a skip to the decoder; §1: every module has one
    strides: tuple[int, int, int] = (1, 2, 2)  # per encoder module; paper silent: ResNet-style, bottleneck at 1/4
    input_norm: str = "none"  # "channel": z standardised with train statistics; paper: z as is (eq. 8 on z)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if len(self.widths) != 3 or any(w < 4 for w in self.widths):
            raise ConfigError(f"model.widths must be three integers >= 4, got {list(self.widths)}")
        skips = tuple(self.skips)
        if any(isinstance(i, bool) or i not in (1, 2, 3) for i in skips) or len(set(skips)) != len(skips):
            raise ConfigError(f"model.skips must be distinct encoder modules among 1, 2, 3, got {list(skips)}")
        object.__setattr__(self, "skips", tuple(sorted(int(i) for i in skips)))
        strides = tuple(self.strides)
        if len(strides) != 3 or any(isinstance(v, bool) or v not in (1, 2) for v in strides):
            raise ConfigError(f"model.strides must be three values, each 1 or 2, got {list(strides)}")
        object.__setattr__(self, "strides", tuple(int(v) for v in strides))
        if self.input_norm not in ("none", "channel"):
            raise ConfigError(f"model.input_norm must be 'none' or 'channel', got {self.input_norm!r}")
        gm = tuple(self.gfe_modules)
        if not gm or any(isinstance(i, bool) or i not in (1, 2, 3) for i in gm) or len(set(gm)) != len(gm):
            raise ConfigError(f"model.gfe_modules must be distinct encoder modules among 1, 2, 3, got {list(gm)}")
        object.__setattr__(self, "gfe_modules", tuple(sorted(int(i) for i in gm)))
        if self.gfe_grid < 1:
            raise ConfigError(f"model.grid must be >= 1, got {self.gfe_grid}")
        if self.gfe:
            k2 = self.gfe_grid * self.gfe_grid
            if any(self.widths[i - 1] % k2 for i in self.gfe_modules):
                raise ConfigError(
                    f"model.grid={self.gfe_grid}: the widths of the GFE modules in model.widths {list(self.widths)} "
                    f"must be divisible by K*K={k2} (eq. 6 compresses C_i to C_i/K²)"
                )

    @property
    def downsample(self) -> int:
        """Total stride of the encoder: the feature map must be divisible by it (and by it × K with GFE)."""
        s1, s2, s3 = self.strides
        return s1 * s2 * s3

    def check_input(self, height: int, width: int) -> None:
        """Fail early, naming the key, when the feature map cannot pass the network."""
        need = self.downsample * (self.gfe_grid if self.gfe else 1)
        if height % need or width % need:
            key = "model.grid" if self.gfe else "data.image_size"
            raise ConfigError(
                f"{key}: a {height}x{width} feature map cannot be split by the encoder (stride {self.downsample})"
                + (f" and a {self.gfe_grid}x{self.gfe_grid} GFE grid at every scale" if self.gfe else "")
                + f"; its sides must be multiples of {need}"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("widths", "skips", "strides", "gfe_modules"):
            d[key] = list(d[key])
        return d


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    batch_size: int = 16
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    ssl: bool = True  # feature recombination loss on/off (Table 3)
    ssl_lambda: float = 0.1  # λ of eq. 11
    ssl_grid: int = 4  # K of §1.2
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.epochs < 1:
            raise ConfigError(f"train.epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"train.batch_size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"train.lr must be a positive number, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"train.betas must be two numbers in [0, 1), got {list(self.betas)}")
        if not (self.ssl_lambda >= 0 and math.isfinite(self.ssl_lambda)):
            raise ConfigError(f"ssl.lambda must be >= 0, got {self.ssl_lambda}")
        if self.ssl_grid < 1:
            raise ConfigError(f"ssl.grid must be >= 1, got {self.ssl_grid}")
        check_device(self.device)
