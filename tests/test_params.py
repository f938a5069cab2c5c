"""params.yaml faults: every bad value is rejected by `pipeline.params` with ONE line naming the key (and what to
do) before any heavy work; values that look odd but are fine (a batch larger than the train set) work.

Most cases call `validate_params` / `load_params` in-process (fast); a few run a stage command in a workspace to
prove the whole path: exit status 2, a single `error:` line on stderr, within seconds, no output.
Cases are listed in tests/FAULTS.md (group "Params").
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_utils import BASE, DELETE, THREADS, TINY, changed, env, run_cpu_timed

from frad.errors import ConfigError
from pipeline.params import load_params, validate_params
from pipeline.workspace import make_workspace

PROJECT = Path(__file__).resolve().parent.parent


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg, repr(msg)
    return msg


def rejected(raw: dict, *needles: str) -> str:
    with pytest.raises(ConfigError) as err:
        validate_params(raw)
    msg = one_line(err)
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


# --------------------------------------------------------------------------- sanity: the project's own file


def test_project_params_yaml_is_valid():
    params = load_params(PROJECT / "params.yaml")
    assert params.ssl.lambda_ == BASE["ssl"]["lambda"] and params.model.grid == BASE["model"]["grid"]
    assert params.train.seeds == tuple(BASE["train"]["seeds"]) and isinstance(params.model.widths, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.train.epochs = 1  # type: ignore[misc]


# --------------------------------------------------------------------------- unknown keys (typos)


def renamed(dotted: str, new: str) -> dict:
    """The project's params with the key ``dotted`` renamed to ``new`` (same place, same value)."""
    raw = copy.deepcopy(BASE)
    *parents, old = dotted.split(".")
    node = raw
    for k in parents:
        node = node[k]
    items = list(node.items())
    node.clear()
    node.update({(new if k == old else k): v for k, v in items})
    return raw


UNKNOWN = {
    "ssl.lamda": (renamed("ssl.lambda", "lamda"), "unknown key ssl.lamda in params.yaml", "did you mean ssl.lambda?"),
    "trian": (renamed("train", "trian"), "unknown key trian", "did you mean train?"),
    "data.synthetic.sed": (
        renamed("data.synthetic.seed", "sed"),
        "unknown key data.synthetic.sed",
        "did you mean data.synthetic.seed?",
    ),
    "model.dropout": (changed(model__dropout=0.5), "unknown key model.dropout", "known keys: gfe, grid, widths"),
}


@pytest.mark.parametrize("case", list(UNKNOWN))
def test_unknown_key_names_it_and_suggests_the_right_one(case):
    raw, *needles = UNKNOWN[case]
    rejected(raw, *needles)


# --------------------------------------------------------------------------- layers outside {1, 2, 3}

LAYERS = {
    "features.layers=4": (changed(features__layers=[4]), "features.layers must be drawn from [1, 2, 3]", "[4]"),
    "features.layers=0-2": (changed(features__layers=[0, 2]), "features.layers must be drawn from [1, 2, 3]"),
    "features.layers=empty": (changed(features__layers=[]), "features.layers must be a non-empty list"),
    "features.layers=2-2": (changed(features__layers=[2, 2]), "features.layers lists a layer twice"),
    "features.layers=string": (changed(features__layers="2,3"), "features.layers must be a non-empty list", "'2,3'"),
    "features.cache_layers=1-2-3-4": (
        changed(features__cache_layers=[1, 2, 3, 4]),
        "features.cache_layers must be drawn",
    ),
    "layer_not_in_cache_layers": (
        changed(features__cache_layers=[2, 3], ablation__layers=["L1"]),
        "ablation.layers (L1) uses layer 1",
        "features.cache_layers [2, 3] does not store",
    ),
    "ablation.layers=L4": (changed(ablation__layers=["L4"]), "ablation.layers: 'L4' is not a layer set", "1, 2, 3"),
    "ablation.layers=L0": (changed(ablation__layers=["L0"]), "ablation.layers: 'L0' is not a layer set"),
    "ablation.layers=L24": (changed(ablation__layers=["L24"]), "ablation.layers: 'L24' is not a layer set"),
    "ablation.layers=L22": (changed(ablation__layers=["L22"]), "ablation.layers (L22) lists a layer twice"),
    "ablation.layers=int": (changed(ablation__layers=[3]), "ablation.layers: 3 is not a valid name"),
}


@pytest.mark.parametrize("case", list(LAYERS))
def test_layers_outside_1_2_3_are_rejected(case):
    raw, *needles = LAYERS[case]
    rejected(raw, *needles)


# --------------------------------------------------------------------------- K must fit the feature map
# Defaults: image 256 px, L = {2, 3} -> 32x32 map; ablation L1 -> 64x64, L3 -> 16x16.

GRIDS = {
    "model.grid=3": (
        changed(model__grid=3, model__widths=[288, 288, 288]),
        "model.grid=3 does not fit features.layers",
        "32x32",
        "4*K=12",
    ),
    "model.grid=16": (changed(model__grid=16), "model.grid=16 does not fit features.layers", "4*K=64"),
    "model.grid=8_vs_L3": (changed(model__grid=8), "model.grid=8 does not fit ablation.layers (L3)", "16x16"),
    "model.grid=0": (changed(model__grid=0), "model.grid must be >= 1, got 0"),
    "model.widths_not_multiple_of_K2": (changed(model__widths=[256, 256, 100]), "model.widths", "K*K=16"),
    "ssl.grid=3": (
        changed(ssl__grid=3),
        "ssl.grid=3 does not divide the 32x32 feature map of features.layers",
        "choose a divisor of 32",
    ),
    "ssl.grid=5": (changed(ssl__grid=5), "ssl.grid=5 does not divide"),
    "ssl.grid=32_vs_L3": (
        changed(ssl__grid=32),
        "ssl.grid=32 does not divide the 16x16 feature map of ablation.layers (L3)",
    ),
    "ssl.grid=0": (changed(ssl__grid=0), "ssl.grid must be >= 1, got 0"),
    "image_size_not_multiple_of_16": (changed(data__image_size=200), "data.image_size=200 must be a multiple of 16"),
}


@pytest.mark.parametrize("case", list(GRIDS))
def test_grid_that_does_not_divide_the_feature_map_is_rejected(case):
    raw, *needles = GRIDS[case]
    rejected(raw, *needles)


# --------------------------------------------------------------------------- ranges: λ, epochs, ...

RANGES = {
    "ssl.lambda=-0.1": (changed(ssl__lambda=-0.1), "ssl.lambda must be >= 0", "-0.1"),
    "ssl.lambda=nan": (changed(ssl__lambda=math.nan), "ssl.lambda must be a number", "nan"),
    "ssl.lambda=inf": (changed(ssl__lambda=math.inf), "ssl.lambda must be a number", "inf"),
    "train.epochs=0": (changed(train__epochs=0), "train.epochs must be >= 1, got 0"),
    "train.epochs=-3": (changed(train__epochs=-3), "train.epochs must be >= 1, got -3"),
    "train.batch_size=0": (changed(train__batch_size=0), "train.batch_size must be >= 1, got 0"),
    "train.lr=0": (changed(train__lr=0), "train.lr must be a positive number, got 0"),
    "train.betas=0.5-1.0": (changed(train__betas=[0.5, 1.0]), "train.betas must be two numbers in [0, 1)"),
    "score.pro_limit=0": (changed(score__pro_limit=0), "score.pro_limit must be > 0"),
    "score.pro_limit=1.5": (changed(score__pro_limit=1.5), "score.pro_limit must be <= 1.0"),
    "data.image_size=16": (changed(data__image_size=16), "data.image_size must be >= 32"),
    "padim.d_above_lite0_channels": (
        changed(backbone__name="tf_efficientnet_lite0"),
        "compare.padim.d=550 exceeds the 176 channels of tf_efficientnet_lite0's layers [1, 2, 3]",
    ),
    "data.crop=0": (changed(data__crop=0), "data.crop must be > 0.0, got 0"),
    "data.crop=1.2": (changed(data__crop=1.2), "data.crop must be <= 1.0, got 1.2"),
    "bootstrap.resamples=50": (changed(bootstrap__resamples=50), "bootstrap.resamples must be 0 (no intervals) or at"),
    "bootstrap.resamples=-1": (changed(bootstrap__resamples=-1), "bootstrap.resamples must be >= 0"),
    "bootstrap.seed=-1": (changed(bootstrap__seed=-1), "bootstrap.seed must be >= 0"),
}


@pytest.mark.parametrize("case", list(RANGES))
def test_out_of_range_values_are_rejected(case):
    raw, *needles = RANGES[case]
    rejected(raw, *needles)


# --------------------------------------------------------------------------- wrong types

TYPES = {
    "str_for_int": (changed(train__epochs="10"), "train.epochs must be an integer, got '10'"),
    "float_for_int": (changed(train__epochs=10.5), "train.epochs must be an integer, got 10.5"),
    "bool_for_int": (changed(train__epochs=True), "train.epochs must be an integer, got True"),
    "bool_for_int_seed": (changed(train__seeds=[0, False]), "train.seeds[1] must be an integer, got False"),
    "seeds_empty": (changed(train__seeds=[]), "train.seeds must be a non-empty list"),
    "strides_3": (changed(model__strides=[1, 3, 2]), "model.strides must be three values, each 1 or 2"),
    "skips_4": (changed(model__skips=[1, 4]), "model.skips must be distinct encoder modules among 1, 2, 3, got [1, 4]"),
    "gfe_modules_empty": (
        changed(model__gfe_modules=[]),
        "model.gfe_modules must be distinct encoder modules among 1, 2, 3, got []",
    ),
    "input_norm": (changed(model__input_norm="batch"), "model.input_norm must be 'none' or 'channel', got 'batch'"),
    "top_k_0": (changed(score__top_k=0), "score.top_k must be >= 1"),
    "strides_too_deep": (
        changed(model__strides=[2, 2, 2], model__grid=8, model__widths=[64, 64, 64]),
        "encoder stride 8",
        "model.strides",
    ),
    "seeds_twice": (changed(train__seeds=[0, 1, 0]), "train.seeds lists seed 0 more than once"),
    "unknown_method": (
        changed(compare__methods=["padim", "patchcor"]),
        "unknown method 'patchcor'",
        "did you mean patchcore?",
    ),
    "coreset_0": (changed(compare__patchcore__coreset=0), "compare.patchcore.coreset must be in (0, 1], got 0"),
    "bool_for_method_int": (changed(compare__padim__d=True), "compare.padim.d must be an integer, got True"),
    "method_betas_short": (changed(compare__rd__betas=[0.5]), "compare.rd.betas must be a list of 2 values"),
    "method_range_from_its_config": (
        changed(compare__rd__student_output="tanh"),
        "compare.rd.student_output must be 'relu' or 'linear', got 'tanh'",
    ),
    "method_unknown_key": (changed(compare__padim__k=3), "unknown key compare.padim.k"),
    "padim_without_layer_1": (
        changed(features__cache_layers=[2, 3], ablation__layers=[], compare__methods=["padim"]),
        "padim needs backbone layers [1, 2, 3]",
        "lacks layer 1",
    ),
    "same_layer_set_twice": (changed(ablation__layers=["L1", "L1"]), "ablation.layers lists L1 more than once"),
    "list_for_bool": (changed(model__gfe=[True]), "model.gfe must be true or false, got [True]"),
    "str_for_bool": (changed(ssl__enabled="yes"), "ssl.enabled must be true or false, got 'yes'"),
    "int_for_bool": (changed(ssl__enabled=1), "ssl.enabled must be true or false, got 1"),
    "str_for_float": (changed(ssl__lambda="0.1"), "ssl.lambda must be a number, got '0.1'"),
    "bool_for_float": (changed(score__sigma=True), "score.sigma must be a number, got True"),
    "scalar_for_list": (changed(train__betas=0.5), "train.betas must be a list of 2 values, got 0.5"),
    "short_list": (changed(model__widths=[256, 256]), "model.widths must be a list of 3 values, got [256, 256]"),
    "str_in_int_list": (changed(model__widths=[256, "256", 256]), "model.widths[1] must be an integer, got '256'"),
    "str_for_list_of_names": (changed(data__categories="tile"), "data.categories must be a non-empty list of names"),
    "bad_name": (changed(data__categories=["tile", "../x"]), "data.categories: '../x' is not a valid name"),
    "unknown_choice": (changed(backbone__name="resnet18"), "backbone.name must be one of", "'resnet18'"),
    "bad_device": (changed(train__device="gpu"), "train.device must be 'auto', 'cpu' or 'cuda[:N]', got 'gpu'"),
    "bad_sha256": (changed(data__sha256="abc"), "data.sha256 must be auto", "or a 64-digit hex SHA-256"),
    "scalar_for_section": (changed(train=5), "train must be a mapping of keys", "epochs"),
}


@pytest.mark.parametrize("case", list(TYPES))
def test_wrong_types_are_rejected(case):
    raw, *needles = TYPES[case]
    rejected(raw, *needles)


# --------------------------------------------------------------------------- missing keys

MISSING = {
    "train.seeds": (changed(train__seeds=DELETE), "train.seeds is missing from params.yaml"),
    "score": (changed(score=DELETE), "score is missing from params.yaml"),
    "data.synthetic.size": (changed(data__synthetic__size=DELETE), "data.synthetic.size is missing from params.yaml"),
    "bootstrap.resamples": (changed(bootstrap__resamples=DELETE), "bootstrap.resamples is missing from params.yaml"),
}


@pytest.mark.parametrize("case", list(MISSING))
def test_missing_key_is_named(case):
    raw, *needles = MISSING[case]
    rejected(raw, *needles)


# --------------------------------------------------------------------------- values that must WORK


@pytest.mark.parametrize(
    "raw",
    [
        changed(train__batch_size=100_000),  # larger than any train set: the whole set is one batch
        changed(ssl__lambda=0),  # λ = 0 is allowed (the loss term is off)
        changed(train__lr=1),  # an int where a float is expected
        changed(ablation__layers=[]),  # no layer ablation
        changed(model__grid=2, ssl__grid=16),  # other K that fit every map
    ],
    ids=["batch_larger_than_train_set", "lambda_0", "int_for_float", "no_ablation", "other_grids"],
)
def test_unusual_but_valid_values_are_accepted(raw):
    validate_params(raw)


def test_categories_alone_select_categories():
    """A dataset's textures are known (MVTec AD's); data.textures only adds names and may be left out."""
    p = validate_params(changed(data__categories=["bottle", "carpet"], data__textures=DELETE))
    assert p.data.texture_categories == ("carpet",) and p.data.object_categories == ("bottle",)
    raw = changed(data__categories=["bottle", "marble"], data__textures=["marble", "unused"], data__dataset="custom")
    raw["data"]["source"] = "folder"
    assert validate_params(raw).data.texture_categories == ("marble",)


def test_variants_are_defined_once():
    p = validate_params(changed(ablation__layers=["L1", "L23", "L123"], compare__methods=["rd"]))
    assert p.frad_variants == ("full", "baseline", "gfe", "shuffle", "L1", "L123")  # L23 is the main model
    assert p.methods == (*p.frad_variants, "rd")
    assert (p.variant("shuffle").gfe, p.variant("shuffle").ssl, p.variant("L1").layers) == (False, True, (1,))
    with pytest.raises(ConfigError, match="unknown variant 'L4x'"):
        p.variant("L4x")


# --------------------------------------------------------------------------- the file itself

YAML_TEXT = (PROJECT / "params.yaml").read_text()


def _load_text(tmp_path: Path, text: str) -> dict:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return load_params(path)


FILES = {
    "invalid_yaml_indentation": (YAML_TEXT.replace("\n  epochs:", "\n epochs:", 1), "is not valid YAML at line", "fix"),
    "invalid_yaml_unclosed_list": (
        YAML_TEXT.replace("layers: [2, 3]", "layers: [2, 3", 1),
        "is not valid YAML at line",
    ),
    "tab_indentation": (YAML_TEXT.replace("\n  epochs:", "\n\tepochs:", 1), "is not valid YAML at line"),
    "duplicate_key": (
        YAML_TEXT.replace("\n  epochs:", "\n  epochs: 3\n  epochs:", 1),
        "is not valid YAML at line",
        "key 'epochs' appears twice",
    ),
    "empty_file": ("", "params.yaml is empty"),
    "list_at_top": ("- 1\n- 2\n", "params.yaml must be a mapping of keys", "list"),
    "typo_in_file": (
        YAML_TEXT.replace("\n  lambda:", "\n  lamda:", 1),
        "unknown key ssl.lamda",
        "did you mean ssl.lambda?",
    ),
}


@pytest.mark.parametrize("case", list(FILES))
def test_bad_params_file_is_one_line_error(tmp_path, case):
    text, *needles = FILES[case]
    assert text != YAML_TEXT  # the edit applied (guards against params.yaml drifting)
    with pytest.raises(ConfigError) as err:
        _load_text(tmp_path, text)
    msg = one_line(err)
    for needle in needles:
        assert needle in msg, (needle, msg)
    if "line" in needles[0]:
        assert str(tmp_path / "params.yaml") in msg


def test_missing_params_file_says_where_to_run(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml not found; run from the project root") as err:
        load_params(tmp_path / "nope.yaml")
    one_line(err)


def test_exponent_floats_read_as_numbers_like_dvc_does(tmp_path):
    """`lr: 1e-3` is a float in YAML 1.2 (what DVC reads); PyYAML's YAML 1.1 rules would make it a string."""
    text = YAML_TEXT.replace("lr: 0.001", "lr: 1e-3", 1).replace("lambda: 0.1", "lambda: 1.0E-1", 1)
    assert text.count("1e-3") == 1 and "1.0E-1" in text
    params = _load_text(tmp_path, text)
    assert params.train.lr == 0.001 and params.ssl.lambda_ == 0.1


# --------------------------------------------------------------------------- whole stage commands

CLI = {
    "features_typo": (
        ["pipeline.features", "tile"],
        {"ssl.lamda": 0.1},
        "unknown key ssl.lamda",
        "did you mean ssl.lambda?",
    ),
    "train_epochs_0": (
        ["pipeline.train", "tile", "full", "0"],
        {"train.epochs": 0},
        "train.epochs must be >= 1, got 0",
    ),
    "train_ssl_grid": (["pipeline.train", "tile", "full", "0"], {"ssl.grid": 3}, "ssl.grid=3 does not divide"),
    "prepare_bad_yaml": (["pipeline.prepare", "tile"], "broken: [yaml\n", "params.yaml is not valid YAML"),
}


@pytest.mark.e2e
@pytest.mark.parametrize("case", list(CLI))
def test_stage_with_bad_params_exits_2_fast_with_one_line_and_no_output(tmp_path, case):
    args, bad, *needles = CLI[case]
    ws = make_workspace(tmp_path / "ws", TINY, git=False)
    path = ws / "params.yaml"
    if isinstance(bad, str):
        path.write_text(path.read_text() + bad)
    else:
        raw = yaml.safe_load(path.read_text())
        for key, value in bad.items():
            section, name = key.split(".")
            raw[section][name] = value
            if key == "ssl.lamda":
                del raw["ssl"]["lambda"]
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
    proc, cpu = run_cpu_timed(
        [sys.executable, "-m", *args], cwd=ws, env=env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    # nothing written, not even a folder (reports/ holds only the committed benchmark table the workspace copies)
    assert not (ws / "data").exists() and sorted(p.name for p in (ws / "reports").iterdir()) == ["benchmark.md"]
    assert cpu < 20, f"{cpu:.1f} CPU s: params must be checked before any heavy work"  # ~5 s: Python + torch import


# --------------------------------------------------------------------------- batch larger than the train set WORKS


@pytest.fixture
def one_torch_thread():
    """As the DVC stages run (OMP_NUM_THREADS=1); also avoids OpenMP oversubscription on a busy 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(threads)


@pytest.mark.e2e
def test_batch_size_larger_than_train_set_trains(tmp_path, monkeypatch, one_torch_thread):
    """train.batch_size 1000 with 6 training images: one batch per epoch, a finite loss, a saved model."""
    from frad.train import load_model
    from pipeline import features, prepare, train

    ws = make_workspace(tmp_path / "ws", {**TINY, "train.batch_size": 1000, "train.epochs": 2}, git=False)
    monkeypatch.chdir(ws)
    params = load_params()
    assert params.train.batch_size > params.data.synthetic.n_train
    prepare.run(params, "tile")
    features.run(params, "tile")
    train.run(params, "tile", "gfe", 0)
    _, payload = load_model(ws / "data" / "models" / "tile" / "gfe" / "seed0.pt")
    assert payload["train_config"]["batch_size"] == 1000
    assert [h["epoch"] for h in payload["history"]] == [1, 2]
    assert all(math.isfinite(h["loss"]) for h in payload["history"])


def test_each_comparison_method_s_params_are_its_config_fields():
    """The registry is the schema: compare.<name> has exactly the method config's fields (seed, layers and device
    are set by the harness), and the loaded params build that config."""
    import dataclasses

    from frad.methods import METHODS, RUNTIME_FIELDS

    raw = changed()
    params = validate_params(raw)
    for name, method in METHODS.items():
        fields = {f.name for f in dataclasses.fields(method.config)} - set(RUNTIME_FIELDS)
        assert set(raw["compare"][name]) == fields == set(method.keys)
        config = params.compare.config(name, seed=3)
        assert isinstance(config, method.config) and config.seed == 3
        assert {k: getattr(config, k) for k in fields} == {
            k: tuple(v) if isinstance(v, list) else v for k, v in raw["compare"][name].items()
        }
