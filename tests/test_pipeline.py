"""End-to-end DVC pipeline on tiny synthetic data: what reruns is read from DVC's own output."""

from __future__ import annotations

import json
import shutil

import pytest
from pipeline_utils import TINY, dvc, repro, set_params, stages, status

from pipeline.workspace import make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CATS = ["tile"]
REPORTS = ["report", "choices_report"]  # both read data/scores (choices_report: the study is off here, no items)
SHUFFLE_TRAIN = {"train": ["full"], "train_shuffle": ["shuffle"], "train_layers": ["L3"]}
SHUFFLE_SCORE = {"score": ["full", "shuffle"], "score_layers": ["L3"]}
ALL_TRAIN = {
    "train": ["full"],
    "train_modules": ["baseline", "gfe"],
    "train_shuffle": ["shuffle"],
    "train_layers": ["L3"],
}
ALL_SCORE = {
    "score": ["full", "baseline", "gfe", "shuffle"],
    "score_layers": ["L3"],
    "compare": ["padim", "patchcore", "rd"],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A workspace after one `dvc repro` from a clean state, and the stages that ran."""
    ws = make_workspace(tmp_path_factory.mktemp("pipe") / "ws", TINY)
    return ws, repro(ws)


@pytest.fixture
def ws(built, tmp_path):
    """A private copy of the built workspace (DVC state and outputs included)."""
    dest = tmp_path / "ws"
    shutil.copytree(built[0], dest, symlinks=True)
    return dest


def test_clean_repro_runs_every_stage_and_writes_every_table(built):
    ws, ran = built
    expected = stages(["download", "report", "choices_report"], CATS, {}) | {
        f"{s}@{c}" for s in ("prepare", "features") for c in CATS
    }
    expected |= stages([], CATS, {**ALL_TRAIN, **ALL_SCORE})
    assert ran == expected
    tables = (ws / "reports" / "tables.md").read_text()
    for title in ("Table 1", "Table 2", "Table 3", "Table 4"):
        assert title in tables
    metrics = json.loads((ws / "reports" / "metrics.json").read_text())
    assert set(metrics) >= {"image_auroc", "pixel_auroc", "pro"}
    assert all(0 <= metrics[k] <= 1 for k in ("image_auroc", "pixel_auroc", "pro"))
    assert set(metrics["methods"]) == {"padim", "patchcore", "rd"}
    for method in ("full", "padim", "patchcore", "rd"):
        assert json.loads((ws / "data" / "scores" / "tile" / method / "seed0.json").read_text())["seed"] == 0
    for curve in ("image_roc", "pixel_roc", "pro"):
        rows = json.loads((ws / "reports" / "plots" / curve / "tile.json").read_text())
        assert {r["method"] for r in rows} == {"full", "baseline", "gfe", "shuffle", "L3", "padim", "patchcore", "rd"}


def test_second_repro_runs_nothing(ws):
    assert status(ws) == set()
    assert repro(ws) == set()


def test_lambda_reruns_only_shuffle_variants(ws):
    set_params(ws, **{"ssl.lambda": 0.2})
    # directly affected: the three shuffle-loss trainings (and the study's report, which states λ)
    assert status(ws) == stages(["choices_report"], CATS, SHUFFLE_TRAIN)
    assert repro(ws) == stages(REPORTS, CATS, {**SHUFFLE_TRAIN, **SHUFFLE_SCORE})


def test_sigma_reruns_only_score_and_report(ws):
    set_params(ws, **{"score.sigma": 2})
    assert repro(ws) == stages(REPORTS, CATS, ALL_SCORE)


def test_a_new_benchmark_table_reruns_only_the_report(ws):
    bench = ws / "reports" / "benchmark.md"
    bench.write_text(bench.read_text().replace("|", "| ", 1))
    assert status(ws) == {"report"}
    assert repro(ws) == {"report"}


def test_adding_a_category_adds_only_its_stages(ws):
    set_params(ws, **{"data.categories": CATS + ["bottle"]})
    ran = repro(ws)
    assert ran == {"prepare@bottle", "features@bottle", *REPORTS} | stages([], ["bottle"], {**ALL_TRAIN, **ALL_SCORE})
    assert "bottle" in (ws / "reports" / "tables.md").read_text()


def test_exp_run_and_exp_show(ws):
    out = dvc(ws, "exp", "run", "-S", "ssl.lambda=0.2")
    assert "Running stage 'train_shuffle@tile-shuffle-0'" in out.stdout + out.stderr
    assert "Running stage 'train_modules@tile-baseline-0'" not in out.stdout + out.stderr
    show = dvc(ws, "exp", "show", "--md").stdout
    for metric in ("image_auroc", "pixel_auroc", "pro"):
        assert metric in show
    assert "0.2" in show
    shown = dvc(ws, "metrics", "show", "--json").stdout
    assert "image_auroc" in shown


def test_one_methods_params_rerun_only_that_method(ws):
    set_params(ws, **{"compare.patchcore.coreset": 0.25})
    assert status(ws) == stages([], CATS, {"compare": ["patchcore"]})
    assert repro(ws) == stages(REPORTS, CATS, {"compare": ["patchcore"]})


def test_adding_a_seed_runs_only_that_seed(ws):
    set_params(ws, **{"train.seeds": [0, 1]})
    seed1 = stages([], CATS, {**ALL_TRAIN, **ALL_SCORE}, seeds=(1,))
    assert status(ws) == seed1 | set(REPORTS)  # nothing of seed 0, no features
    assert repro(ws) == seed1 | set(REPORTS)
    tables = (ws / "reports" / "tables.md").read_text()
    assert "±" in tables and "Seeds: 0, 1" in tables
    metrics = json.loads((ws / "reports" / "metrics.json").read_text())
    assert metrics["seeds"] == 2 and set(metrics["std"]) == {"image_auroc", "pixel_auroc", "pro"}


def test_code_changes_rerun_exactly_their_stages(ws):
    """Complete deps: the fusion code (eq. 1-3) reaches every model trained or scored on features; the report's
    code reaches only the report."""
    with (ws / "frad" / "features.py").open("a") as fh:
        fh.write("\n# changed\n")
    changed = status(ws)
    consumers = stages([], CATS, {**ALL_TRAIN, **ALL_SCORE})
    assert consumers <= changed
    assert not changed & {"download", "prepare@tile", "report"}
    repro(ws)
    with (ws / "pipeline" / "report" / "tables.py").open("a") as fh:
        fh.write("\n# changed\n")
    assert status(ws) == {"report", "choices_report"}  # the study's report reuses the report's table code


def test_frad_code_leaves_the_comparison_methods_up_to_date_and_a_method_file_only_its_items(ws):
    """The comparison methods run none of FRAD's network or training code: editing frad/train.py or frad/model.py
    dirties FRAD's items only; editing one method's file dirties that method's items and the reports."""
    for name in ("train.py", "model.py"):
        with (ws / "frad" / name).open("a") as fh:
            fh.write("\n# changed\n")
    changed = status(ws)
    assert stages([], CATS, ALL_TRAIN) <= changed
    assert not {s for s in changed if s.startswith("compare@")}
    repro(ws)
    with (ws / "frad" / "padim" / "method.py").open("a") as fh:
        fh.write("\n# changed\n")
    assert status(ws) == {"compare@tile-padim-0"}  # the reports rerun once its new scores differ


def test_category_without_masks_runs_end_to_end_with_pixel_metrics_na(tmp_path):
    """OK / NG folders only (no ground_truth/): `dvc repro` runs every stage; image AUROC is measured, pixel AUROC
    and AU-PRO are null with the reason in the score files and metrics.json, and n/a with it in Tables 1-2."""
    from frad.datasets.synthetic import generate_category
    from frad.evaluation.metrics import NO_MASKS

    root = tmp_path / "okng"
    generate_category(root, "tile", seed=0, n_train=6, n_test_good=2, n_test_defect_per_type=2, size=64)
    shutil.rmtree(root / "tile" / "ground_truth")
    ws = make_workspace(
        tmp_path / "ws", {**TINY, "data.source": "folder", "data.root": str(root), "ablation.layers": []}
    )
    ran = repro(ws)
    assert {"report", "features@tile", "score@tile-full-0", "compare@tile-rd-0"} <= ran
    assert status(ws) == set()
    for method in ("full", "padim", "patchcore", "rd"):
        score = json.loads((ws / "data" / "scores" / "tile" / method / "seed0.json").read_text())
        assert 0.0 <= score["image_auroc"] <= 1.0 and score["n_defect"] > 0, method
        assert score["pixel_auroc"] is None and score["pro"] is None, method
        assert score["undefined"] == {"pixel_auroc": NO_MASKS, "pro": NO_MASKS}, method
    metrics = json.loads((ws / "reports" / "metrics.json").read_text())
    assert 0.0 <= metrics["image_auroc"] <= 1.0 and metrics["pixel_auroc"] is None and metrics["pro"] is None
    tables = (ws / "reports" / "tables.md").read_text()
    table12 = tables.split("Table 3")[0]
    assert "n/a" in table12 and "no ground-truth masks" in table12
    assert (ws / "reports" / "figures" / "tile.png").is_file()
