"""Tests for frad.evaluation.curves: the stored curves lie on the exact curves and integrate to the exact metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_curve, roc_curve
from test_metrics import brute_force_au_pro, random_case

from frad.evaluation import metrics
from frad.evaluation.curves import CURVES, compute_curves, plot_rows


def _area(points: list[dict], y_key: str) -> float:
    x = np.array([p["fpr"] for p in points])
    y = np.array([p[y_key] for p in points])
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def _case(seed: int, n: int = 6, h: int = 12, w: int = 10, levels: int | None = 7):
    rng = np.random.default_rng(seed)
    maps, masks = random_case(rng, n, h, w, levels=levels)
    scores = maps.reshape(n, -1).max(axis=1)
    labels = masks.reshape(n, -1).any(axis=1)
    labels[0], labels[-1] = True, False  # both classes of images present
    return maps, masks, scores, labels


def _check_shape(curves: dict, limit: float, max_points: int) -> None:
    for name, (x_key, y_key) in CURVES.items():
        pts = curves[name]
        if x_key == "recall":  # precision-recall: recall rises to 1, precision is not monotone
            r = np.array([p["recall"] for p in pts])
            assert 1 <= len(pts) <= max_points and np.all(np.diff(r) >= 0) and r[-1] == 1.0, name
            continue
        assert 2 <= len(pts) <= max_points
        x = np.array([p["fpr"] for p in pts])
        y = np.array([p[y_key] for p in pts])
        assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) >= 0), name  # monotone
        assert (x[0], y[0]) == (0.0, 0.0), name
        assert x[-1] == (limit if name == "pro" else 1.0), name
        if name != "pro":
            assert y[-1] == 1.0, name


def _on_sklearn_roc(points: list[dict], y_true: np.ndarray, scores: np.ndarray) -> None:
    fpr, tpr, _ = roc_curve(y_true, scores, drop_intermediate=False)
    ref = np.stack([fpr, tpr], axis=1)
    for p in points:
        assert np.min(np.abs(ref - [p["fpr"], p["tpr"]]).max(axis=1)) < 1e-9, p


def _on_sklearn_pr(points: list[dict], y_true: np.ndarray, scores: np.ndarray) -> None:
    precision, recall, _ = precision_recall_curve(y_true, scores)
    ref = np.stack([recall, precision], axis=1)
    for p in points:
        assert np.min(np.abs(ref - [p["recall"], p["precision"]]).max(axis=1)) < 1e-9, p
    last = points[-1]  # the lowest threshold: every positive, precision = their share
    assert (last["recall"], last["precision"]) == pytest.approx((1.0, np.mean(y_true)), abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("levels", [None, 4, 30], ids=["continuous", "ties4", "ties30"])
def test_small_curves_match_exact_metrics_and_sklearn(seed, levels):
    maps, masks, scores, labels = _case(seed, levels=levels)
    limit = [0.3, 0.05, 1.0, 0.77, 0.3][seed]
    curves = compute_curves(maps, masks, scores, labels, fpr_limit=limit)
    _check_shape(curves, limit, 1000)
    assert _area(curves["image_roc"], "tpr") == pytest.approx(metrics.image_auroc(scores, labels), abs=1e-9)
    assert _area(curves["pixel_roc"], "tpr") == pytest.approx(metrics.pixel_auroc(maps, masks), abs=1e-9)
    assert _area(curves["pro"], "pro") / limit == pytest.approx(brute_force_au_pro(maps, masks, limit), abs=1e-9)
    _on_sklearn_roc(curves["image_roc"], labels, scores)
    _on_sklearn_roc(curves["pixel_roc"], masks.ravel(), maps.ravel())
    _on_sklearn_pr(curves["image_pr"], labels, scores)
    _on_sklearn_pr(curves["pixel_pr"], masks.ravel(), maps.ravel())


@pytest.mark.parametrize("levels", [None, 200], ids=["continuous", "ties"])
def test_large_case_is_thinned_and_keeps_the_exact_areas(levels):
    maps, masks, scores, labels = _case(7, n=40, h=64, w=64, levels=levels)  # ~160k pixels
    rng = np.random.default_rng(1)
    scores = np.floor(rng.random(40) * 30) + 5 * labels if levels else rng.random(40) + labels  # image ties
    max_points = 200
    curves = compute_curves(maps, masks, scores, labels, fpr_limit=0.3, max_points=max_points)
    _check_shape(curves, 0.3, max_points)
    assert len(curves["pixel_roc"]) > 100 and len(curves["pro"]) > 100  # thinned, not collapsed
    assert _area(curves["image_roc"], "tpr") == pytest.approx(metrics.image_auroc(scores, labels), abs=1e-3)
    assert _area(curves["pixel_roc"], "tpr") == pytest.approx(metrics.pixel_auroc(maps, masks), abs=1e-3)
    assert _area(curves["pro"], "pro") / 0.3 == pytest.approx(metrics.au_pro(maps, masks, 0.3), abs=1e-3)
    _on_sklearn_roc(curves["pixel_roc"], masks.ravel(), maps.ravel())
    _on_sklearn_pr(curves["pixel_pr"], masks.ravel(), maps.ravel())


def test_parallel_sorted_parts_give_the_same_curves(monkeypatch):
    maps, masks, scores, labels = _case(3, n=8, h=20, w=20, levels=9)
    serial = compute_curves(maps, masks, scores, labels, fpr_limit=0.3, max_points=50)
    monkeypatch.setattr(metrics, "_n_workers", lambda: 3)
    monkeypatch.setattr(metrics, "_PARALLEL_MIN", 16)
    assert compute_curves(maps, masks, scores, labels, fpr_limit=0.3, max_points=50) == serial


def test_undefined_curves_are_empty():
    maps, masks, scores, labels = _case(0)
    no_defect = compute_curves(maps, np.zeros_like(masks), scores, np.zeros_like(labels), 0.3)
    assert no_defect == dict.fromkeys(CURVES, [])
    all_bad = compute_curves(maps, masks, scores, np.ones_like(labels), 0.3)
    assert all_bad["image_roc"] == all_bad["image_pr"] == [] and all_bad["pixel_roc"] and all_bad["pro"]
    all_defect = compute_curves(maps, np.ones_like(masks), scores, labels, 0.3)
    assert all_defect["pixel_roc"] == all_defect["pixel_pr"] == all_defect["pro"] == [] and all_defect["image_roc"]

    no_masks = compute_curves(maps, None, scores, labels, 0.3)  # a category without ground truth
    with_masks = compute_curves(maps, masks, scores, labels, 0.3)
    assert no_masks == {
        **dict.fromkeys(CURVES, []),
        "image_roc": with_masks["image_roc"],
        "image_pr": with_masks["image_pr"],
    }


def test_measure_without_masks_gives_image_auroc_and_names_why_pixel_metrics_are_undefined():
    from frad.evaluation import metrics

    maps, masks, scores, labels = _case(0)
    with_masks, without = metrics.measure(maps, scores, labels, masks), metrics.measure(maps, scores, labels, None)
    assert without["image_auroc"] == with_masks["image_auroc"] == metrics.image_auroc(scores, labels)
    assert without["pixel_auroc"] is None and without["pro"] is None
    pixel = ("pixel_auroc", "pro", "pixel_ap", "pixel_f1max")
    assert without["undefined"] == dict.fromkeys(pixel, metrics.NO_MASKS)
    assert "ground_truth" in metrics.NO_MASKS


def test_bad_input_is_named():
    maps, masks, scores, labels = _case(0)
    with pytest.raises(ValueError, match="fpr_limit"):
        compute_curves(maps, masks, scores, labels, fpr_limit=0.0)
    with pytest.raises(ValueError, match="image_scores"):
        compute_curves(maps, masks, scores[:-1], labels, fpr_limit=0.3)
    with pytest.raises(ValueError, match="max_points"):
        compute_curves(maps, masks, scores, labels, fpr_limit=0.3, max_points=1)


def test_plot_rows_one_row_per_point_and_method():
    a = {"image_roc": [{"fpr": 0.0, "tpr": 0.0}, {"fpr": 1.0, "tpr": 1.0}], "pro": [{"fpr": 0.0, "pro": 0.0}]}
    b = {"image_roc": [{"fpr": 0.0, "tpr": 0.0}, {"fpr": 0.5, "tpr": 1.0}, {"fpr": 1.0, "tpr": 1.0}], "pro": []}
    rows = plot_rows({"full": a, "padim": b}, "image_roc")
    assert [r["method"] for r in rows] == ["full"] * 2 + ["padim"] * 3
    assert rows[3] == {"method": "padim", "fpr": 0.5, "tpr": 1.0}
    assert plot_rows({"full": a, "padim": b}, "pro") == [{"method": "full", "fpr": 0.0, "pro": 0.0}]
    with pytest.raises(ValueError, match="unknown curve"):
        plot_rows({"full": a}, "det")


@pytest.mark.slow  # three DVC commands in a fresh git + DVC workspace (~10 s)
def test_dvc_plots_draw_one_plot_per_category_and_curve_with_one_line_per_method(tmp_path):
    """The plots section of dvc.yaml and its template, on hand-made report files, through DVC itself."""
    import json
    import subprocess

    from pipeline_utils import dvc

    from pipeline.workspace import make_workspace

    ws = make_workspace(tmp_path / "ws")
    rng = np.random.default_rng(0)

    def write_reports() -> None:
        for category in ("bottle", "tile"):
            by_method = {
                m: compute_curves(*_case(int(rng.integers(100))), fpr_limit=0.3, max_points=20)
                for m in ("full", "padim")
            }
            for name in CURVES:
                path = ws / "reports/plots" / name / f"{category}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(plot_rows(by_method, name)))
        intervals = [  # as pipeline.report.uncertainty.plot_files writes them
            {"method": m, "category": c, "value": v, "ci_low": v - 1.0, "ci_high": min(v + 1.0, 100.0)}
            for c in ("bottle", "tile")
            for m, v in (("full", float(rng.uniform(90, 99))), ("padim", float(rng.uniform(90, 99))))
        ]
        path = ws / "reports/plots/intervals/image_auroc.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(intervals))

    write_reports()
    subprocess.run(["git", "add", "-A"], cwd=ws, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "curves"], cwd=ws, check=True)
    write_reports()  # the workspace now differs from HEAD
    shown = json.loads(dvc(ws, "plots", "diff", "HEAD", "--json").stdout)["data"]
    study = {"reports/training/image_auroc", "reports/training/loss"}  # the study's curves: not written here
    study |= {k for k in shown if k.startswith("reports/gallery/")}  # the gallery's thumbnails: not written either
    intervals = "reports/plots/intervals/image_auroc.json"
    assert set(shown) - study == {f"reports/plots/{n}/{c}.json" for n in CURVES for c in ("bottle", "tile")} | {
        intervals
    }
    (plot,) = shown.pop(intervals)
    spec = plot["content"]
    assert spec["encoding"]["x"]["field"] == "category" and spec["encoding"]["xOffset"]["field"] == "method"
    bar, dot = spec["layer"]
    assert (bar["encoding"]["y"]["field"], bar["encoding"]["y2"]["field"], dot["encoding"]["y"]["field"]) == (
        "ci_low",
        "ci_high",
        "value",
    )
    assert {v["rev"] for v in spec["data"]["values"]} == {"HEAD", "workspace"}
    shown = {k: v for k, v in shown.items() if k not in study}
    for path, (plot,) in shown.items():
        spec, name = plot["content"], path.split("/")[2]
        enc = spec["encoding"]
        assert enc["color"]["field"] == "method" and enc["strokeDash"]["field"] == "rev"
        assert (enc["x"]["field"], enc["y"]["field"]) == CURVES[name]
        assert ("false positive rate" if name.endswith(("roc", "pro")) else "recall") in enc["x"]["title"]
        assert spec["title"]["text"]
        values = spec["data"]["values"]
        assert {v["method"] for v in values} == {"full", "padim"}
        assert {v["rev"] for v in values} == {"HEAD", "workspace"} and len(plot["revisions"]) == 2
    html = dvc(ws, "plots", "show", "-o", str(tmp_path / "html"))
    assert "padim" in (tmp_path / "html" / "index.html").read_text(), html.stdout
