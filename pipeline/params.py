"""Load and validate params.yaml before any heavy work: unknown keys, wrong types, bad ranges and
inconsistent combinations are rejected with one line naming the key."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Mapping, get_type_hints

import yaml

from frad.config import ModelConfig, TrainConfig
from frad.datasets.registry import Dataset, get_dataset
from frad.errors import ConfigError
from frad.layers import BACKBONE_CHANNELS
from frad.methods import METHODS

from .params_schema import LAYER_VARIANT, PARAMS_FILE, SCHEMA, Loader, feature_map_side, layers_of, validate_schema

MODULE_VARIANTS: dict[str, tuple[bool, bool]] = {
    "baseline": (False, False),
    "gfe": (True, False),
    "shuffle": (False, True),
}
"""Table 3 rows besides ``full``: variant -> (GFE, shuffle loss)."""


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
    dataset: str
    source: str
    root: str
    archive: str
    urls: Mapping[str, tuple[str, ...]]
    sha256: str
    categories: tuple[str, ...]
    textures: tuple[str, ...]
    image_size: int
    crop: float
    resize: str
    synthetic: SyntheticParams

    @classmethod
    def from_values(cls, values: dict) -> DataParams:
        urls = {name: tuple(v) for name, v in values["urls"].items()}
        rest = {k: v for k, v in values.items() if k not in ("urls", "synthetic")}
        rest = {k: tuple(v) if isinstance(v, list) else v for k, v in rest.items()}
        return cls(**rest, urls=urls, synthetic=SyntheticParams(**values["synthetic"]))

    @property
    def spec(self) -> Dataset:
        """The selected dataset's registry entry (frad.datasets.registry)."""
        return get_dataset(self.dataset)

    @property
    def mirrors(self) -> tuple[str, ...]:
        """The selected dataset's archive URLs, tried in order: ``data.urls.<dataset>``, else the registry's."""
        return self.urls.get(self.dataset, self.spec.mirrors)

    @property
    def archive_sha256(self) -> str | None:
        """The archive's identity: ``data.sha256``, where ``auto`` is the dataset's published checksum."""
        return self.spec.sha256 if self.sha256 == "auto" else self.sha256

    @property
    def paper_data(self) -> bool:
        """Whether these are the FRAD paper's data (MVTec AD, from its archive or a folder declared MVTec AD): the
        only case where the report sets the paper's published values beside ours."""
        return self.spec.in_paper and self.source != "synthetic"

    def is_texture(self, category: str) -> bool:
        """The dataset's textures are known (MVTec AD's); ``data.textures`` adds names for other data."""
        return category in self.spec.textures or category in self.textures

    @property
    def groups(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(label, categories) rows averaged in Tables 1–2, each holding at least one selected category: the
        dataset's own groups where it has no textures (VisA's three), else textures and objects."""
        if self.spec.groups and not self.spec.textures and self.source != "synthetic":
            groups = [(label, tuple(c for c in self.categories if c in cats)) for label, cats in self.spec.groups]
            rest = tuple(c for c in self.categories if not any(c in cats for _, cats in self.spec.groups))
            groups += [("Other", rest)] if rest else []
        else:
            groups = [("Texture", self.texture_categories), ("Object", self.object_categories)]
        return tuple((label, cats) for label, cats in groups if cats)

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
    top_k: int


@dataclass(frozen=True)
class AblationParams:
    layers: tuple[str, ...]


@dataclass(frozen=True)
class CompareParams:
    methods: tuple[str, ...]
    settings: Mapping[str, Mapping[str, Any]]
    """``compare.<name>`` of every registered method (frad.methods.METHODS), type-checked."""

    @classmethod
    def from_values(cls, values: dict) -> CompareParams:
        return cls(tuple(values["methods"]), {name: values[name] for name in METHODS})

    def config(self, name: str, seed: int = 0, device: str = "cpu") -> Any:
        """The method's config (frad.methods): its ``compare.<name>`` settings, the stage's seed and device."""
        return METHODS[name].make_config(self.settings[name], seed, device)


@dataclass(frozen=True)
class ChoicesParams:
    enabled: bool
    categories: tuple[str, ...]
    changes: dict[str, tuple[str, Any] | None]
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
    compare: CompareParams
    choices: ChoicesParams
    bootstrap: BootstrapParams

    def with_choice(self, name: str) -> Params:
        """These params with the open choice of ``choices.changes.<name>`` applied (the study's model)."""
        if name not in self.choices.changes:
            raise ConfigError(
                f"unknown choices variant {name!r}; choices.changes has {', '.join(self.choices.changes)}"
            )
        change = self.choices.changes[name]
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

    def configs(self, variant_name: str, seed: int = 0) -> tuple[Variant, ModelConfig, TrainConfig]:
        """Model and training configs of a variant, built only from the params keys that variant uses
        (the DVC stage lists exactly those), so e.g. λ never enters a model trained without the shuffle loss."""
        v = self.variant(variant_name)
        m, s, t = self.model, self.ssl, self.train
        model_config = ModelConfig(
            in_channels=self.features.channels,
            widths=m.widths,
            gfe=v.gfe,
            gfe_grid=m.grid if v.gfe else 1,
            gfe_modules=m.gfe_modules if v.gfe else (1, 2, 3),
            skips=m.skips,
            strides=m.strides,
            input_norm=m.input_norm,
        )
        train_config = TrainConfig(
            epochs=t.epochs,
            batch_size=t.batch_size,
            lr=t.lr,
            betas=t.betas,
            ssl=v.ssl,
            ssl_lambda=s.lambda_ if v.ssl else 0.0,
            ssl_grid=s.grid if v.ssl else 1,
            seed=seed,
            device=t.device,
        )
        return v, model_config, train_config

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
        """Every scored method: the FRAD variants, then the comparison methods."""
        return (*self.frad_variants, *self.compare.methods)


def _build(cls: type, values: dict) -> Any:
    """A params dataclass from its validated dict: nested sections recurse, lists become tuples."""
    if hasattr(cls, "from_values"):
        return cls.from_values(values)
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


def _check_data(d: DataParams) -> None:
    """The dataset, where its bytes come from and its categories agree (before any stage runs)."""
    spec = d.spec
    if d.source in ("download", "archive") and spec.sha256 is None:
        raise ConfigError(
            f"data.dataset {d.dataset} has no published archive; use data.source: folder (data.root) or synthetic"
        )
    if d.source == "download" and not d.mirrors:
        raise ConfigError(f"data.urls.{d.dataset} is empty; list a mirror of the archive or use data.source: archive")
    if d.source != "synthetic":
        for c in d.categories:
            spec.check_category(c)


def _cross_checks(p: Params) -> None:
    _check_data(p.data)
    for variant in p.frad_variants:
        p.configs(variant)  # the network's and training's own rules (frad.config), for every model trained
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
    for name in METHODS:
        config = p.compare.config(name)  # the config's own range checks, for every method's settings
        if name not in p.compare.methods:
            continue
        missing = sorted(set(config.layers) - cache)
        if missing:
            raise ConfigError(
                f"compare.methods: {name} needs backbone layers {list(config.layers)}, and features.cache_layers "
                f"{sorted(cache)} lacks layer {missing[0]}; add it there"
            )
        METHODS[name].check_backbone(config, p.backbone.name, BACKBONE_CHANNELS[p.backbone.name])


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
    for name, change in p.choices.changes.items():
        if change is None:
            continue
        q = replace(p.with_choice(name), ablation=main_only, compare=replace(p.compare, methods=()))
        try:
            if p.choices.enabled:
                _cross_checks(q)
            else:  # an entry that fits no feature map matters only when it trains; its value must still be valid
                q.configs("full")
        except ConfigError as err:
            raise ConfigError(f"choices.changes.{name} ({change[0]}={change[1]!r}): {err}") from None


def validate_params(raw: Any) -> Params:
    params = _build(Params, validate_schema(SCHEMA, raw, ""))
    _cross_checks(params)
    _check_choices(params)
    return params


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=Loader)
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; run from the project root (where dvc.yaml is)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"{path} is not valid YAML{at}: {getattr(err, 'problem', None) or err}; fix the file"
        ) from None
    return validate_params(raw)
