"""End-to-end DVC pipeline on tiny synthetic data: what reruns is read from DVC's own output. Every test works on its
own copy of one workspace built once per test process (``tiny_built`` in conftest.py)."""

from __future__ import annotations

import json
import shutil

import pytest
from pipeline_utils import RUNNING, TINY, copy_workspace, dvc, repro, set_params, stages, status

from frad.evaluation.scoreset import METRICS as ALL_METRICS
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


@pytest.fixture
def built(tiny_built):
    return tiny_built


@pytest.fixture
def ws(tiny_built, tmp_path):
    """A private copy of the built workspace (DVC state and outputs included)."""
    return copy_workspace(tiny_built[0], tmp_path / "ws")


def test_clean_repro_runs_every_stage_and_writes_every_table(built):
    ws, ran = built
    expected = stages(["download", "report", "choices_report"], CATS, {}) | {
        f"{s}@{c}" for s in ("prepare", "features", "gallery") for c in CATS
    }
    expected |= stages([], CATS, {**ALL_TRAIN, **ALL_SCORE})
    assert ran == expected
    tables = (ws / "reports" / "tables.md").read_text()
    for title in ("Table 1", "Table 2", "Table 3", "Table 4", "All metrics"):
        assert title in tables
    # synthetic data: said so in the title, no paper column, no Δ
    assert tables.splitlines()[2] == "# FRAD on synthetic data (no paper column)" and "Δ" not in tables
    metrics = json.loads((ws / "reports" / "metrics.json").read_text())
    assert set(metrics) >= set(ALL_METRICS) and set(metrics["ci_low"]) == set(ALL_METRICS)
    assert all(0 <= metrics[k] <= 1 for k in ALL_METRICS)
    assert set(metrics["methods"]) == {"padim", "patchcore", "rd"}
    assert len(list((ws / "reports/gallery/tile/images").glob("*.jpg"))) == 6 * 5  # 6 test images, 4 methods
    timing = json.loads((ws / ".dvc/tmp/timings/train@tile-full-0.json").read_text())  # the clock, outside outputs
    assert timing["stage"] == "train@tile-full-0" and timing["work_s"] > 0
    for method in ("full", "padim", "patchcore", "rd"):
        assert json.loads((ws / "data" / "scores" / "tile" / method / "seed0.json").read_text())["seed"] == 0
    for curve in ("image_roc", "pixel_roc", "pro", "image_pr", "pixel_pr"):
        rows = json.loads((ws / "reports" / "plots" / curve / "tile.json").read_text())
        assert {r["method"] for r in rows} == {"full", "baseline", "gfe", "shuffle", "L3", "padim", "patchcore", "rd"}


def test_the_gallery_thumbnails_are_dvc_image_plots(ws, tmp_path):
    shown = dvc(ws, "plots", "show", "reports/gallery/tile/images", "-o", str(tmp_path / "plots"))
    assert shown.returncode == 0
    html = (tmp_path / "plots" / "index.html").read_text()
    assert html.count("<img") == 6 * 5 and "0000_image.jpg" in html


def test_second_repro_runs_nothing(ws):
    assert status(ws) == set()
    assert repro(ws) == set()


def test_lambda_reruns_only_shuffle_variants_through_dvc_exp_run(ws):
    set_params(ws, **{"ssl.lambda": 0.2})
    # directly affected: the three shuffle-loss trainings (and the study's report, which states λ)
    assert status(ws) == stages(["choices_report"], CATS, SHUFFLE_TRAIN)
    out = dvc(ws, "exp", "run")
    ran = set(RUNNING.findall(out.stdout + out.stderr))
    assert ran == stages([*REPORTS, *(f"gallery@{c}" for c in CATS)], CATS, {**SHUFFLE_TRAIN, **SHUFFLE_SCORE})
    show = dvc(ws, "exp", "show", "--md").stdout
    for metric in ALL_METRICS:
        assert metric in show
    assert "0.2" in show
    assert "pixel_f1max" in dvc(ws, "metrics", "show", "--json").stdout


def test_sigma_reruns_only_score_and_report(ws):
    """Read from `dvc status`: σ reaches every scoring stage and the study's report (which states it), nothing
    trained (the report and the gallery follow the scores they read, as the λ test's `dvc exp run` shows)."""
    set_params(ws, **{"score.sigma": 2})
    assert status(ws) == stages(["choices_report"], CATS, ALL_SCORE)


def test_a_new_benchmark_table_reruns_only_the_report(ws):
    bench = ws / "reports" / "benchmark.md"
    bench.write_text(bench.read_text().replace("|", "| ", 1))
    assert status(ws) == {"report"}
    assert repro(ws) == {"report"}


def test_adding_a_category_adds_only_its_stages(ws):
    """Read from `dvc status` (what `dvc repro` would run): the new category's stages and the reports, nothing of
    the category already run (test_adding_a_seed_runs_only_that_seed runs such a set and checks the report)."""
    set_params(ws, **{"data.categories": CATS + ["bottle"]})
    expected = {"prepare@bottle", "features@bottle", "gallery@bottle", "report"}  # choices_report: once scores exist
    assert status(ws) == expected | stages([], ["bottle"], {**ALL_TRAIN, **ALL_SCORE})


def test_one_methods_params_rerun_only_that_method(ws):
    """Read from `dvc status`: that method's items only (the reports and the gallery follow its new scores, as the
    λ test's `dvc exp run` shows)."""
    set_params(ws, **{"compare.patchcore.coreset": 0.25})
    assert status(ws) == stages([], CATS, {"compare": ["patchcore"]})


def test_adding_a_seed_runs_only_that_seed(ws):
    """Read from `dvc status`: every item of the new seed and the stages that read all seeds, nothing of seed 0 and
    no features (what the report makes of several seeds: tests/test_report.py's seed tests)."""
    set_params(ws, **{"train.seeds": [0, 1]})
    seed1 = stages([], CATS, {**ALL_TRAIN, **ALL_SCORE}, seeds=(1,))
    assert status(ws) == seed1 | set(REPORTS) | {"gallery@tile"}


def _edited(ws, rel: str):
    """Append a comment to a project file; restore it on exit (DVC hashes content: restored = unchanged)."""
    path = ws / rel
    original = path.read_bytes()
    path.write_bytes(original + b"\n# changed\n")
    return lambda: path.write_bytes(original)


def test_code_changes_rerun_exactly_their_stages(ws):
    """Complete deps: the fusion code (eq. 1-3) reaches every model trained or scored on features; the report's
    code reaches only the report; the gallery's only the gallery. Read from `dvc status`, one edit at a time."""
    restore = _edited(ws, "frad/features.py")
    changed = status(ws)
    consumers = stages([], CATS, {**ALL_TRAIN, **ALL_SCORE})
    assert consumers <= changed
    assert not changed & {"download", "prepare@tile", "report", "gallery@tile"}
    restore()
    assert status(ws) == set()
    restore = _edited(ws, "pipeline/report/tables.py")
    assert status(ws) == {"report", "choices_report"}  # the study's report reuses the report's table code
    restore()
    _edited(ws, "pipeline/gallery_page.py")
    assert status(ws) == {"gallery@tile"}


def test_frad_code_leaves_the_comparison_methods_up_to_date_and_a_method_file_only_its_items(ws):
    """The comparison methods run none of FRAD's network or training code: editing frad/train.py or frad/model.py
    dirties FRAD's items only; editing one method's file dirties that method's items only."""
    restores = [_edited(ws, f"frad/{name}") for name in ("train.py", "model.py")]
    changed = status(ws)
    assert stages([], CATS, ALL_TRAIN) <= changed
    assert not {s for s in changed if s.startswith("compare@")}
    for restore in restores:
        restore()
    _edited(ws, "frad/padim/method.py")
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
        tmp_path / "ws",
        {
            **TINY,
            "data.dataset": "custom",
            "data.source": "folder",
            "data.root": str(root),
            "ablation.layers": [],
            "compare.methods": ["padim"],
        },
    )
    ran = repro(ws)
    assert {"report", "features@tile", "score@tile-full-0", "compare@tile-padim-0", "gallery@tile"} <= ran
    assert status(ws) == set()
    pixel = ("pixel_auroc", "pro", "pixel_ap", "pixel_f1max")
    for method in ("full", "padim"):
        score = json.loads((ws / "data" / "scores" / "tile" / method / "seed0.json").read_text())
        assert 0.0 <= score["image_auroc"] <= 1.0 and score["n_defect"] > 0, method
        assert 0.0 <= score["image_ap"] <= 1.0 and 0.0 <= score["image_f1max"] <= 1.0, method
        assert all(score[m] is None for m in pixel) and score["pixel_f1max_threshold"] is None, method
        assert score["undefined"] == dict.fromkeys(pixel, NO_MASKS), method
    metrics = json.loads((ws / "reports" / "metrics.json").read_text())
    assert 0.0 <= metrics["image_auroc"] <= 1.0 and metrics["pixel_auroc"] is None and metrics["pro"] is None
    tables = (ws / "reports" / "tables.md").read_text()
    table12 = tables.split("Table 3")[0]
    assert "n/a" in table12 and "no ground-truth masks" in table12
    assert "FRAD on your own data" in tables and "Δ" not in tables
    assert 'data-filter="misses"' in (ws / "reports" / "gallery" / "tile" / "index.html").read_text()
