"""Load and validate params.yaml before any heavy work: unknown keys, wrong types, bad ranges and
inconsistent combinations are rejected with one line naming the key."""
from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import Any, Callable

import yaml

from frad.errors import ConfigError
from frad.layers import check_layers

PARAMS_FILE = "params.yaml"
SOURCES = ("mvtec", "archive", "folder", "synthetic")
PRECISIONS = ("fp32", "bf16", "fp16")
BACKBONE_NAMES = ("tf_efficientnet_lite0", "wide_resnet50_2")  # = frad.backbone.BACKBONES (tested); no timm import here
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
LAYER_VARIANT = re.compile(r"^L([123]+)$")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, made to agree with DVC's YAML 1.2 reader (ruamel.yaml) on what params.yaml means:
    ``1e-3`` is a float (YAML 1.1 reads it as a string), and a key given twice in one mapping is an error
    (YAML 1.1 silently keeps the last value; DVC refuses the file)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` overrides are not duplicates
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first.get(key)
            except TypeError:
                continue  # unhashable key: the base class reports it
            if seen is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (first at line {seen}); keep one", key_node.start_mark
                )
            first[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _int(lo: int | None = None, hi: int | None = None) -> Callable[[str, Any], Any]:
    def check(key: str, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{key} must be an integer, got {v!r}")
        if lo is not None and v < lo:
            raise ConfigError(f"{key} must be >= {lo}, got {v}")
        if hi is not None and v > hi:
            raise ConfigError(f"{key} must be <= {hi}, got {v}")
        return v

    return check


def _float(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> Callable[[str, Any], Any]:
    def check(key: str, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{key} must be a number, got {v!r}")
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise ConfigError(f"{key} must be {'>' if lo_open else '>='} {lo}, got {v}")
        if hi is not None and v > hi:
            raise ConfigError(f"{key} must be <= {hi}, got {v}")
        return float(v)

    return check


def _bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{key} must be true or false, got {v!r}")
    return v


def _str(key: str, v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ConfigError(f"{key} must be a non-empty string, got {v!r}")
    return v


def _choice(*options: str) -> Callable[[str, Any], Any]:
    def check(key: str, v: Any) -> Any:
        if v not in options:
            raise ConfigError(f"{key} must be one of {', '.join(options)}; got {v!r}")
        return v

    return check


def _sha256(key: str, v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", v):
        raise ConfigError(f"{key} must be a 64-digit hex SHA-256, got {v!r}")
    return v.lower()


def _names(allow_empty: bool = False) -> Callable[[str, Any], Any]:
    def check(key: str, v: Any) -> Any:
        if not isinstance(v, list) or (not v and not allow_empty):
            raise ConfigError(f"{key} must be a {'' if allow_empty else 'non-empty '}list of names, got {v!r}")
        for name in v:
            if not isinstance(name, str) or not NAME.match(name):
                raise ConfigError(f"{key}: {name!r} is not a valid name (letters, digits, _ . -)")
        dup = sorted({n for n in v if v.count(n) > 1})
        if dup:
            raise ConfigError(f"{key} lists {', '.join(dup)} more than once")
        return v

    return check


def _layers(key: str, v: Any) -> list[int]:
    return list(check_layers(v, key))


def _widths(key: str, v: Any) -> list[int]:
    if not isinstance(v, list) or len(v) != 3:
        raise ConfigError(f"{key} must be a list of 3 integers, got {v!r}")
    return [_int(4)(f"{key}[{i}]", w) for i, w in enumerate(v)]


def _betas(key: str, v: Any) -> list[float]:
    if not isinstance(v, list) or len(v) != 2:
        raise ConfigError(f"{key} must be a list of 2 numbers in [0, 1), got {v!r}")
    out = [_float(0.0)(f"{key}[{i}]", b) for i, b in enumerate(v)]
    if any(b >= 1 for b in out):
        raise ConfigError(f"{key} must be 2 numbers in [0, 1), got {v!r}")
    return out


def _device(key: str, v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", v):
        raise ConfigError(f"{key} must be auto, cpu, cuda or cuda:N, got {v!r}")
    return v


def _layer_variants(key: str, v: Any) -> list[str]:
    _names(allow_empty=True)(key, v)
    for name in v:
        m = LAYER_VARIANT.match(name)
        if not m:
            raise ConfigError(
                f"{key}: {name!r} is not a layer set; write L followed by layer digits drawn from 1, 2, 3, e.g. L1 or L123"
            )
        check_layers([int(c) for c in m.group(1)], f"{key} ({name})")
    return v


SCHEMA: dict[str, Any] = {
    "data": {
        "source": _choice(*SOURCES),
        "root": _str,
        "archive": _str,
        "url": _str,
        "sha256": _sha256,
        "categories": _names(),
        "textures": _names(allow_empty=True),
        "image_size": _int(32, 4096),
        "synthetic": {
            "seed": _int(0),
            "n_train": _int(1),
            "n_test_good": _int(1),
            "n_test_defect": _int(1),
            "size": _int(32, 4096),
        },
    },
    "backbone": {
        "name": _choice(*BACKBONE_NAMES),
        "weights": _str,
        "precision": _choice(*PRECISIONS),
        "channels_last": _bool,
    },
    "features": {"layers": _layers, "channels": _int(1), "cache_layers": _layers, "batch_size": _int(1)},
    "model": {"gfe": _bool, "grid": _int(1), "widths": _widths},
    "ssl": {"enabled": _bool, "lambda": _float(0.0), "grid": _int(1)},
    "train": {
        "epochs": _int(1),
        "batch_size": _int(1),
        "lr": _float(0.0, lo_open=True),
        "betas": _betas,
        "seed": _int(0),
        "device": _device,
    },
    "score": {"sigma": _float(0.0), "pro_limit": _float(0.0, 1.0, lo_open=True), "batch_size": _int(1), "n_figures": _int(0)},
    "ablation": {"layers": _layer_variants},
}


def _validate(schema: dict, values: Any, prefix: str) -> dict:
    if not prefix and values is None:
        raise ConfigError(f"{PARAMS_FILE} is empty; restore it (e.g. `git checkout {PARAMS_FILE}`)")
    if not isinstance(values, dict):
        where = prefix.rstrip(".") or PARAMS_FILE
        raise ConfigError(
            f"{where} must be a mapping of keys ({', '.join(schema)}), got {type(values).__name__} {values!r}"
        )
    for key in values:
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else f"; known keys: {', '.join(schema)}"
            raise ConfigError(f"unknown key {prefix}{key} in {PARAMS_FILE}{hint}")
    out = {}
    for key, check in schema.items():
        if key not in values:
            raise ConfigError(f"{prefix}{key} is missing from {PARAMS_FILE}; see README.md (Parameters)")
        v = values[key]
        out[key] = _validate(check, v, f"{prefix}{key}.") if isinstance(check, dict) else check(f"{prefix}{key}", v)
    return out


def layers_of(variant_name: str) -> list[int]:
    m = LAYER_VARIANT.match(variant_name)
    if not m:
        raise ConfigError(f"{variant_name!r} is not a layer variant (L followed by layer digits)")
    return sorted(int(c) for c in m.group(1))


def feature_map_side(image_size: int, layers: list[int]) -> int:
    """Side of the fused map z: the largest selected map (layer l has stride 2^(l+1))."""
    return image_size // (2 ** (min(layers) + 1))


def _cross_checks(p: dict) -> None:
    d = p["data"]
    stray = [t for t in d["textures"] if t not in d["categories"]]
    if stray:
        raise ConfigError(f"data.textures lists {', '.join(stray)}, which data.categories does not; remove it or add the category")
    if d["image_size"] % 16:
        raise ConfigError(f"data.image_size={d['image_size']} must be a multiple of 16 (the backbone's layer-3 stride)")
    cache = set(p["features"]["cache_layers"])
    sets = {"features.layers": p["features"]["layers"]}
    sets.update({f"ablation.layers ({v})": layers_of(v) for v in p["ablation"]["layers"]})
    for key, layers in sets.items():
        missing = sorted(set(layers) - cache)
        if missing:
            raise ConfigError(f"{key} uses layer {missing[0]}, which features.cache_layers {sorted(cache)} does not store; add it there")
        side = feature_map_side(d["image_size"], layers)
        need_model = 4 * p["model"]["grid"]
        if side % need_model:
            raise ConfigError(
                f"model.grid={p['model']['grid']} does not fit {key}: the {side}x{side} feature map must be a multiple of "
                f"4*K={need_model} (encoder stride 4, then a KxK GFE grid); change model.grid or data.image_size"
            )
        if side % 4:
            raise ConfigError(f"data.image_size={d['image_size']}: the {side}x{side} map of {key} must be a multiple of 4")
        if side % p["ssl"]["grid"]:
            raise ConfigError(
                f"ssl.grid={p['ssl']['grid']} does not divide the {side}x{side} feature map of {key}; choose a divisor of {side}"
            )
    k2 = p["model"]["grid"] ** 2
    bad = [w for w in p["model"]["widths"] if w % k2]
    if bad:
        raise ConfigError(f"model.widths {p['model']['widths']} must be multiples of K*K={k2} (model.grid={p['model']['grid']}, eq. 6)")


def validate_params(raw: Any) -> dict:
    params = _validate(SCHEMA, raw, "")
    _cross_checks(params)
    return params


def load_params(path: str | Path = PARAMS_FILE) -> dict:
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_Loader)
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; run from the project root (where dvc.yaml is)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{at}: {getattr(err, 'problem', None) or err}; fix the file") from None
    return validate_params(raw)
