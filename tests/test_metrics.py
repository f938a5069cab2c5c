"""Tests for frad.evaluation.metrics: exactness against independent references, edge cases, validation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from frad.evaluation import metrics
from frad.evaluation.metrics import (
    UndefinedMetricError,
    au_pro,
    image_ap,
    image_auroc,
    image_f1max,
    pixel_ap,
    pixel_auroc,
    pixel_f1max,
    try_metric,
)
from frad.evaluation.scoreset import METRICS, score_set


# ----------------------------------------------------------------------------------------------
# Independent references
# ----------------------------------------------------------------------------------------------
def brute_force_au_pro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float) -> float:
    """AU-PRO by the definition: one full evaluation per distinct score, then trapezoids."""
    masks = masks.astype(bool)
    regions = []  # (image index, region mask)
    for i, mask in enumerate(masks):
        lab, n = ndimage.label(mask, structure=np.ones((3, 3)))
        regions += [(i, lab == k) for k in range(1, n + 1)]
    normal = ~masks
    xs, ys = [0.0], [0.0]
    for t in sorted(set(maps.ravel().tolist()), reverse=True):
        pred = maps >= t
        xs.append(np.count_nonzero(pred & normal) / np.count_nonzero(normal))
        overlaps = [np.count_nonzero(pred[i] & r) / np.count_nonzero(r) for i, r in regions]
        ys.append(np.mean(overlaps))
    area = 0.0
    for k in range(1, len(xs)):
        x0, y0, x1, y1 = xs[k - 1], ys[k - 1], xs[k], ys[k]
        if x1 <= fpr_limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:
            if x0 < fpr_limit:  # last, partial trapezoid with PRO interpolated at the limit
                y_lim = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
                area += (fpr_limit - x0) * (y0 + y_lim) / 2
            break
    return area / fpr_limit


def official_style_au_pro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float) -> float:
    """Transcription of the MVTec AD reference (argsort of all pixels, cumulative sums)."""
    fp_change = np.zeros(maps.shape)
    pro_change = np.zeros(maps.shape)
    n_regions = 0
    for i, mask in enumerate(masks.astype(bool)):
        lab, n = ndimage.label(mask, structure=np.ones((3, 3)))
        n_regions += n
        fp_change[i][lab == 0] = 1
        for k in range(1, n + 1):
            pro_change[i][lab == k] = 1.0 / np.count_nonzero(lab == k)
    order = np.argsort(maps.ravel(), kind="stable")[::-1]
    scores = maps.ravel()[order]
    fprs = np.cumsum(fp_change.ravel()[order]) / fp_change.sum()
    pros = np.cumsum(pro_change.ravel()[order]) / n_regions
    keep = np.append(np.diff(scores) != 0, True)
    x = np.concatenate(([0.0], fprs[keep], [1.0]))
    y = np.concatenate(([0.0], pros[keep], [1.0]))
    correction = 0.0
    if fpr_limit not in x:
        ins = int(np.searchsorted(x, fpr_limit, side="right"))
        slope = (y[ins] - y[ins - 1]) / (x[ins] - x[ins - 1])
        y_lim = y[ins - 1] + slope * (fpr_limit - x[ins - 1])
        correction = 0.5 * (y_lim + y[ins - 1]) * (fpr_limit - x[ins - 1])
    inside = x <= fpr_limit
    x, y = x[inside], y[inside]
    return (float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1]))) + correction) / fpr_limit


def random_case(rng: np.random.Generator, n: int, h: int, w: int, levels: int | None):
    """Random maps (integer-quantised to ``levels`` values for ties, or continuous) and masks
    made of sparse pixels plus diagonal pairs (connected only under 8-connectivity)."""
    masks = rng.random((n, h, w)) < rng.uniform(0.05, 0.3)
    for _ in range(rng.integers(0, 3)):
        i, r, c = rng.integers(n), rng.integers(h - 1), rng.integers(w - 1)
        masks[i, r, c] = masks[i, r + 1, c + 1] = True
        masks[i, r + 1, c] = masks[i, r, c + 1] = False
    if not masks.any():
        masks[0, 0, 0] = True
    if masks.all():
        masks[-1, -1, -1] = False
    raw = rng.random((n, h, w)) + 0.6 * masks * rng.random()
    maps = np.floor(raw * levels) if levels else raw
    return maps, masks


@pytest.fixture(params=[1, 3], ids=["serial", "3-parts"])
def workers(request, monkeypatch):
    """Run with one worker, or split even small inputs into 3 sorted parts on threads."""
    monkeypatch.setattr(metrics, "_n_workers", lambda: request.param)
    monkeypatch.setattr(metrics, "_PARALLEL_MIN", 16)
    return request.param


# ----------------------------------------------------------------------------------------------
# AU-PRO
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_au_pro_matches_brute_force(seed, workers):
    rng = np.random.default_rng(seed)
    for _ in range(8):
        n, h, w = rng.integers(1, 4), rng.integers(2, 10), rng.integers(2, 10)
        maps, masks = random_case(rng, n, h, w, levels=[None, 3, 8, 25][rng.integers(4)])
        for limit in (rng.uniform(0.02, 1.0), 0.3, 1.0):
            expected = brute_force_au_pro(maps, masks, limit)
            assert au_pro(maps, masks, fpr_limit=limit) == pytest.approx(expected, abs=1e-9)


def test_au_pro_float32_ties_match_brute_force(workers):
    rng = np.random.default_rng(11)
    maps, masks = random_case(rng, 3, 12, 9, levels=6)
    maps32 = (maps / 7).astype(np.float32)  # ties survive the float32 rounding
    for limit in (0.1, 0.3, 0.77):
        expected = brute_force_au_pro(maps32.astype(np.float64), masks, limit)
        assert au_pro(maps32, masks, limit) == pytest.approx(expected, abs=1e-9)


def test_au_pro_sampled_cut_path_matches_official(monkeypatch, workers):
    # A small sample size sends moderate inputs through the sampled top-normals path.
    monkeypatch.setattr(metrics, "_SAMPLE_SIZE", 1024)
    bounds = []  # lower bounds the sample produced (None = all normal scores sorted)
    real_bound = metrics._sample_lower_bound

    def spy(*args):
        bounds.append(real_bound(*args))
        return bounds[-1]

    monkeypatch.setattr(metrics, "_sample_lower_bound", spy)
    rng = np.random.default_rng(5)
    for levels, dtype in ((None, np.float64), (None, np.float32), (50, np.float64)):
        maps, masks = random_case(rng, 9, 40, 30, levels=levels)
        maps = maps.astype(dtype)
        for limit in (0.05, 0.3, 0.6):
            expected = official_style_au_pro(maps, masks, limit)
            assert au_pro(maps, masks, limit) == pytest.approx(expected, abs=1e-9)
    assert len(bounds) == 9 and all(b is not None for b in bounds)
    # The two references agree with each other too.
    maps, masks = random_case(rng, 2, 8, 8, levels=5)
    assert official_style_au_pro(maps, masks, 0.3) == pytest.approx(brute_force_au_pro(maps, masks, 0.3), abs=1e-12)


@pytest.mark.parametrize("bad_bound", [np.inf, 1e9, -np.inf])
def test_au_pro_survives_wrong_sample_guess(monkeypatch, workers, bad_bound):
    # A bound above the cut must trigger the fallback (all normal scores); one far below
    # only costs time. Either way the value is exact.
    monkeypatch.setattr(metrics, "_sample_lower_bound", lambda *args: bad_bound)
    rng = np.random.default_rng(9)
    maps, masks = random_case(rng, 3, 11, 13, levels=20)
    for limit in (0.1, 0.3):
        expected = brute_force_au_pro(maps, masks, limit)
        assert au_pro(maps, masks, limit) == pytest.approx(expected, abs=1e-9)


def test_sample_lower_bound_is_below_the_cut(monkeypatch):
    monkeypatch.setattr(metrics, "_SAMPLE_SIZE", 1024)
    rng = np.random.default_rng(3)
    flat = rng.random(20000).astype(np.float32)
    defect = rng.random(20000) < 0.1
    n_ok, need = int((~defect).sum()), 4000
    bound = metrics._sample_lower_bound(flat, defect, n_ok, need)
    kth_largest = np.sort(flat[~defect])[-need]
    assert bound is not None and bound <= kth_largest
    # Overshoot ~ the safety margin: 8 sqrt(1024) + 16 = 272 of 1024 sample values (~27%).
    assert np.count_nonzero(flat[~defect] >= bound) < need + 0.3 * n_ok
    assert metrics._sample_lower_bound(flat, defect, n_ok, int(0.9 * n_ok)) is None


def test_au_pro_hand_computed():
    # Region A = two diagonal pixels (one region under 8-connectivity), region B = one pixel.
    masks = np.array([[[1, 0, 0, 1], [0, 1, 0, 0]]], dtype=bool)
    maps = np.array([[[8, 6, 3, 5], [5, 7, 1, 4]]], dtype=float)
    # Points: (0,.25) (0,.5) (.2,.5) (.4,1) ...: area to .3 = .1 + .1*(.5+.75)/2 = .1625
    assert au_pro(maps, masks, 0.3) == pytest.approx(13 / 24, abs=1e-12)
    # To .5: .1 + .2*(.5+1)/2 + .1*1 = .35
    assert au_pro(maps, masks, 0.5) == pytest.approx(0.7, abs=1e-12)


def test_au_pro_perfect_inverted_and_worst():
    rng = np.random.default_rng(0)
    masks = np.zeros((3, 16, 16), dtype=bool)
    masks[0, 2:5, 3:9] = True
    masks[1, 10:14, 10:12] = True
    masks[1, 0, 0] = True
    assert au_pro(masks.astype(float), masks) == pytest.approx(1.0, abs=1e-12)
    assert au_pro((~masks).astype(np.float32), masks) == 0.0
    # All normal pixels ranked above every defect pixel (distinct scores): PRO stays 0 to FPR 1.
    maps = np.where(masks, rng.random(masks.shape), 2.0 + rng.random(masks.shape))
    for limit in (0.3, 1.0):
        assert au_pro(maps, masks, limit) == 0.0


@pytest.mark.parametrize("limit", [0.05, 0.3, 1.0])
def test_au_pro_all_tied_map(limit):
    masks = np.zeros((2, 6, 6), dtype=bool)
    masks[0, 1:3, 1:3] = True
    # One threshold only: the curve is the diagonal (0,0)-(1,1), area limit^2/2, normalised limit/2.
    assert au_pro(np.full(masks.shape, 0.7), masks, limit) == pytest.approx(limit / 2, abs=1e-12)


def test_metrics_invariant_to_image_order_transpose_and_flip():
    rng = np.random.default_rng(8)
    maps, masks = random_case(rng, 5, 14, 11, levels=12)
    pro, pix = au_pro(maps, masks, 0.25), pixel_auroc(maps, masks)
    perm = rng.permutation(5)
    for view in (
        lambda a: a[perm],
        lambda a: a.transpose(0, 2, 1),  # non-contiguous views, same regions
        lambda a: a[:, ::-1, :],
    ):
        assert au_pro(view(maps), view(masks), 0.25) == pytest.approx(pro, abs=1e-12)
        assert pixel_auroc(view(maps), view(masks)) == pix


def test_au_pro_mask_dtypes_and_inputs_untouched():
    rng = np.random.default_rng(2)
    maps, masks = random_case(rng, 2, 9, 9, levels=10)
    before = maps.copy()
    value = au_pro(maps, masks)
    assert au_pro(maps, masks.astype(np.uint8), 0.3) == value
    assert au_pro(maps, masks.astype(np.float32), 0.3) == value
    assert np.array_equal(maps, before)


# ----------------------------------------------------------------------------------------------
# Pixel and image AUROC
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("levels", [None, 2, 7, 300])
def test_pixel_auroc_matches_sklearn(dtype, levels, workers):
    rng = np.random.default_rng(levels or 1)
    for n, h, w in [(1, 3, 4), (4, 17, 9), (3, 64, 64)]:
        maps, masks = random_case(rng, n, h, w, levels=levels)
        maps = (maps / 3).astype(dtype)
        expected = roc_auc_score(masks.ravel(), maps.ravel())
        assert abs(pixel_auroc(maps, masks) - expected) <= 1e-12


def test_pixel_auroc_simple_values():
    masks = np.array([[[1, 0], [0, 0]]])
    assert pixel_auroc(np.array([[[4.0, 1.0], [2.0, 3.0]]]), masks) == 1.0
    assert pixel_auroc(np.array([[[0.0, 1.0], [2.0, 3.0]]]), masks) == 0.0
    assert pixel_auroc(np.array([[[2.0, 1.0], [2.0, 3.0]]]), masks) == pytest.approx(0.5)
    assert pixel_auroc(np.ones((1, 2, 2), dtype=np.int64), masks) == 0.5


@pytest.mark.parametrize("seed", range(40))
def test_image_auroc_matches_sklearn(seed):
    """image_auroc is our exact rank statistic (no scikit-learn import when scoring); sklearn is the reference."""
    assert image_auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    levels = [None, 3, 17][seed % 3]  # continuous scores, or heavy ties
    scores = rng.random(n) if levels is None else rng.integers(0, levels, n).astype(np.float64) / levels
    if seed % 2:
        scores = scores.astype(np.float32)
    labels = rng.random(n) < rng.uniform(0.05, 0.95)
    labels[0], labels[1] = True, False  # both classes present
    assert image_auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


# ----------------------------------------------------------------------------------------------
# Average precision and F1-max
# ----------------------------------------------------------------------------------------------
def sklearn_f1max(y, s) -> tuple[float, float]:
    """The largest F1 over precision_recall_curve, and its threshold (argmax: the lowest of equal maxima)."""
    precision, recall, thresholds = precision_recall_curve(y, s)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros_like(precision), where=precision + recall > 0
    )
    best = int(np.argmax(f1[:-1]))  # the last point (recall 0, precision 1) has no threshold
    return float(f1[best]), float(thresholds[best])


def test_ap_and_f1max_by_hand():
    # descending: 0.9 (+), 0.8 (-), 0.7 (+): AP = 1/2 * 1 + 1/2 * 2/3; F1 at 0.7 = 2*2/(2+1+2) = 0.8
    assert image_ap([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == pytest.approx(0.5 + 1 / 3)
    assert image_f1max([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == (pytest.approx(0.8), 0.7)
    assert image_ap([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0]) == 0.5  # one tie: one threshold, precision 1/2
    assert image_f1max([0.5, 0.5], [1, 0]) == (pytest.approx(2 / 3), 0.5)


@pytest.mark.parametrize("seed", range(30))
def test_image_ap_and_f1max_match_sklearn_ties_included(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    levels = [None, 2, 5, 40][seed % 4]
    scores = rng.random(n) if levels is None else rng.integers(0, levels, n).astype(np.float64)
    labels = rng.random(n) < rng.uniform(0.05, 0.95)
    labels[0], labels[1] = True, False
    assert image_ap(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    f1, threshold = image_f1max(scores, labels)
    ref_f1, ref_threshold = sklearn_f1max(labels, scores)
    assert f1 == pytest.approx(ref_f1, abs=1e-12) and threshold == ref_threshold


@pytest.mark.parametrize("levels", [None, 2, 7, 300])
def test_pixel_ap_and_f1max_match_sklearn_on_small_and_large_maps(levels, workers):
    rng = np.random.default_rng(levels or 3)
    for n, h, w in [(1, 3, 4), (4, 17, 9), (12, 96, 96)]:  # the last: 110,592 pixels
        maps, masks = random_case(rng, n, h, w, levels=levels)
        maps = (maps / 3).astype(np.float32)
        assert pixel_ap(maps, masks) == pytest.approx(average_precision_score(masks.ravel(), maps.ravel()), abs=1e-12)
        f1, threshold = pixel_f1max(maps, masks)
        ref_f1, ref_threshold = sklearn_f1max(masks.ravel(), maps.ravel())
        assert f1 == pytest.approx(ref_f1, abs=1e-12) and threshold == ref_threshold


@pytest.mark.parametrize("levels", [None, 4, 60])
def test_the_one_pass_gives_what_each_reference_metric_gives(levels, workers):
    """frad.evaluation.scoreset (what the score stages run) against frad.evaluation.metrics, metric by metric,
    with and without masks."""
    rng = np.random.default_rng(levels or 5)
    maps, masks = random_case(rng, 10, 40, 30, levels=levels)
    scores = maps.reshape(10, -1).max(axis=1)
    labels = np.arange(10) % 3 == 0
    for m in (masks, None):
        ours, ref = score_set(maps, m, scores, labels).metrics(0.3), metrics.measure(maps, scores, labels, m, 0.3)
        for key in (*METRICS, "image_f1max_threshold", "pixel_f1max_threshold"):
            assert (ours[key] is None) == (ref[key] is None), key
            assert ours[key] is None or ours[key] == pytest.approx(ref[key], abs=1e-12), key
        assert set(ours["undefined"]) == set(ref["undefined"])


# ----------------------------------------------------------------------------------------------
# Undefined metrics and validation
# ----------------------------------------------------------------------------------------------
def test_undefined_metrics_raise_and_try_metric_reports():
    maps = np.random.default_rng(0).random((2, 4, 4))
    no_defect = np.zeros(maps.shape, dtype=bool)
    all_defect = np.ones(maps.shape, dtype=bool)
    cases = [
        (image_auroc, ([0.1, 0.2], [0, 0]), "all test images are normal"),
        (image_auroc, ([0.1, 0.2], [1, 1]), "all test images are anomalous"),
        (pixel_auroc, (maps, no_defect), "no defect pixels"),
        (pixel_auroc, (maps, all_defect), "no normal pixels"),
        (au_pro, (maps, no_defect), "no defect pixels"),
        (au_pro, (maps, all_defect), "no normal pixels"),
    ]
    for fn, args, reason in cases:
        with pytest.raises(UndefinedMetricError, match=reason):
            fn(*args)
        value, why = try_metric(fn, *args)
        assert value is None and reason in why and "undefined" in why
    value, why = try_metric(au_pro, maps, maps > 0.5, fpr_limit=0.3)
    assert why is None and value == au_pro(maps, maps > 0.5)


@pytest.mark.parametrize(
    "maps, masks, match",
    [
        (np.zeros((4, 4)), np.zeros((4, 4)), r"shape \(N, H, W\)"),
        (np.zeros((1, 4, 4)), np.zeros((1, 4, 5)), "differs"),
        (np.zeros((0, 4, 4)), np.zeros((0, 4, 4)), "empty"),
        (np.zeros((1, 2, 2)), np.array([[[0, 255], [0, 0]]]), "binary"),
        (np.zeros((1, 2, 2)), np.array([[[0, 0.5], [0, 1]]]), "binary"),
        (np.array([[[0.0, np.nan], [1, 2]]]), np.eye(2)[None], "NaN or infinite"),
        (np.array([[[0.0, np.inf], [1, 2]]]), np.eye(2)[None], "NaN or infinite"),
        (np.array([[["a", "b"], ["c", "d"]]]), np.eye(2)[None], "real numbers"),
    ],
)
def test_bad_map_inputs_raise_value_error(maps, masks, match):
    for fn in (pixel_auroc, au_pro):
        with pytest.raises(ValueError, match=match) as info:
            fn(maps, masks)
        assert not isinstance(info.value, UndefinedMetricError)
        with pytest.raises(ValueError):  # try_metric does not hide malformed input
            try_metric(fn, maps, masks)


def test_bad_limit_and_image_inputs():
    maps, masks = np.zeros((1, 2, 2)), np.eye(2)[None]
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="fpr_limit"):
            au_pro(maps, masks, bad)
    with pytest.raises(ValueError, match="1-D"):
        image_auroc([[0.1, 0.2]], [[0, 1]])
    with pytest.raises(ValueError, match="entries"):
        image_auroc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="binary"):
        image_auroc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="NaN"):
        image_auroc([0.1, np.nan], [0, 1])


# ----------------------------------------------------------------------------------------------
# Benchmark module (tiny run)
# ----------------------------------------------------------------------------------------------
def test_bench_metrics_small_run(capsys):
    from bench.metrics import make_test_set, run_metrics_benchmark

    maps, masks = make_test_set(n=12, size=32, seed=1)
    assert maps.dtype == np.float32 and maps.shape == masks.shape == (12, 32, 32)
    assert np.count_nonzero(~masks.any(axis=(1, 2))) == 4  # one third good images
    out = run_metrics_benchmark(n=12, size=32, seed=1, classic_thresholds=100, repeat=1)
    assert out["au_pro"] == au_pro(maps, masks) and out["pixel_auroc"] == pixel_auroc(maps, masks)
    assert abs(out["classic_au_pro"] - out["au_pro"]) < 0.05  # 100 thresholds approximate it
    assert out["speedup"] > 0 and out["peak_rss_au_pro_mib"] >= out["rss_data_mib"] > 0
    assert "classic AU-PRO (100 thresholds)" in capsys.readouterr().out


def test_ap_and_f1max_are_undefined_without_both_classes():
    maps = np.random.default_rng(1).random((2, 4, 4))
    for fn, args, needle in (
        (image_ap, ([0.1, 0.2], [0, 0]), "all test images are normal"),
        (image_f1max, ([0.1, 0.2], [1, 1]), "all test images are anomalous"),
        (pixel_ap, (maps, np.zeros(maps.shape, bool)), "no defect pixels"),
        (pixel_f1max, (maps, np.ones(maps.shape, bool)), "no normal pixels"),
    ):
        with pytest.raises(UndefinedMetricError, match=needle):
            fn(*args)
