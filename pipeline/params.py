"""Load and validate params.yaml before any heavy work: unknown keys, wrong types, bad ranges and
inconsistent combinations are rejected with one line naming the key."""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence, get_type_hints

import yaml

from frad.errors import ConfigError
from frad.layers import BACKBONE_CHANNELS, check_layers
from frad.mvtec import MVTEC_TEXTURES

PARAMS_FILE = "params.yaml"
SOURCES = ("mvtec", "archive", "folder", "synthetic")
PRECISIONS = ("fp32", "bf16", "fp16")
BACKBONE_NAMES = tuple(sorted(BACKBONE_CHANNELS))  # = frad.backbone.BACKBONES (tested); no torch import here
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
LAYER_VARIANT = re.compile(r"^L([123]+)$")
BASELINES = ("padim", "patchcore", "rd")  # same-harness comparison methods (frad/<name>.py, pipeline/<name>.py)
CHOICE_KEYS = ("model.gfe_modules", "model.skips", "model.strides", "model.input_norm", "model.widths", "score.top_k")
"""The open choices (paper silent; docs/diagnosis.md) a ``choices.variants`` entry may change."""
CHOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")  # no dot: DVC reads choices.variants.<name> as a path
MODULE_VARIANTS: dict[str, tuple[bool, bool]] = {
    "baseline": (False, False),
    "gfe": (True, False),
    "shuffle": (False, True),
}
"""Table 3 rows besides ``full``: variant -> (GFE, shuffle loss)."""


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
        if not LAYER_VARIANT.match(name):
            raise ConfigError(
                f"{key}: {name!r} is not a layer set; write L followed by layer digits drawn from 1, 2, 3, e.g. L1 or L123"
            )
        layers_of(name)
    return v


def _modules(allow_empty: bool) -> Callable[[str, Any], Any]:
    """A set of encoder modules drawn from 1, 2, 3 (frad.model.ModelConfig checks it again)."""

    def check(key: str, v: Any) -> list[int]:
        ok = isinstance(v, list) and (v or allow_empty) and len(set(map(str, v))) == len(v)
        if not ok or any(isinstance(i, bool) or i not in (1, 2, 3) for i in v):
            raise ConfigError(f"{key} must be a list of distinct encoder modules among 1, 2, 3, got {v!r}")
        return sorted(v)

    return check


def _strides(key: str, v: Any) -> list[int]:
    if not isinstance(v, list) or len(v) != 3 or any(isinstance(i, bool) or i not in (1, 2) for i in v):
        raise ConfigError(f"{key} must be three values, each 1 or 2 (stride of each encoder module), got {v!r}")
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
        if name not in BASELINES:
            close = difflib.get_close_matches(str(name), BASELINES, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"{key}: unknown method {name!r}; choose from {', '.join(BASELINES)}{hint}")
    return v


def _resamples(key: str, v: Any) -> int:
    _int(0)(key, v)
    if 0 < v < 100:  # the 2.5% and 97.5% percentiles need at least ~100 replicates
        raise ConfigError(f"{key} must be 0 (no intervals) or at least 100, got {v}")
    return v


def _leaves(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"model": {"widths": [8, 8, 8]}}`` -> ``[("model.widths", [8, 8, 8])]``."""
    if not isinstance(node, dict) or not node:
        return [(prefix, node)] if prefix else []
    return [leaf for k, v in node.items() for leaf in _leaves(v, f"{prefix}.{k}" if prefix else str(k))]


def _variants(key: str, v: Any) -> dict[str, tuple[str, Any] | None]:
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
        "source": _choice(*SOURCES),
        "root": _str,
        "archive": _str,
        "url": _str,
        "sha256": _sha256,
        "categories": _names(),
        "textures": _names(allow_empty=True),
        "image_size": _int(32, 4096),
        "crop": _float(0.0, 1.0, lo_open=True),
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
    "model": {
        "gfe": _bool,
        "grid": _int(1),
        "widths": _widths,
        "gfe_modules": _modules(allow_empty=False),
        "skips": _modules(allow_empty=True),
        "strides": _strides,
        "input_norm": _choice("none", "channel"),
    },
    "ssl": {"enabled": _bool, "lambda": _float(0.0), "grid": _int(1)},
    "train": {
        "epochs": _int(1),
        "batch_size": _int(1),
        "lr": _float(0.0, lo_open=True),
        "betas": _betas,
        "seeds": _seeds,
        "device": _device,
    },
    "score": {
        "sigma": _float(0.0),
        "pro_limit": _float(0.0, 1.0, lo_open=True),
        "batch_size": _int(1),
        "n_figures": _int(0),
        "top_k": _int(1),
    },
    "ablation": {"layers": _layer_variants},
    "baselines": {
        "methods": _methods,
        "padim": {"d": _int(1), "eps": _float(0.0, lo_open=True)},
        "patchcore": {
            "coreset": _float(0.0, 1.0, lo_open=True),
            "dims": _int(1),
            "projection": _int(1),
            "neighbourhood": _int(1),
            "reweight": _bool,
            "k": _int(1),
        },
        "rd": {
            "epochs": _int(1),
            "batch_size": _int(1),
            "lr": _float(0.0, lo_open=True),
            "betas": _betas,
            "student_output": _choice("relu", "linear"),
        },
    },
    "choices": {"enabled": _bool, "categories": _names(allow_empty=True), "variants": _variants},
    "bootstrap": {"resamples": _resamples, "seed": _int(0)},
}
OPTIONAL: dict[str, Any] = {"data.textures": []}
"""Keys that may be left out of params.yaml, with their default."""


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
        if key not in values and f"{prefix}{key}" in OPTIONAL:
            values = {**values, key: OPTIONAL[f"{prefix}{key}"]}
        if key not in values:
            raise ConfigError(f"{prefix}{key} is missing from {PARAMS_FILE}; see README.md (Parameters)")
        v = values[key]
        out[key] = _validate(check, v, f"{prefix}{key}.") if isinstance(check, dict) else check(f"{prefix}{key}", v)
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


# ------------------------------------------------------------------------------------------------
# The typed params model: frozen dataclasses built from the validated params.yaml (lists become tuples).
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyntheticParams:
    seed: int
    n_train: int
    n_test_good: int
    n_test_defect: int
    size: int


@dataclass(frozen=True)
class DataParams:
    source: str
    root: str
    archive: str
    url: str
    sha256: str
    categories: tuple[str, ...]
    textures: tuple[str, ...]
    image_size: int
    crop: float
    synthetic: SyntheticParams

    def is_texture(self, category: str) -> bool:
        """MVTec AD's textures are known; ``data.textures`` adds names of other datasets."""
        return category in MVTEC_TEXTURES or category in self.textures

    @property
    def texture_categories(self) -> tuple[str, ...]:
        return tuple(c for c in self.categories if self.is_texture(c))

    @property
    def object_categories(self) -> tuple[str, ...]:
        return tuple(c for c in self.categories if not self.is_texture(c))


@dataclass(frozen=True)
class BackboneParams:
    name: str
    weights: str
    precision: str
    channels_last: bool


@dataclass(frozen=True)
class FeaturesParams:
    layers: tuple[int, ...]
    channels: int
    cache_layers: tuple[int, ...]
    batch_size: int


@dataclass(frozen=True)
class ModelParams:
    gfe: bool
    grid: int
    widths: tuple[int, int, int]
    gfe_modules: tuple[int, ...]
    skips: tuple[int, ...]
    strides: tuple[int, int, int]
    input_norm: str


@dataclass(frozen=True)
class SslParams:
    enabled: bool
    lambda_: float = field(metadata={"key": "lambda"})
    grid: int


@dataclass(frozen=True)
class TrainParams:
    epochs: int
    batch_size: int
    lr: float
    betas: tuple[float, float]
    seeds: tuple[int, ...]
    device: str


@dataclass(frozen=True)
class ScoreParams:
    sigma: float
    pro_limit: float
    batch_size: int
    n_figures: int
    top_k: int


@dataclass(frozen=True)
class AblationParams:
    layers: tuple[str, ...]


@dataclass(frozen=True)
class PadimParams:
    d: int
    eps: float


@dataclass(frozen=True)
class PatchcoreParams:
    coreset: float
    dims: int
    projection: int
    neighbourhood: int
    reweight: bool
    k: int


@dataclass(frozen=True)
class RdParams:
    epochs: int
    batch_size: int
    lr: float
    betas: tuple[float, float]
    student_output: str


@dataclass(frozen=True)
class BaselinesParams:
    methods: tuple[str, ...]
    padim: PadimParams
    patchcore: PatchcoreParams
    rd: RdParams


@dataclass(frozen=True)
class ChoicesParams:
    enabled: bool
    categories: tuple[str, ...]
    variants: dict[str, tuple[str, Any] | None]
    """name -> (dotted open-choice key, value), or None for the params as they are."""


@dataclass(frozen=True)
class BootstrapParams:
    resamples: int
    seed: int


@dataclass(frozen=True)
class Variant:
    """A FRAD model the pipeline trains: its layer set and modules (Tables 3 and 4)."""

    name: str
    layers: tuple[int, ...]
    gfe: bool
    ssl: bool


@dataclass(frozen=True)
class Params:
    """params.yaml, validated: the one typed model every stage, the report and the benchmark take."""

    data: DataParams
    backbone: BackboneParams
    features: FeaturesParams
    model: ModelParams
    ssl: SslParams
    train: TrainParams
    score: ScoreParams
    ablation: AblationParams
    baselines: BaselinesParams
    choices: ChoicesParams
    bootstrap: BootstrapParams

    def with_choice(self, name: str) -> Params:
        """These params with the open choice of ``choices.variants.<name>`` applied (the study's model)."""
        if name not in self.choices.variants:
            raise ConfigError(
                f"unknown choices variant {name!r}; choices.variants has {', '.join(self.choices.variants)}"
            )
        change = self.choices.variants[name]
        if change is None:
            return self
        (section, key), value = change[0].split("."), change[1]
        value = tuple(value) if isinstance(value, list) else value
        return replace(self, **{section: replace(getattr(self, section), **{key: value})})

    def variant(self, name: str) -> Variant:
        """full = the main model as params say; baseline/gfe/shuffle fix the two modules (Table 3);
        L<digits> = the main model on another layer set (Table 4)."""
        if name == "full":
            return Variant(name, self.features.layers, self.model.gfe, self.ssl.enabled)
        if name in MODULE_VARIANTS:
            return Variant(name, self.features.layers, *MODULE_VARIANTS[name])
        if LAYER_VARIANT.match(name):
            return Variant(name, layers_of(name), self.model.gfe, self.ssl.enabled)
        raise ConfigError(f"unknown variant {name!r}: use full, {', '.join(MODULE_VARIANTS)} or L<layers> such as L123")

    @property
    def layer_variants(self) -> tuple[str, ...]:
        """Table 4 variants that are trained: ablation.layers without the main layer set (that row is ``full``)."""
        return tuple(v for v in self.ablation.layers if layers_of(v) != self.features.layers)

    @property
    def frad_variants(self) -> tuple[str, ...]:
        """Every FRAD variant the pipeline trains and scores."""
        return ("full", *MODULE_VARIANTS, *self.layer_variants)

    @property
    def methods(self) -> tuple[str, ...]:
        """Every scored method: the FRAD variants, then the same-harness baselines."""
        return (*self.frad_variants, *self.baselines.methods)


def _build(cls: type, values: dict) -> Any:
    """A params dataclass from its validated dict: nested sections recurse, lists become tuples."""
    hints = get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        v = values[f.metadata.get("key", f.name)]
        if is_dataclass(hints[f.name]):
            v = _build(hints[f.name], v)
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)


def _cross_checks(p: Params) -> None:
    d = p.data
    if d.image_size % 16:
        raise ConfigError(f"data.image_size={d.image_size} must be a multiple of 16 (the backbone's layer-3 stride)")
    cache = set(p.features.cache_layers)
    sets: dict[str, tuple[int, ...]] = {"features.layers": p.features.layers}
    for v in p.ablation.layers:
        layers = layers_of(v)
        same = next((k for k, other in sets.items() if other == layers and k != "features.layers"), None)
        if same:
            raise ConfigError(f"ablation.layers: {v} repeats the layer set of {same}")
        sets[f"ablation.layers ({v})"] = layers
    for key, layers in sets.items():
        missing = sorted(set(layers) - cache)
        if missing:
            raise ConfigError(
                f"{key} uses layer {missing[0]}, which features.cache_layers {sorted(cache)} does not store; add it there"
            )
        side = feature_map_side(d.image_size, layers)
        stride = math.prod(p.model.strides)
        need_model = stride * p.model.grid
        if side % need_model:
            raise ConfigError(
                f"model.grid={p.model.grid} does not fit {key}: the {side}x{side} feature map must be a multiple of "
                f"{stride}*K={need_model} (encoder stride {stride}, model.strides, then a KxK GFE grid); "
                "change model.grid, model.strides or data.image_size"
            )
        if side % 4:
            raise ConfigError(f"data.image_size={d.image_size}: the {side}x{side} map of {key} must be a multiple of 4")
        if side % p.ssl.grid:
            raise ConfigError(
                f"ssl.grid={p.ssl.grid} does not divide the {side}x{side} feature map of {key}; choose a divisor of {side}"
            )
    if p.score.top_k > d.image_size**2:
        raise ConfigError(
            f"score.top_k={p.score.top_k} exceeds the {d.image_size}x{d.image_size} pixels of an anomaly map; lower it"
        )
    k2 = p.model.grid**2
    bad = [w for w in p.model.widths if w % k2]
    if bad:
        raise ConfigError(
            f"model.widths {list(p.model.widths)} must be multiples of K*K={k2} (model.grid={p.model.grid}, eq. 6)"
        )
    needed = {"padim": (1, 2, 3), "patchcore": (2, 3), "rd": (1, 2, 3)}
    for method in p.baselines.methods:
        missing = sorted(set(needed[method]) - cache)
        if missing:
            raise ConfigError(
                f"baselines.methods: {method} needs backbone layers {list(needed[method])}, and features.cache_layers "
                f"{sorted(cache)} lacks layer {missing[0]}; add it there"
            )
    total = sum(BACKBONE_CHANNELS[p.backbone.name][l] for l in needed["padim"])
    if "padim" in p.baselines.methods and p.baselines.padim.d > total:
        raise ConfigError(
            f"baselines.padim.d={p.baselines.padim.d} exceeds the {total} channels of {p.backbone.name}'s layers "
            f"{list(needed['padim'])}; lower it (the PaDiM paper: 550 for WRN50-2, 100 for ResNet-18-size backbones)"
        )


def _check_choices(p: Params) -> None:
    """The study runs on categories the pipeline prepares, and each variant is a valid main model."""
    if p.choices.enabled and not p.choices.categories:
        raise ConfigError("choices.enabled is true but choices.categories is empty; list development categories there")
    missing = [c for c in p.choices.categories if c not in p.data.categories]
    if missing:
        raise ConfigError(
            f"choices.categories lists {missing[0]}, which is not in data.categories; the study reuses that "
            "category's cached features: add it there or remove it from choices.categories ([] runs no study)"
        )
    main_only = replace(p.ablation, layers=())  # the study trains the main layer set only
    for name, change in p.choices.variants.items():
        if change is None or not p.choices.enabled:  # an entry that fits no model matters only when it trains
            continue
        q = replace(p.with_choice(name), ablation=main_only, baselines=replace(p.baselines, methods=()))
        try:
            _cross_checks(q)
        except ConfigError as err:
            raise ConfigError(f"choices.variants.{name} ({change[0]}={change[1]!r}): {err}") from None


def validate_params(raw: Any) -> Params:
    params = _build(Params, _validate(SCHEMA, raw, ""))
    _cross_checks(params)
    _check_choices(params)
    return params


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_Loader)
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; run from the project root (where dvc.yaml is)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"{path} is not valid YAML{at}: {getattr(err, 'problem', None) or err}; fix the file"
        ) from None
    return validate_params(raw)
