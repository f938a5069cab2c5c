"""§1.1–§1.3 building blocks: feature fusion (eq. 1–3), recombination (§1.2), network and GFE (eq. 4–6)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from frad.config import ModelConfig
from frad.errors import ConfigError
from frad.features import check_layers, fuse_features
from frad.model import GFE, ReconstructionNet
from frad.recombine import draw_permutations, recombine


def _literal_fusion(maps, channels):
    """Eq. 1–3 in the paper's literal order: resize, then 1-D adaptive pooling of every position's vector."""
    h = max(m.shape[-2] for m in maps)
    w = max(m.shape[-1] for m in maps)
    parts = []
    for m in maps:
        m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)  # eq. 1
        b, c = m.shape[:2]
        v = m.permute(0, 2, 3, 1).reshape(-1, 1, c)
        v = F.adaptive_avg_pool1d(v, channels)  # eq. 2
        parts.append(v.reshape(b, h, w, channels).permute(0, 3, 1, 2))
    phi = torch.cat(parts, 1)  # eq. 3
    v = phi.permute(0, 2, 3, 1).reshape(-1, 1, phi.shape[1])
    return F.adaptive_avg_pool1d(v, channels).reshape(phi.shape[0], h, w, channels).permute(0, 3, 1, 2)


@pytest.mark.parametrize("channels", [64, 96, 512])
def test_fusion_equals_literal_order(channels):
    g = torch.Generator().manual_seed(0)
    maps = [
        torch.randn(2, 40, 16, 16, generator=g),
        torch.randn(2, 112, 8, 8, generator=g),
        torch.randn(2, 24, 32, 32, generator=g),
    ]
    ours = fuse_features(maps, channels)
    assert ours.shape == (2, channels, 32, 32)
    torch.testing.assert_close(ours, _literal_fusion(maps, channels), rtol=1e-5, atol=1e-5)


def test_fusion_pooling_is_a_channel_mean():
    x = torch.arange(8.0).view(1, 8, 1, 1).expand(1, 8, 2, 2)
    z = fuse_features([x], 2)
    assert z[0, :, 0, 0].tolist() == [1.5, 5.5]  # means of channels 0..3 and 4..7


@pytest.mark.parametrize("bad", [[], [0], [4], [2, 2], "23", [True]])
def test_layer_sets_are_validated(bad):
    with pytest.raises(ConfigError, match="features.layers"):
        check_layers(bad)


def test_recombine_permutes_cells_per_sample():
    k = 4
    z = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)
    zp = recombine(z, k, torch.Generator().manual_seed(3))

    def cells(t: torch.Tensor) -> list[tuple]:
        return sorted(
            tuple(t[0, r * 2 : (r + 1) * 2, c * 2 : (c + 1) * 2].flatten().tolist()) for r in range(k) for c in range(k)
        )

    for i in range(2):
        assert cells(z[i]) == cells(zp[i])  # same cells, each intact
        assert not torch.equal(z[i], zp[i])  # but in another order
    assert not torch.equal(zp[0] - z[0].min(), zp[1] - z[1].min())  # each sample has its own permutation
    again = recombine(z, k, torch.Generator().manual_seed(3))
    assert torch.equal(zp, again)  # seeded


def test_epoch_permutations_drawn_at_once_equal_batch_by_batch_draws():
    # train_model draws an epoch's permutations in one call (one host->device copy per epoch):
    # that must consume the generator exactly like the per-batch draws it replaced.
    k, sizes = 4, [16, 16, 5]
    at_once = draw_permutations(sum(sizes), k, torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(7)
    per_batch = torch.cat([draw_permutations(n, k, gen) for n in sizes])
    assert torch.equal(at_once, per_batch)
    assert all(sorted(row.tolist()) == list(range(k * k)) for row in at_once)  # each row is a permutation
    z = torch.randn(5, 3, 8, 8)
    given = recombine(z, k, perm=draw_permutations(5, k, torch.Generator().manual_seed(1)))
    drawn = recombine(z, k, torch.Generator().manual_seed(1))
    assert torch.equal(given, drawn)
    with pytest.raises(ValueError, match="perm must have shape"):
        recombine(z, k, perm=at_once)


def test_recombine_rejects_grid_that_does_not_divide():
    with pytest.raises(ConfigError, match="ssl.grid=3"):
        recombine(torch.zeros(1, 2, 8, 8), 3)


def test_gfe_global_vector_matches_eq_4_to_6():
    torch.manual_seed(0)
    c, k = 32, 2
    gfe = GFE(c, k)
    t = torch.randn(1, c, 4, 6)
    g = gfe.global_vector(t)
    assert g.shape == (1, c)  # Ĉ_i·K·K = C_i
    expected = []
    for r in range(k):
        for q in range(k):
            region = t[0, :, r * 2 : (r + 1) * 2, q * 3 : (q + 1) * 3]
            r_k = region.reshape(c, -1).mean(1)  # eq. 5
            expected.append(gfe.fc(r_k))  # eq. 6: Ĉ_i = C_i/K²
    torch.testing.assert_close(g[0], torch.cat(expected))
    out = gfe(t)
    assert out.shape == t.shape


def test_network_shapes_and_switches():
    z = torch.randn(2, 64, 16, 16)
    for gfe in (True, False):
        net = ReconstructionNet(ModelConfig(in_channels=64, widths=(32, 32, 32), gfe=gfe, gfe_grid=2))
        assert net(z).shape == z.shape
        assert (net.gfe is not None) == gfe
    n_gfe = sum(p.numel() for p in ReconstructionNet(ModelConfig(64, (32, 32, 32), True, 2)).parameters())
    n_plain = sum(p.numel() for p in ReconstructionNet(ModelConfig(64, (32, 32, 32), False, 2)).parameters())
    assert n_gfe > n_plain


def test_network_has_three_modules_of_three_bottlenecks_and_transposed_upsampling():
    net = ReconstructionNet(ModelConfig(in_channels=64, widths=(32, 32, 32), gfe=False))
    assert [len(m) for m in net.enc] == [3, 3, 3]
    assert [len(m) for m in (net.dec3, net.dec2, net.dec1)] == [3, 3, 3]
    ups = [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert ups and all(m.kernel_size == (2, 2) and m.stride == (2, 2) for m in ups)


def test_model_config_rejects_bad_grid_and_widths():
    with pytest.raises(ConfigError, match="model.grid"):
        ModelConfig(in_channels=64, widths=(40, 40, 40), gfe=True, gfe_grid=4)
    cfg = ModelConfig(in_channels=64, widths=(32, 32, 32), gfe=True, gfe_grid=4)
    with pytest.raises(ConfigError, match="multiples of 16"):
        cfg.check_input(24, 24)
