"""Options for the choices the paper leaves open (frad.model / frad.train / frad.score): defaults are the paper's
reading, bit for bit; each option changes what it says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from frad.config import ModelConfig, TrainConfig
from frad.errors import ConfigError
from frad.evaluation.postprocess import image_scores
from frad.features import cosine_distance, fuse_features
from frad.model import GFE, ReconstructionNet
from frad.score import anomaly_maps
from frad.train import channel_stats, load_model, save_model, train_model

SMALL = {"in_channels": 32, "widths": (16, 16, 16), "gfe_grid": 2}


def _maps(n: int, seed: int) -> dict[int, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {2: torch.randn(n, 40, 16, 16, generator=g).half(), 3: torch.randn(n, 112, 8, 8, generator=g).half()}


def _paper_forward(net: ReconstructionNet, z: torch.Tensor) -> torch.Tensor:
    """Fig. 1 as §1 describes it, written out: every encoder module (+ GFE where configured) feeds its decoder module by a skip."""
    skips, x = [], z
    for enc, gfe in zip(net.enc, net.gfe):
        x = gfe(enc(x))
        skips.append(x)
    e1, e2, e3 = skips
    x = net.dec2(net.fuse2(torch.cat([net.dec3(e3), e3], 1)))
    x = net.dec1(net.fuse1(torch.cat([x, e2], 1)))
    return net.head(net.fuse0(torch.cat([x, e1], 1)))


def test_default_config_is_the_chosen_reading():
    cfg = ModelConfig()
    assert (cfg.skips, cfg.strides, cfg.input_norm, cfg.downsample) == ((1, 2, 3), (1, 2, 2), "none", 4)
    assert cfg.gfe_modules == (3,)  # GFE at the bottleneck (reports/choices.md)
    assert ModelConfig(**cfg.to_dict()) == cfg  # round trip through the checkpoint dict


def test_default_network_equals_the_written_out_forward_and_has_no_extra_state():
    torch.manual_seed(0)
    net = ReconstructionNet(ModelConfig(**SMALL)).eval()
    assert net.up0 is None and not any(k.startswith("z_") for k in net.state_dict())
    z = torch.randn(2, 32, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(z), _paper_forward(net, z))
        assert net.normalize(z) is z


def test_explicit_defaults_train_and_score_bitwise_like_implicit_ones():
    train, test = _maps(6, 0), _maps(3, 1)
    tc = TrainConfig(epochs=2, batch_size=4, device="cpu")
    explicit = ModelConfig(**SMALL, skips=[3, 2, 1], strides=[1, 2, 2], input_norm="none", gfe_modules=[3])
    a = train_model(train, 32, ModelConfig(**SMALL), tc, progress=False)
    b = train_model(train, 32, explicit, tc, progress=False)
    assert a.history == b.history
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(anomaly_maps(a.model, test, 32, 64), anomaly_maps(b.model, test, 32, 64))


@pytest.mark.parametrize("skips", [(), (3,), (2, 3), (1,)])
def test_decoder_has_fusion_inputs_only_for_the_chosen_skips(skips):
    net = ReconstructionNet(ModelConfig(**SMALL, skips=skips))
    fuses = {1: net.fuse0, 2: net.fuse1, 3: net.fuse2}
    for i, fuse in fuses.items():
        assert (fuse is not None) == (i in skips)
        if fuse is not None:
            assert fuse[0].in_channels == 2 * 16  # [decoder output ‖ skip]
    assert net(torch.randn(2, 32, 16, 16)).shape == (2, 32, 16, 16)


@pytest.mark.parametrize("at", [(3,), (1, 3)])
def test_gfe_sits_only_after_the_chosen_encoder_modules(at):
    net = ReconstructionNet(ModelConfig(**SMALL, gfe_modules=at))
    for i, g in enumerate(net.gfe, 1):
        assert isinstance(g, GFE) == (i in at)
    assert net(torch.randn(1, 32, 16, 16)).shape == (1, 32, 16, 16)


def test_gfe_width_check_covers_only_modules_with_gfe():
    ModelConfig(in_channels=32, widths=(6, 6, 16), gfe_grid=2)  # GFE after module 3 only: 6 need not divide by K² = 4
    with pytest.raises(ConfigError, match="model.grid"):
        ModelConfig(in_channels=32, widths=(6, 6, 16), gfe_grid=2, gfe_modules=(1, 2, 3))


def test_without_skips_the_output_depends_on_the_input_only_through_the_bottleneck():
    torch.manual_seed(0)
    net = ReconstructionNet(ModelConfig(**SMALL, skips=())).eval()
    seen = {}
    net.enc[2].register_forward_hook(lambda m, i, o: seen.setdefault("e3", o))
    z = torch.randn(1, 32, 16, 16)
    with torch.no_grad():
        out = net(z)
        bottleneck = net.gfe[2](seen["e3"])
        x = net.dec1(net.dec2(net.dec3(bottleneck)))
        assert torch.equal(out, net.head(x))


@pytest.mark.parametrize(("strides", "deepest"), [((1, 2, 2), 4), ((2, 2, 2), 2), ((1, 1, 2), 8), ((1, 1, 1), 16)])
def test_strides_set_the_bottleneck_resolution_and_the_output_keeps_the_input_size(strides, deepest):
    cfg = ModelConfig(in_channels=32, widths=(16, 16, 16), gfe=False, strides=strides)
    net = ReconstructionNet(cfg).eval()
    shapes = []
    for enc in net.enc:
        enc.register_forward_hook(lambda m, i, o: shapes.append(o.shape[-1]))
    with torch.no_grad():
        assert net(torch.randn(1, 32, 16, 16)).shape == (1, 32, 16, 16)
    assert shapes[-1] == deepest and cfg.downsample == 16 // deepest
    assert (net.up0 is not None) == (strides[0] == 2)


def test_strides_check_the_input_size():
    with pytest.raises(ConfigError, match="stride 8"):
        ModelConfig(in_channels=32, widths=(16, 16, 16), gfe=False, strides=(2, 2, 2)).check_input(12, 12)


def test_channel_stats_equal_numpy():
    maps = _maps(5, 2)
    mean, std = channel_stats(maps, 32, bs=2)
    z = fuse_features(maps, 32).double().numpy()
    flat = z.transpose(1, 0, 2, 3).reshape(32, -1)
    np.testing.assert_allclose(mean.numpy(), flat.mean(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std.numpy(), flat.std(1), rtol=1e-5, atol=1e-6)


def test_channel_norm_standardises_z_with_train_statistics_in_training_and_scoring(tmp_path):
    train, test = _maps(6, 0), _maps(3, 1)
    cfg = ModelConfig(**SMALL, input_norm="channel")
    result = train_model(train, 32, cfg, TrainConfig(epochs=1, batch_size=4, device="cpu"), progress=False)
    net = result.model
    mean, std = channel_stats(train, 32)
    torch.testing.assert_close(net.z_mean.flatten(), mean)
    torch.testing.assert_close(net.z_std.flatten(), std)
    z = fuse_features(test, 32)
    zn = (z - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    with torch.no_grad():
        d = cosine_distance(zn, net(zn))  # eq. 8 between the standardised z and its reconstruction
    maps = anomaly_maps(net, test, 32, 16, sigma=0)
    torch.testing.assert_close(maps, d, rtol=1e-5, atol=1e-6)  # 16² map = the grid: no upsampling, no blur
    save_model(tmp_path / "m.pt", result, layers=[2, 3], channels=32, train_config=TrainConfig())
    loaded, payload = load_model(tmp_path / "m.pt")
    assert payload["model_config"]["input_norm"] == "channel"
    assert torch.equal(loaded.z_mean, net.z_mean) and torch.equal(anomaly_maps(loaded, test, 32, 16, sigma=0), maps)


@pytest.mark.parametrize("k", [1, 2, 7, 64])
def test_top_k_image_score_equals_numpy(k):
    maps = np.random.default_rng(k).random((4, 8, 8)).astype(np.float32)
    expected = np.sort(maps.reshape(4, -1), axis=1)[:, ::-1][:, :k].mean(axis=1)
    np.testing.assert_allclose(image_scores(maps, k), expected, rtol=1e-6)
    if k == 1:
        assert np.array_equal(image_scores(maps), maps.reshape(4, -1).max(axis=1))


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"skips": (0,)}, "model.skips"),
        ({"skips": (2, 2)}, "model.skips"),
        ({"strides": (1, 3, 2)}, "model.strides"),
        ({"strides": (1, 2)}, "model.strides"),
        ({"input_norm": "layer"}, "model.input_norm"),
        ({"gfe_modules": ()}, "model.gfe_modules"),
        ({"gfe_modules": (4,)}, "model.gfe_modules"),
    ],
)
def test_bad_options_name_their_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        ModelConfig(**SMALL, **kwargs)


@pytest.mark.parametrize("k", [0, 65, True])
def test_bad_top_k_names_its_key(k):
    with pytest.raises(ConfigError, match="score.top_k"):
        image_scores(np.zeros((2, 8, 8), np.float32), k)
