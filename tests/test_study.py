"""The open-choices study (params `choices`, stage family `choice`, stage `choices_report`): one open choice per
entry, validated like params.yaml itself; per-epoch scoring leaves training unchanged; the reference entry
reproduces the main model bit for bit; the report marks differences against seed noise; DVC reruns exactly the
items a change touches."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from pipeline_utils import TINY, changed, copy_workspace, dvc, env, repro, set_params, status

from frad.config import ModelConfig, TrainConfig
from frad.errors import ConfigError, DataError
from frad.score import anomaly_maps
from frad.train import train_model
from pipeline import choices_report
from pipeline.params import load_params, validate_params
from pipeline.params_schema import CHOICE_KEYS
from pipeline.report import Score
from pipeline.workspace import PROJECT, make_workspace


def rejected(raw: dict, *needles: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate_params(raw)
    msg = str(err.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


# --------------------------------------------------------------------------- params


def test_project_study_is_off_and_changes_one_open_choice_per_entry():
    p = load_params(PROJECT / "params.yaml")
    assert p.choices.enabled is False and set(p.choices.categories) <= set(p.data.categories)
    assert p.choices.changes["defaults"] is None  # the reference: params as they are
    assert all(c[0] in CHOICE_KEYS for c in p.choices.changes.values() if c is not None)


def test_with_choice_applies_exactly_one_key():
    p = validate_params(changed(choices__changes={"ref": {}, "deep": {"model": {"strides": [2, 2, 2]}}}))
    assert p.with_choice("ref") is p
    q = p.with_choice("deep")
    assert q.model.strides == (2, 2, 2) and isinstance(q.model.strides, tuple)
    assert q.model.widths == p.model.widths and q.ssl == p.ssl and q.score == p.score
    with pytest.raises(ConfigError, match="unknown choices variant 'nope'"):
        p.with_choice("nope")


@pytest.mark.parametrize(
    "variants, needles",
    [
        ({}, ("choices.changes must be a mapping of names",)),
        ({"x": {"ssl": {"lambda": 0.2}}}, ("choices.changes.x: ssl.lambda is not an open choice", "model.strides")),
        (
            {"x": {"model": {"strides": [2, 2, 2], "skips": []}}},
            ("choices.changes.x changes model.strides and model.skips; one open choice per entry",),
        ),
        (
            {"x": {"model": {"strides": [3, 2, 2]}}},
            ("choices.changes.x (model.strides=[3, 2, 2]): model.strides must be three values, each 1 or 2",),
        ),
        ({"x": {"score": {"top_k": 0}}}, ("choices.changes.x.score.top_k must be >= 1",)),
        ({"x": "strides"}, ("choices.changes.x must be a mapping",)),
        ({"../x": {}}, ("'../x' is not a valid entry name",)),
        ({"top.1000": {}}, ("'top.1000' is not a valid entry name", "no dot")),
    ],
    ids=["empty", "not_open", "two_keys", "bad_value", "bad_top_k", "scalar", "bad_name", "dotted_name"],
)
def test_bad_study_entries_are_one_line_errors(variants, needles):
    rejected(changed(choices__changes=variants), *needles)


def test_study_entry_must_be_a_valid_main_model_and_category_prepared():
    raw = changed(model__grid=8, model__widths=[64, 64, 64], ablation__layers=[])
    deep = changed(raw, choices__changes={"deep": {"model": {"strides": [2, 2, 2]}}})
    validate_params(deep)  # the study is off: the entry trains nothing
    on_bottle = {"choices__enabled": True, "choices__categories": ["bottle"]}
    rejected(changed(deep, **on_bottle), "choices.changes.deep (model.strides=[2, 2, 2])", "encoder stride 8")
    rejected(changed(choices__enabled=True, choices__categories=[]), "choices.categories is empty")
    rejected(changed(choices__categories=["tire"]), "choices.categories lists tire, which is not in data.categories")
    rejected(changed(choices__enabled="yes"), "choices.enabled must be true or false")
    rejected(
        changed(choices__changes={"t": {"score": {"top_k": 70000}}}, **on_bottle),
        "choices.changes.t (score.top_k=70000): score.top_k=70000 exceeds the 256x256 pixels",
    )
    # the study trains the main layer set only: an ablation layer set that a variant would not fit is no error
    on = {**on_bottle, "choices__changes": {"deep": {"model": {"strides": [2, 2, 2]}}}}
    validate_params(changed(ablation__layers=["L3"], **on))


# --------------------------------------------------------------------------- per-epoch scoring


def test_scoring_after_each_epoch_leaves_training_bitwise_unchanged():
    g = torch.Generator().manual_seed(0)
    train = {2: torch.randn(6, 24, 16, 16, generator=g), 3: torch.randn(6, 40, 8, 8, generator=g)}
    test = {2: torch.randn(3, 24, 16, 16, generator=g), 3: torch.randn(3, 40, 8, 8, generator=g)}
    mc = ModelConfig(in_channels=16, widths=(16, 16, 16), gfe_grid=2)
    tc = TrainConfig(epochs=3, batch_size=4, device="cpu", ssl=True, ssl_grid=2, ssl_lambda=0.1)
    seen = []

    def score(epoch, record, model):
        seen.append((epoch, record["loss"]))
        anomaly_maps(model, test, 16, 32)  # puts the model in eval mode; training must resume in train mode

    a = train_model(train, 16, mc, tc, progress=False)
    b = train_model(train, 16, mc, tc, progress=False, on_epoch=score)
    assert a.history == b.history and seen == [(r["epoch"], r["loss"]) for r in b.history]
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------- the stage, study off


@pytest.mark.e2e
def test_off_study_item_writes_a_stub_and_trains_nothing(tmp_path):
    make_workspace(tmp_path / "ws", {**TINY, "choices.categories": ["tile"]}, git=False)
    code = (
        "import sys; from pipeline.choice import run; from pipeline.params import load_params;"
        "print(run(load_params(), 'tile', 'defaults', 0)); print(sorted(m for m in sys.modules if m.startswith('frad.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path / "ws", env=env(), capture_output=True, text=True, check=True
    )
    loaded = set(eval(out.stdout.split("\n")[1]))  # the params model and its schema only: no network, no training
    assert not loaded & {"frad.model", "frad.train", "frad.score", "frad.cache", "frad.recombine"}, loaded
    assert not (tmp_path / "ws" / "data" / "models").exists()
    stub = json.loads((tmp_path / "ws/data/scores/tile/choice-defaults/seed0.json").read_text())
    assert stub == {"category": "tile", "method": "defaults", "seed": 0, "enabled": False}


# --------------------------------------------------------------------------- the report


def _score(c: str, v: str, s: int, image: float, pixel: float, pro: float) -> Score:
    return Score(c, v, s, {"image_auroc": image, "pixel_auroc": pixel, "pro": pro}, {}, None)


def test_report_marks_differences_against_seed_noise():
    p = validate_params(
        changed(
            train__seeds=[0, 1],
            compare__methods=["patchcore"],
            choices__categories=["bottle"],
            choices__changes={"ref": {}, "up": {"model": {"skips": []}}, "top": {"score": {"top_k": 9}}},
        )
    )
    study = {
        "bottle": {
            "ref": [_score("bottle", "ref", 0, 0.60, 0.90, 0.80), _score("bottle", "ref", 1, 0.62, 0.91, 0.80)],
            # image: +0.20, far beyond √(σ²+σ²); pixel: −0.10 beyond; pro: +0.01 within the noise of the ref (0)...
            "up": [_score("bottle", "up", 0, 0.80, 0.80, 0.80), _score("bottle", "up", 1, 0.82, 0.81, 0.82)],
            "top": [_score("bottle", "top", 0, 0.60, 0.90, 0.80), _score("bottle", "top", 1, 0.62, 0.91, 0.80)],
        }
    }
    base = {"bottle": {"patchcore": [_score("bottle", "patchcore", s, 0.99, 0.98, 0.95) for s in (0, 1)]}}
    text = choices_report.render(study, base, p)
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[3:6]]
        for line in text.splitlines()
        if "|" in line
    }
    assert rows["ref (reference)"] == ["61.0±1.4", "90.5±0.7", "80.0±0.0"]
    assert rows["up"] == ["81.0±1.4 ▲", "80.5±0.7 ▼", "81.0±1.4 ≈"]
    assert rows["top"] == ["61.0±1.4 ≈", "90.5±0.7 ≈", "80.0±0.0 ≈"]
    assert rows["PatchCore (same harness)"] == ["99.0±0.0", "98.0±0.0", "95.0±0.0"]
    assert "`model.skips` = [] (up): beyond seed noise: bottle Image AUROC +20.0, bottle Pixel AUROC -10.0." in text
    assert "`score.top_k` = 9 (top): within seed noise everywhere." in text
    assert "Study time" not in text and " s)" not in text  # no clock value in an output (timing records hold it)
    assert "(same harness)" not in choices_report.render(study, {"bottle": {}}, p)
    assert choices_report._label(("model.strides", [1, 2, 2]), p).endswith("(= params: repeats the reference)")
    assert choices_report._label(("model.strides", [2, 2, 2]), p) == "model.strides = [2, 2, 2]"
    one_seed = validate_params(changed(choices__changes={"ref": {}, "up": {"model": {"skips": []}}}))
    assert "no verdict" in choices_report.verdicts(
        {"bottle": {k: v[:1] for k, v in study["bottle"].items()}}, one_seed, "up"
    )


def test_training_curves_average_the_seeds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = validate_params(changed(train__seeds=[0, 1], choices__changes={"ref": {}}))
    for s, (l1, l2) in enumerate([(1.0, 0.5), (0.8, 0.3)]):
        path = tmp_path / f"data/scores/bottle/choice-ref/seed{s}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        epochs = [{"epoch": 1, "loss": l1, "image_auroc": 0.5}, {"epoch": 2, "loss": l2, "image_auroc": None}]
        path.write_text(json.dumps({"epochs": epochs}))
    assert choices_report.curve_rows(p, "bottle", "loss") == [
        {"method": "ref", "epoch": 1, "loss": pytest.approx(0.9)},
        {"method": "ref", "epoch": 2, "loss": pytest.approx(0.4)},
    ]
    assert choices_report.curve_rows(p, "bottle", "image_auroc") == [{"method": "ref", "epoch": 1, "image_auroc": 0.5}]
    (tmp_path / "data/scores/bottle/choice-ref/seed1.json").write_text(json.dumps({"enabled": False}))
    with pytest.raises(DataError, match="choice-ref/seed1.json has no per-epoch record"):
        choices_report.curve_rows(p, "bottle", "loss")


# --------------------------------------------------------------------------- end to end with DVC

CHANGES = {"paper": {}, "gfe-every-module": {"model": {"gfe_modules": [1, 2, 3]}}}


@pytest.mark.slow
def test_study_with_dvc_reference_equals_main_model_and_reruns_only_changed_items(tiny_built, tmp_path):
    """Switched on in a finished run: only the study's items and its report run (the main models are reused); the
    reference entry reproduces the main model bit for bit; a changed entry reruns only its items."""
    ws = copy_workspace(tiny_built[0], tmp_path / "ws")
    set_params(ws, **{"choices.enabled": True, "choices.categories": ["tile"], "choices.changes": CHANGES})
    ran = repro(ws)
    items = {f"choice@tile-{v}-0" for v in CHANGES}
    assert ran == items | {"choices_report", "report", "gallery@tile"}  # report, gallery: data/scores changed
    full = json.loads((ws / "data/scores/tile/full/seed0.json").read_text())
    ref = json.loads((ws / "data/scores/tile/choice-paper/seed0.json").read_text())
    assert [ref[m] for m in ("image_auroc", "pixel_auroc", "pro")] == [
        full[m] for m in ("image_auroc", "pixel_auroc", "pro")
    ]
    history = torch.load(ws / "data/models/tile/full/seed0.pt", weights_only=True)["history"]
    assert [e["loss"] for e in ref["epochs"]] == [h["loss"] for h in history]
    text = (ws / "reports/choices.md").read_text()
    assert "## tile" in text and "gfe-every-module" in text and "PatchCore (same harness)" in text
    rows = json.loads((ws / "reports/training/image_auroc/tile.json").read_text())
    assert {r["method"] for r in rows} == set(CHANGES) and {r["epoch"] for r in rows} == {1}
    html = dvc(ws, "plots", "show", "reports/training/loss", "-o", str(tmp_path / "plots"))
    assert html.returncode == 0 and (tmp_path / "plots/index.html").is_file()

    assert status(ws) == set()
    set_params(ws, **{"choices.changes": {"paper": {}, "gfe-every-module": {"model": {"gfe_modules": [2, 3]}}}})
    assert status(ws) == {"choice@tile-gfe-every-module-0", "choices_report"}
    set_params(ws, **{"choices.changes": CHANGES, "choices.enabled": False})
    assert status(ws) == items | {"choices_report"}
    assert repro(ws) == items | {"choices_report", "report", "gallery@tile"}  # they read data/scores, the items' home
    assert "The study is off" in (ws / "reports/choices.md").read_text()
    assert json.loads((ws / "data/scores/tile/choice-paper/seed0.json").read_text())["enabled"] is False
