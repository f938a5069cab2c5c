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


def draw_permutations(n: int, grid: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, K²) random permutations of the cell indices, one per sample (argsort of uniform noise, on the CPU).

    Drawing an epoch's permutations in one call consumes ``generator`` exactly like ``n`` separate
    per-batch calls (CPU uniform sampling is sequential), so batching the draw changes no result.
    """
    return torch.rand(n, grid * grid, generator=generator, device="cpu").argsort(dim=1)


def recombine(
    z: torch.Tensor, grid: int, generator: torch.Generator | None = None, perm: torch.Tensor | None = None
) -> torch.Tensor:
    """Return z' (§1.2, Fig. 3): each sample's K×K cells reordered by its own random permutation.

    z: (B, C, H, W). The permutation is drawn per sample from ``generator`` (seeded by the caller),
    so training is reproducible; or given as ``perm`` (B, K²) from :func:`draw_permutations`, already
    on z's device (the training loop moves an epoch's permutations once, not once per step).
    """
    b, c, h, w = z.shape
    check_grid(h, w, grid)
    k, ch, cw = grid, h // grid, w // grid
    # S = [z_{i,j}], j = 1..K², in row-major order: (B, K*K, C, H/K, W/K)
    cells = z.reshape(b, c, k, ch, k, cw).permute(0, 2, 4, 1, 3, 5).reshape(b, k * k, c, ch, cw)
    if perm is None:
        perm = draw_permutations(b, k, generator)
    if tuple(perm.shape) != (b, k * k):
        raise ValueError(f"perm must have shape ({b}, {k * k}), got {tuple(perm.shape)}")
    perm = perm.to(z.device)
    shuffled = cells[torch.arange(b, device=z.device)[:, None], perm]
    # Reassemble S' into z' ∈ R^{C×H×W}.
    return shuffled.reshape(b, k, k, c, ch, cw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)
