"""Reverse distillation (Deng & Li, CVPR 2022): its settings, ``RDConfig`` (params key ``compare.rd``, registered in
frad.methods). Torch-free: params.yaml is validated against it at load, before any stage runs, without importing
the method's code (:mod:`frad.rd.method`), so only this method's stage items depend on that code."""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import check_positive, check_positive_int, check_seed
from ..device import check_device
from ..errors import ConfigError
from ..layers import check_layers


@dataclass(frozen=True)
class RDConfig:
    epochs: int = 200  # their code
    batch_size: int = 16
    lr: float = 0.005
    betas: tuple[float, float] = (0.5, 0.999)
    seed: int = 0
    layers: tuple[int, ...] = (1, 2, 3)
    device: str = "cpu"
    student_output: str = "relu"  # their de-ResNet; "linear": no ReLU at the decoder stages' outputs

    def __post_init__(self) -> None:
        check_positive_int(self.epochs, "compare.rd.epochs")
        if self.student_output not in ("relu", "linear"):
            raise ConfigError(f"compare.rd.student_output must be 'relu' or 'linear', got {self.student_output!r}")
        check_positive_int(self.batch_size, "compare.rd.batch_size")
        object.__setattr__(self, "lr", check_positive(self.lr, "compare.rd.lr"))
        betas = tuple(self.betas)
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            raise ConfigError(f"compare.rd.betas must be two numbers in [0, 1), got {list(betas)}")
        object.__setattr__(self, "betas", tuple(float(b) for b in betas))
        check_seed(self.seed, "compare.rd.seed")
        layers = check_layers(self.layers, "compare.rd.layers")
        if layers != tuple(range(layers[0], layers[-1] + 1)):
            raise ConfigError(
                f"compare.rd.layers must be consecutive (the decoder mirrors the backbone), got {list(layers)}"
            )
        object.__setattr__(self, "layers", layers)
        try:
            check_device(self.device)
        except ConfigError:
            raise ConfigError(f"compare.rd.device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}") from None
