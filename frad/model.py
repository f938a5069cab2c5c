"""§1 and Fig. 1: the reconstruction network (convolutional autoencoder) and §1.3 the GFE module.

Choices the paper leaves open (each also noted beside the code):
- widths: encoder modules keep ``widths`` = (256, 256, 256) channels for C = 512 input (small, fast; the
  paper gives none); bottleneck inner width is a quarter of the output width, as in ResNet.
- strides: module 1 keeps the input resolution, modules 2 and 3 halve it with a stride-2 3×3 conv
  (ResNet-style), so the decoder's two upsampling bottlenecks (2×2 stride-2 transposed conv) mirror them.
- GFE sits at the output of the bottleneck (encoder module 3; its tiled global vector is concatenated, then
  fused back to C_i by a 1×1 conv). §1.3 defines GFE on any module's map t ∈ R^{C_i×H_i×W_i} without saying
  which; GFE after every module is the other faithful reading, and the bottleneck alone was chosen on the
  development categories (reports/choices.md, docs/diagnosis.md).
Options for the study of these choices (``scripts/diagnose.py``, ``docs/diagnosis.md``); defaults are the readings above:
- ``gfe_modules``: which encoder modules are followed by GFE (default (3,); (1, 2, 3) = after every module).
- ``skips``: which encoder modules feed the decoder through a skip connection (§1: all of them).
- ``strides``: the stride of each encoder module (the bottleneck depth; default (1, 2, 2): 32² → 8²).
- ``input_norm``: ``none`` (z as §1.1 defines it) or ``channel`` (z standardised per channel with train statistics
  before the network and the cosine distance; not in the paper).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig


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

        s1, s2, s3 = config.strides
        mode = {1: "same", 2: "down"}
        # Encoder: 3 modules × 3 bottlenecks; by default modules 2 and 3 downsample (stride 2).
        self.enc = nn.ModuleList([module(c, w1, mode[s1]), module(w1, w2, mode[s2]), module(w2, w3, mode[s3])])
        at = config.gfe_modules
        gfes = [GFE(w, config.gfe_grid) if i in at else nn.Identity() for i, w in enumerate((w1, w2, w3), 1)]
        self.gfe = nn.ModuleList(gfes) if config.gfe else None
        # Decoder, symmetric: module 3' works at the deepest scale, 2' and 1' start with an upsampling
        # bottleneck (2×2 stride-2 transposed conv) where encoder modules 3 and 2 downsample, each after
        # [previous output ‖ skip] fused by a 1×1 conv (a module without a skip gets the previous output only).
        up = {1: "same", 2: "up"}
        self.dec3 = module(w3, w3, "same")
        self.fuse2 = self._fuse(w3, 3 in config.skips)
        self.dec2 = module(w3, w2, up[s3])
        self.fuse1 = self._fuse(w2, 2 in config.skips)
        self.dec1 = module(w2, w1, up[s2])
        self.fuse0 = self._fuse(w1, 1 in config.skips)
        # A downsampling module 1 is mirrored by one upsampling bottleneck before the head (no skip is left there).
        self.up0 = Bottleneck(w1, w1, "up") if s1 == 2 else None
        self.head = nn.Conv2d(w1, c, 1)  # back to C: ẑ is compared with z by cosine distance, no activation
        if config.input_norm == "channel":  # train statistics, set by frad.train before the first step
            self.register_buffer("z_mean", torch.zeros(1, c, 1, 1))
            self.register_buffer("z_std", torch.ones(1, c, 1, 1))

    @staticmethod
    def _fuse(width: int, skip: bool) -> nn.Module | None:
        """1×1 conv fusing [previous output ‖ skip] back to ``width`` channels (§1); None without a skip."""
        if not skip:
            return None
        return nn.Sequential(nn.Conv2d(2 * width, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))

    @staticmethod
    def _join(fuse: nn.Module | None, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return x if fuse is None else fuse(torch.cat([x, skip], dim=1))

    @torch.no_grad()
    def set_input_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-channel mean and std of the train z (``input_norm: channel``); (C,) tensors."""
        self.z_mean.copy_(mean.view_as(self.z_mean))
        self.z_std.copy_(std.view_as(self.z_std))

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """The z that is reconstructed and compared (eq. 8): z itself, or standardised per channel."""
        if self.config.input_norm == "none":
            return z
        return (z - self.z_mean) / self.z_std

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
        x = self.dec2(self._join(self.fuse2, x, e3))
        x = self.dec1(self._join(self.fuse1, x, e2))
        x = self._join(self.fuse0, x, e1)
        if self.up0 is not None:
            x = self.up0(x)
        return self.head(x)
