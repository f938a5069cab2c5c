"""Tests for frad.evaluation.bootstrap: the per-resample metrics equal frad.evaluation.metrics on the resampled images (AU-PRO within
its stated bound), the interval of a perfectly separated set, coverage on a score model with a known AUROC,
stratified and paired resampling, the summary file."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from frad.errors import DataError
from frad.evaluation import bootstrap, metrics


def random_set(rng: np.random.Generator, n: int, size: int, levels: int | None):
    """Maps (quantised to ``levels`` values for ties, or continuous float32), masks with a few rectangles per
    defective image (some touching only diagonally), max-of-map image scores."""
    masks = np.zeros((n, size, size), bool)
    labels = np.arange(n) >= n // 3
    for i in np.flatnonzero(labels):
        for _ in range(rng.integers(1, 4)):
            r, c = rng.integers(0, size - 2, 2)
            masks[i, r : r + rng.integers(1, 4), c : c + rng.integers(1, 4)] = True
    raw = rng.random((n, size, size)) + 0.4 * masks
    maps = (np.floor(raw * levels) if levels else raw).astype(np.float32)
    return maps, masks, maps.reshape(n, -1).max(axis=1), labels


def reference(maps, masks, scores, labels, idx, limit):
    """frad.evaluation.metrics on the resampled images themselves."""
    return {
        "image_auroc": metrics.image_auroc(scores[idx], labels[idx]),
        "pixel_auroc": metrics.pixel_auroc(maps[idx], masks[idx]),
        "pro": metrics.au_pro(maps[idx], masks[idx], fpr_limit=limit),
        "image_ap": metrics.image_ap(scores[idx], labels[idx]),
        "image_f1max": metrics.image_f1max(scores[idx], labels[idx])[0],
        "pixel_ap": metrics.pixel_ap(maps[idx], masks[idx]),
        "pixel_f1max": metrics.pixel_f1max(maps[idx], masks[idx])[0],
    }


@pytest.mark.parametrize("levels", [None, 5, 40], ids=["continuous", "5-levels", "40-levels"])
def test_resampled_metrics_equal_frad_metrics_on_the_resampled_images(levels):
    rng = np.random.default_rng(levels or 0)
    maps, masks, scores, labels = random_set(rng, 12, 10, levels)
    limit = 0.3
    summary = bootstrap.summarise(maps, masks, scores, labels, limit)  # few distinct scores: all in the grid
    weights = bootstrap.resample_weights(labels, 25, seed=3, stream="cat")
    reps = bootstrap.replicates(summary, np.vstack([np.ones(12), weights]))
    for b, w in enumerate(np.vstack([np.ones(12), weights])):
        ref = reference(maps, masks, scores, labels, np.repeat(np.arange(12), w.astype(int)), limit)
        assert reps["image_auroc"][b] == ref["image_auroc"]  # exact: integer counts, one division
        assert reps["pixel_auroc"][b] == ref["pixel_auroc"]
        assert reps["pro"][b] == pytest.approx(ref["pro"], abs=1e-12)
        assert reps["pro_error"][b] <= 1e-12 or levels is None
        for m in ("image_ap", "image_f1max", "pixel_ap", "pixel_f1max"):  # every defect score in the grid: exact
            assert reps[m][b] == pytest.approx(ref[m], abs=1e-12), m
        assert reps["pixel_ap_error"][b] == reps["pixel_f1max_error"][b] == 0.0


def test_au_pro_on_a_coarse_grid_stays_within_its_bound():
    """With fewer grid thresholds than distinct scores the error is real but never above the stated bound."""
    rng = np.random.default_rng(7)
    maps, masks, scores, labels = random_set(rng, 10, 12, None)
    for limit in (0.05, 0.3, 1.0):
        summary = bootstrap.summarise(maps, masks, scores, labels, limit, grid=6)
        weights = np.vstack([np.ones(10), bootstrap.resample_weights(labels, 30, seed=1)])
        reps = bootstrap.replicates(summary, weights)
        errors = []
        for b, w in enumerate(weights):
            exact = metrics.au_pro(maps.repeat(w.astype(int), axis=0), masks.repeat(w.astype(int), axis=0), limit)
            errors.append(abs(reps["pro"][b] - exact))
            assert errors[-1] <= reps["pro_error"][b] + 1e-12
        assert max(errors) > 1e-6  # the coarse grid does approximate: the bound is tested, not vacuous


def test_pixel_ap_and_f1max_on_a_coarse_grid_stay_within_their_bounds():
    rng = np.random.default_rng(11)
    maps, masks, scores, labels = random_set(rng, 10, 12, None)
    summary = bootstrap.summarise(maps, masks, scores, labels, 0.3, grid=8)
    assert not summary.defect_complete
    weights = np.vstack([np.ones(10), bootstrap.resample_weights(labels, 30, seed=2)])
    reps = bootstrap.replicates(summary, weights)
    errors = {"pixel_ap": [], "pixel_f1max": []}
    for b, w in enumerate(weights):
        idx = np.repeat(np.arange(10), w.astype(int))
        exact = {
            "pixel_ap": metrics.pixel_ap(maps[idx], masks[idx]),
            "pixel_f1max": metrics.pixel_f1max(maps[idx], masks[idx])[0],
        }
        for m, value in exact.items():
            errors[m].append(abs(reps[m][b] - value))
            assert errors[m][-1] <= reps[f"{m}_error"][b] + 1e-12, (m, b)
        assert reps["pixel_f1max"][b] <= exact["pixel_f1max"] + 1e-12  # the grid's best F1 is one of the real ones
    assert max(errors["pixel_ap"]) > 1e-6 and max(errors["pixel_f1max"]) > 1e-6  # not vacuous


def test_perfectly_separated_set_has_interval_one_one():
    rng = np.random.default_rng(0)
    masks = np.zeros((8, 6, 6), bool)
    masks[4:, 1:3, 2:5] = True
    maps = rng.random((8, 6, 6)) * 0.5 + masks  # every defect pixel above every normal pixel
    labels = np.arange(8) >= 4
    summary = bootstrap.summarise(maps, masks, maps.reshape(8, -1).max(axis=1), labels, 0.3)
    reps = bootstrap.replicates(summary, bootstrap.resample_weights(labels, 200, seed=0))
    for metric in bootstrap.METRICS:
        assert bootstrap.interval(reps[metric]) == (1.0, 1.0), metric


def test_coverage_on_a_score_model_with_known_auroc():
    """Good ~ N(0, 1), defective ~ N(d, 1): AUROC = Φ(d/√2) = 0.85. Over 300 test sets (fixed seeds) the 95%
    percentile interval contains it ~93% of the time at this size (0.927-0.933 over three seeds); [0.88, 0.99]
    lies over 3 binomial standard deviations (1.5%) from that. An 80% interval covers ~75%: the check bites."""
    true_auc, n_good, n_bad, draws = 0.85, 40, 60, 300
    d = np.sqrt(2.0) * norm.ppf(true_auc)
    labels = np.arange(n_good + n_bad) >= n_good
    weights = bootstrap.resample_weights(labels, 500, seed=0)
    rng = np.random.default_rng(2024)
    hits = hits_80 = 0
    for _ in range(draws):
        scores = rng.normal(size=labels.size) + d * labels
        maps = scores.reshape(-1, 1, 1)
        summary = bootstrap.summarise(maps, np.zeros(maps.shape, bool), scores, labels)
        reps = bootstrap.replicates(summary, weights)["image_auroc"]
        lo, hi = bootstrap.interval(reps)
        hits += lo <= true_auc <= hi
        lo, hi = bootstrap.interval(reps, level=0.8)
        hits_80 += lo <= true_auc <= hi
    assert 0.88 <= hits / draws <= 0.99, hits / draws
    assert hits_80 / draws < 0.88, hits_80 / draws


def test_resampling_is_stratified_deterministic_and_paired_by_stream():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1], bool)
    w = bootstrap.resample_weights(labels, 300, seed=5, stream="bottle")
    assert w.shape == (300, 8)
    assert np.all(w[:, ~labels].sum(axis=1) == 3) and np.all(w[:, labels].sum(axis=1) == 5)
    assert np.array_equal(w, bootstrap.resample_weights(labels, 300, seed=5, stream="bottle"))
    assert not np.array_equal(w, bootstrap.resample_weights(labels, 300, seed=5, stream="screw"))
    assert not np.array_equal(w, bootstrap.resample_weights(labels, 300, seed=6, stream="bottle"))


def test_paired_difference_of_a_method_with_itself_is_zero_and_of_a_better_one_excludes_zero():
    rng = np.random.default_rng(1)
    maps, masks, scores, labels = random_set(rng, 30, 8, None)
    better = maps + 0.6 * masks
    w = bootstrap.resample_weights(labels, 400, seed=0)
    a = bootstrap.replicates(bootstrap.summarise(maps, masks, scores, labels), w)
    b = bootstrap.replicates(bootstrap.summarise(better, masks, better.reshape(30, -1).max(1), labels), w)
    assert bootstrap.interval(a["pixel_auroc"] - a["pixel_auroc"]) == (0.0, 0.0)
    lo, _ = bootstrap.interval(b["pixel_auroc"] - a["pixel_auroc"])
    assert lo > 0


def test_set_without_defect_pixels_has_no_pixel_replicates(tmp_path):
    rng = np.random.default_rng(2)
    maps = rng.random((6, 5, 5))
    labels = np.array([0, 0, 0, 1, 1, 1], bool)
    summary = bootstrap.summarise(maps, np.zeros(maps.shape, bool), maps.max(axis=(1, 2)), labels)
    summary.save(tmp_path / "s.npz")
    loaded = bootstrap.Summary.load(tmp_path / "s.npz")
    reps = bootstrap.replicates(loaded, bootstrap.resample_weights(labels, 100, seed=0))
    assert reps["pixel_auroc"] is None and reps["pro"] is None and reps["image_auroc"] is not None
    assert bootstrap.full_set(loaded)["image_auroc"] == metrics.image_auroc(maps.max(axis=(1, 2)), labels)
    no_masks = bootstrap.summarise(maps, None, maps.max(axis=(1, 2)), labels)  # a category without ground truth
    assert no_masks.pixel_pairs is None and bootstrap.full_set(no_masks) == bootstrap.full_set(loaded)


def test_summary_round_trip_and_bad_file(tmp_path):
    rng = np.random.default_rng(3)
    maps, masks, scores, labels = random_set(rng, 6, 8, 10)
    summary = bootstrap.summarise(maps, masks, scores, labels, 0.2)
    summary.save(tmp_path / "s.npz")
    loaded = bootstrap.Summary.load(tmp_path / "s.npz")
    assert bootstrap.full_set(loaded) == bootstrap.full_set(summary)
    assert loaded.pro_limit == 0.2
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz is not a readable bootstrap summary") as err:
        bootstrap.Summary.load(tmp_path / "bad.npz")
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="missing bootstrap summary"):
        bootstrap.Summary.load(tmp_path / "none.npz")
