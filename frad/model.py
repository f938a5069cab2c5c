"""§1 and Fig. 1: the reconstruction network (convolutional autoencoder) and §1.3 the GFE module.

Choices the paper leaves open (each also noted beside the code):
- widths: encoder modules keep ``widths`` = (256, 256, 256) channels for C = 512 input (small, fast; the
  paper gives none); bottleneck inner width is a quarter of the output width, as in ResNet.
- strides: module 1 keeps the input resolution, modules 2 and 3 halve it with a stride-2 3×3 conv
  (ResNet-style), so the decoder's two upsampling bottlenecks (2×2 stride-2 transposed conv) mirror them.
- GFE sits at the output of every encoder module (its tiled global vector is concatenated, then fused
  back to C_i by a 1×1 conv), so the skip connections carry global context to every decoder scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the reconstruction network; saved with every checkpoint."""

    in_channels: int = 512  # C of the fused features (§2.3)
    widths: tuple[int, int, int] = (256, 256, 256)
    gfe: bool = True
    gfe_grid: int = 4  # K of §1.3 (§2.3: K = 4)
    blocks_per_module: int = 3  # "3 modules × 3 BN layers" (§1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if len(self.widths) != 3 or any(w < 4 for w in self.widths):
            raise ConfigError(f"model.widths must be three integers >= 4, got {list(self.widths)}")
        if self.gfe:
            k2 = self.gfe_grid * self.gfe_grid
            if self.gfe_grid < 1 or any(w % k2 for w in self.widths):
                raise ConfigError(
                    f"model.gfe_grid={self.gfe_grid}: every width in model.widths {list(self.widths)} "
                    f"must be divisible by K*K={k2} (eq. 6 compresses C_i to C_i/K²)"
                )

    @property
    def downsample(self) -> int:
        """Total stride of the encoder: the feature map must be divisible by it (and by it × K with GFE)."""
        return 4

    def check_input(self, height: int, width: int) -> None:
        """Fail early, naming the key, when the feature map cannot pass the network."""
        need = self.downsample * (self.gfe_grid if self.gfe else 1)
        if height % need or width % need:
            key = "model.gfe_grid" if self.gfe else "data.image_size"
            raise ConfigError(
                f"{key}: a {height}x{width} feature map cannot be split by the encoder (stride 4)"
                + (f" and a {self.gfe_grid}x{self.gfe_grid} GFE grid at every scale" if self.gfe else "")
                + f"; its sides must be multiples of {need}"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d


class Bottleneck(nn.Module):
    """ResNet bottleneck (§1): 1×1 reduce, 3×3 (or 2×2 stride-2 transposed when upsampling), 1×1 restore, residual."""

    def __init__(self, cin: int, cout: int, mode: str = "same"):
        super().__init__()
        mid = max(cout // 4, 1)
        self.reduce = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True))
        if mode == "up":
            spatial = nn.ConvTranspose2d(mid, mid, 2, stride=2, bias=False)
        else:
            spatial = nn.Conv2d(mid, mid, 3, stride=2 if mode == "down" else 1, padding=1, bias=False)
        self.spatial = nn.Sequential(spatial, nn.BatchNorm2d(mid), nn.ReLU(inplace=True))
        self.restore = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        if mode == "up":
            self.shortcut = nn.Sequential(nn.ConvTranspose2d(cin, cout, 2, stride=2, bias=False), nn.BatchNorm2d(cout))
        elif mode == "down" or cin != cout:
            stride = 2 if mode == "down" else 1
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.restore(self.spatial(self.reduce(x))) + self.shortcut(x))


class GFE(nn.Module):
    """§1.3 Global feature extraction (eq. 4–6, Fig. 4).

    K×K grid region means r_k (eq. 5), a shared fc to Ĉ_i = C_i/K² (eq. 6), flattened to g ∈ R^{C_i},
    tiled over H_i×W_i and concatenated with t; a 1×1 conv fuses the 2·C_i channels back to C_i
    (our choice: keeps module widths fixed whatever GFE does).
    """

    def __init__(self, channels: int, grid: int):
        super().__init__()
        self.grid = grid
        self.fc = nn.Linear(channels, channels // (grid * grid))
        self.fuse = nn.Sequential(
            nn.Conv2d(2 * channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )

    def global_vector(self, t: torch.Tensor) -> torch.Tensor:
        b, c, h, w = t.shape
        k = self.grid
        # eq. 4–5: t_k = the P = H_iW_i/K² vectors of region k; r_k their mean (exact when K divides H_i, W_i).
        r = t.reshape(b, c, k, h // k, k, w // k).mean(dim=(3, 5))  # (B, C_i, K, K)
        r_hat = self.fc(r.flatten(2).transpose(1, 2))  # eq. 6: (B, K², C_i/K²)
        return r_hat.reshape(b, -1)  # g ∈ R^{Ĉ_i·K·K} = R^{C_i}

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        b, c, h, w = t.shape
        g = self.global_vector(t)[:, :, None, None].expand(b, c, h, w)  # repeat over H_i × W_i
        return self.fuse(torch.cat([t, g], dim=1))


class ReconstructionNet(nn.Module):
    """Convolutional autoencoder of Fig. 1 with skip connections, optional GFE at every encoder module."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c, (w1, w2, w3), n = config.in_channels, config.widths, config.blocks_per_module

        def module(cin: int, cout: int, first: str) -> nn.Sequential:
            return nn.Sequential(Bottleneck(cin, cout, first), *[Bottleneck(cout, cout) for _ in range(n - 1)])

        # Encoder: 3 modules × 3 bottlenecks; modules 2 and 3 downsample (stride 2).
        self.enc = nn.ModuleList([module(c, w1, "same"), module(w1, w2, "down"), module(w2, w3, "down")])
        self.gfe = nn.ModuleList([GFE(w, config.gfe_grid) for w in (w1, w2, w3)]) if config.gfe else None
        # Decoder, symmetric: module 3' works at the deepest scale, 2' and 1' start with an upsampling
        # bottleneck (2×2 stride-2 transposed conv), each after [previous output ‖ skip] fused by a 1×1 conv.
        self.dec3 = module(w3, w3, "same")
        self.fuse2 = nn.Sequential(nn.Conv2d(w3 + w3, w3, 1, bias=False), nn.BatchNorm2d(w3), nn.ReLU(inplace=True))
        self.dec2 = module(w3, w2, "up")
        self.fuse1 = nn.Sequential(nn.Conv2d(w2 + w2, w2, 1, bias=False), nn.BatchNorm2d(w2), nn.ReLU(inplace=True))
        self.dec1 = module(w2, w1, "up")
        self.fuse0 = nn.Sequential(nn.Conv2d(w1 + w1, w1, 1, bias=False), nn.BatchNorm2d(w1), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(w1, c, 1)  # back to C: ẑ is compared with z by cosine distance, no activation

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        skips = []
        x = z
        for i, enc in enumerate(self.enc):
            x = enc(x)
            if self.gfe is not None:
                x = self.gfe[i](x)
            skips.append(x)
        e1, e2, e3 = skips
        x = self.dec3(e3)
        x = self.dec2(self.fuse2(torch.cat([x, e3], dim=1)))
        x = self.dec1(self.fuse1(torch.cat([x, e2], dim=1)))
        x = self.fuse0(torch.cat([x, e1], dim=1))
        return self.head(x)
