"""§1.2 Feature recombination: cut z into a K×K grid, permute the cells at random, reassemble z'."""
from __future__ import annotations

import torch

from .errors import ConfigError


def check_grid(height: int, width: int, grid: int, key: str = "ssl.grid") -> None:
    """K must split the map into equal square-grid cells (§1.2: H/K × W/K sub-regions)."""
    if grid < 1 or height % grid or width % grid:
        raise ConfigError(
            f"{key}={grid} does not divide the {height}x{width} feature map; choose a divisor of {height} and {width}"
        )


def recombine(z: torch.Tensor, grid: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return z' (§1.2, Fig. 3): each sample's K×K cells reordered by its own random permutation.

    z: (B, C, H, W). The permutation is drawn per sample from ``generator`` (seeded by the caller),
    so training is reproducible.
    """
    b, c, h, w = z.shape
    check_grid(h, w, grid)
    k, ch, cw = grid, h // grid, w // grid
    # S = [z_{i,j}], j = 1..K², in row-major order: (B, K*K, C, H/K, W/K)
    cells = z.reshape(b, c, k, ch, k, cw).permute(0, 2, 4, 1, 3, 5).reshape(b, k * k, c, ch, cw)
    # A random permutation of the index sequence per sample (argsort of uniform noise).
    noise = torch.rand(b, k * k, generator=generator, device="cpu")
    perm = noise.argsort(dim=1).to(z.device)
    shuffled = cells[torch.arange(b, device=z.device)[:, None], perm]
    # Reassemble S' into z' ∈ R^{C×H×W}.
    return shuffled.reshape(b, k, k, c, ch, cw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)
