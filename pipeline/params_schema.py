"""The schema of params.yaml: one check per key (type, range, names), the YAML loader that agrees with DVC's
reader, and the layer-set names. Every check raises one line naming the key; :mod:`pipeline.params` builds the
typed model from what passes and checks the rules between keys."""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, Callable, Mapping, Sequence, get_args, get_origin, get_type_hints

import yaml

from frad.config import ModelConfig, TrainConfig
from frad.datasets.registry import DATASETS
from frad.errors import ConfigError
from frad.layers import BACKBONE_CHANNELS, check_layers
from frad.methods import METHODS

PARAMS_FILE = "params.yaml"
SOURCES = ("download", "archive", "folder", "synthetic")
RESIZES = ("stretch", "short_side")
PRECISIONS = ("fp32", "bf16", "fp16")
BACKBONE_NAMES = tuple(sorted(BACKBONE_CHANNELS))  # = frad.backbone.BACKBONES (tested); no torch import here
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
LAYER_VARIANT = re.compile(r"^L([123]+)$")
CHOICE_KEYS = ("model.gfe_modules", "model.skips", "model.strides", "model.input_norm", "model.widths", "score.top_k")
"""The open choices (paper silent; docs/diagnosis.md) a ``choices.changes`` entry may change."""
CHOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")  # no dot: DVC reads choices.changes.<name> as a path


class Loader(yaml.SafeLoader):
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


Loader.add_implicit_resolver(
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
            close = difflib.get_close_matches(str(v), options, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{key} must be one of {', '.join(options)}; got {v!r}{hint}")
        return v

    return check


def _sha256(key: str, v: Any) -> str:
    if v == "auto":
        return v
    if not isinstance(v, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", v):
        raise ConfigError(f"{key} must be auto (the dataset's published checksum) or a 64-digit hex SHA-256, got {v!r}")
    return v.lower()


def _urls(key: str, v: Any) -> dict[str, list[str]]:
    """``{dataset: [url, ...]}``: each dataset's mirrors, tried in order."""
    if not isinstance(v, dict):
        raise ConfigError(f"{key} must map dataset names to lists of mirror URLs, e.g. {{mvtec_ad: [https://...]}}")
    for name, urls in v.items():
        if name not in DATASETS or not DATASETS[name].sha256:
            known = [d for d, spec in DATASETS.items() if spec.sha256]
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"{key}: {name!r} is not a dataset with an archive ({', '.join(known)}){hint}")
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ConfigError(f"{key}.{name} must be a list of URLs, got {urls!r}")
        for u in urls:
            if not re.match(r"^(https?|ftp|file)://\S+$", u):
                raise ConfigError(f"{key}.{name}: {u!r} is not a URL (http://, https://, ftp:// or file://)")
    return v


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


def _layer_variants(key: str, v: Any) -> list[str]:
    _names(allow_empty=True)(key, v)
    for name in v:
        if not LAYER_VARIANT.match(name):
            raise ConfigError(
                f"{key}: {name!r} is not a layer set; write L followed by layer digits drawn from 1, 2, 3, e.g. L1 or L123"
            )
        layers_of(name)
    return v


def _seeds(key: str, v: Any) -> list[int]:
    if not isinstance(v, list) or not v:
        raise ConfigError(f"{key} must be a non-empty list of seeds (integers >= 0), got {v!r}")
    out = [_int(0)(f"{key}[{i}]", s) for i, s in enumerate(v)]
    dup = sorted({s for s in out if out.count(s) > 1})
    if dup:
        raise ConfigError(f"{key} lists seed {dup[0]} more than once")
    return out


def _methods(key: str, v: Any) -> list[str]:
    _names(allow_empty=True)(key, v)
    for name in v:
        if name not in METHODS:
            close = difflib.get_close_matches(str(name), list(METHODS), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"{key}: unknown method {name!r}; choose from {', '.join(METHODS)}{hint}")
    return v


def _resamples(key: str, v: Any) -> int:
    _int(0)(key, v)
    if 0 < v < 100:  # the 2.5% and 97.5% percentiles need at least ~100 replicates
        raise ConfigError(f"{key} must be 0 (no intervals) or at least 100, got {v}")
    return v


def _typed(hint: Any) -> Callable[[str, Any], Any]:
    """The type check of a config field from its type hint (a comparison method's settings: frad.methods);
    ranges are the config's own ``__post_init__`` checks."""
    if hint is bool:
        return _bool
    if hint is int:
        return _int()
    if hint is float:
        return _float()
    if hint is str:
        return _str
    if get_origin(hint) is tuple:
        items = [a for a in get_args(hint) if a is not Ellipsis]
        n = None if Ellipsis in get_args(hint) else len(items)

        def check(key: str, v: Any) -> list:
            if not isinstance(v, list) or (n is not None and len(v) != n):
                raise ConfigError(f"{key} must be a list of {n or 'some'} values, got {v!r}")
            return [_typed(items[min(i, len(items) - 1)])(f"{key}[{i}]", x) for i, x in enumerate(v)]

        return check
    raise TypeError(f"no params type for the config field type {hint!r}")


def _method_schema(name: str) -> dict[str, Callable[[str, Any], Any]]:
    """``compare.<name>``: one key per field of the method's config (frad.methods), typed by its hint."""
    cls = METHODS[name].config
    hints = get_type_hints(cls)
    return {key: _typed(hints[key]) for key in METHODS[name].keys}


def _config_schema(cls: type, keys: Mapping[str, str]) -> dict[str, Callable[[str, Any], Any]]:
    """Params keys typed by the fields of a library config (``{params key: config field}``); the config's own
    ``__post_init__`` checks their ranges when params are loaded (``pipeline.params``)."""
    hints = get_type_hints(cls)
    return {key: _typed(hints[name]) for key, name in keys.items()}


MODEL_FIELDS = {"gfe": "gfe", "grid": "gfe_grid"} | {
    k: k for k in ("widths", "gfe_modules", "skips", "strides", "input_norm")
}
"""model.<key> -> frad.config.ModelConfig field (features.channels is its ``in_channels``)."""
SSL_FIELDS = {"enabled": "ssl", "lambda": "ssl_lambda", "grid": "ssl_grid"}
"""ssl.<key> -> frad.config.TrainConfig field."""
TRAIN_FIELDS = {k: k for k in ("epochs", "batch_size", "lr", "betas", "device")}
"""train.<key> -> frad.config.TrainConfig field (train.seeds: one training per seed, the field ``seed``)."""


def _leaves(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"model": {"widths": [8, 8, 8]}}`` -> ``[("model.widths", [8, 8, 8])]``."""
    if not isinstance(node, dict) or not node:
        return [(prefix, node)] if prefix else []
    return [leaf for k, v in node.items() for leaf in _leaves(v, f"{prefix}.{k}" if prefix else str(k))]


def _changes(key: str, v: Any) -> dict[str, tuple[str, Any] | None]:
    """``{name: {section: {key: value}}}``: each entry changes one open choice; ``{}`` = params as they are."""
    if not isinstance(v, dict) or not v:
        raise ConfigError(
            f"{key} must be a mapping of names to one changed open choice, e.g. gfe-bottleneck: {{model: "
            f"{{gfe_modules: [3]}}}} ({{}} for the params as they are), got {v!r}"
        )
    out: dict[str, tuple[str, Any] | None] = {}
    for name, change in v.items():
        if not isinstance(name, str) or not CHOICE_NAME.match(name):
            raise ConfigError(f"{key}: {name!r} is not a valid entry name (letters, digits, _ -; no dot)")
        if change is not None and not isinstance(change, dict):
            raise ConfigError(
                f"{key}.{name} must be a mapping such as {{model: {{strides: [2, 2, 2]}}}}, got {change!r}"
            )
        leaves = _leaves(change or {})
        if len(leaves) > 1:
            raise ConfigError(f"{key}.{name} changes {leaves[0][0]} and {leaves[1][0]}; one open choice per entry")
        if not leaves:
            out[name] = None
            continue
        dotted, value = leaves[0]
        if dotted not in CHOICE_KEYS:
            raise ConfigError(f"{key}.{name}: {dotted} is not an open choice; choose from {', '.join(CHOICE_KEYS)}")
        section, field_name = dotted.split(".")
        out[name] = (dotted, SCHEMA[section][field_name](f"{key}.{name}.{dotted}", value))
    return out


SCHEMA: dict[str, Any] = {
    "data": {
        "dataset": _choice(*DATASETS),
        "source": _choice(*SOURCES),
        "root": _str,
        "archive": _str,
        "urls": _urls,
        "sha256": _sha256,
        "categories": _names(),
        "textures": _names(allow_empty=True),
        "image_size": _int(32, 4096),
        "crop": _float(0.0, 1.0, lo_open=True),
        "resize": _choice(*RESIZES),
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
    "model": _config_schema(ModelConfig, MODEL_FIELDS),
    "ssl": _config_schema(TrainConfig, SSL_FIELDS),
    "train": {**_config_schema(TrainConfig, TRAIN_FIELDS), "seeds": _seeds},
    "score": {
        "sigma": _float(0.0),
        "pro_limit": _float(0.0, 1.0, lo_open=True),
        "batch_size": _int(1),
        "top_k": _int(1),
    },
    "ablation": {"layers": _layer_variants},
    "compare": {"methods": _methods, **{name: _method_schema(name) for name in METHODS}},
    "choices": {"enabled": _bool, "categories": _names(allow_empty=True), "changes": _changes},
    "bootstrap": {"resamples": _resamples, "seed": _int(0)},
}
OPTIONAL: dict[str, Any] = {"data.textures": [], "data.urls": {}}
"""Keys that may be left out of params.yaml, with their default."""


def validate_schema(schema: dict, values: Any, prefix: str) -> dict:
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
        if key not in values and f"{prefix}{key}" in OPTIONAL:
            values = {**values, key: OPTIONAL[f"{prefix}{key}"]}
        if key not in values:
            raise ConfigError(f"{prefix}{key} is missing from {PARAMS_FILE}; see docs/pipeline.md (Parameters)")
        v = values[key]
        out[key] = (
            validate_schema(check, v, f"{prefix}{key}.") if isinstance(check, dict) else check(f"{prefix}{key}", v)
        )
    return out


def layers_of(variant_name: str) -> tuple[int, ...]:
    """``"L123"`` -> ``(1, 2, 3)``: the layer set of a Table 4 variant (validated, sorted)."""
    m = LAYER_VARIANT.match(variant_name)
    if not m:
        raise ConfigError(
            f"{variant_name!r} is not a layer variant (L followed by layer digits drawn from 1, 2, 3, e.g. L13)"
        )
    return check_layers([int(c) for c in m.group(1)], f"ablation.layers ({variant_name})")


def feature_map_side(image_size: int, layers: Sequence[int]) -> int:
    """Side of the fused map z: the largest selected map (layer l has stride 2^(l+1))."""
    return image_size // (2 ** (min(layers) + 1))
