"""Compact ROC and PRO curves for plots, consistent with the exact metrics of :mod:`frad.evaluation.metrics`.

* ``image_roc`` — (FPR, TPR) of the image scores, every threshold ``score >= t``, from (0, 0) to (1, 1);
  its trapezoid area is ``metrics.image_auroc`` (ties give the diagonal step, as in the AUROC).
* ``pixel_roc`` — the same over every pixel of every map (``metrics.pixel_auroc``).
* ``image_pr`` / ``pixel_pr`` — (recall, precision) at every threshold ``score >= t``, from the highest score
  to the lowest (recall 1, precision = the share of positives); AP (``metrics.image_ap``) is the step sum under it.
* ``pro`` — (FPR, PRO) up to the FPR limit, as in the MVTec AD evaluation (``metrics.au_pro``): starts at
  (0, 0), mean covered fraction of the 8-connected defect regions, last point linearly interpolated exactly
  at ``fpr == fpr_limit``; its trapezoid area divided by the limit is ``metrics.au_pro``.

Every stored point is an exact vertex of the curve (a real threshold; the PRO limit point is the exact
interpolation). The ~10^7 vertices of a pixel curve are thinned to at most ``max_points``: candidate thresholds
are quantiles of each class's sorted scores (sorted with the machinery of :mod:`frad.evaluation.metrics`), evaluated
exactly by counting, then kept evenly spaced in curve length (L1), with both ends. Between two kept points
the curve moves by at most ~2 / max_points in each coordinate, so the trapezoid area differs from the exact
one by far less than 1e-3 (tested).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from frad.evaluation import metrics
from frad.evaluation.scoreset import ScoreSet, score_set

__all__ = ["curves", "compute_curves", "plot_rows", "CURVES"]

CURVES = {
    "image_roc": ("fpr", "tpr"),
    "pixel_roc": ("fpr", "tpr"),
    "pro": ("fpr", "pro"),
    "image_pr": ("recall", "precision"),
    "pixel_pr": ("recall", "precision"),
}
"""Curve name -> its (x, y) keys."""
_CANDIDATES_PER_POINT = 4  # quantile thresholds per retained point and class: thinning error << 1 / max_points
_DECIMALS = 9  # JSON size: far below any visible or area difference, keeps 0, 1 and the limit exact


def _quantiles(sorted_values: np.ndarray, k: int) -> np.ndarray:
    """``k`` evenly spaced order statistics of an ascending array (all of it when it is short)."""
    if sorted_values.size <= k:
        return sorted_values
    return sorted_values[np.linspace(0, sorted_values.size - 1, k).round().astype(np.int64)]


def _count_at_least(parts: list[np.ndarray], thresholds: np.ndarray) -> np.ndarray:
    """``#(values >= t)`` over ascending ``parts`` for each threshold, as int64 (counts add up)."""
    below = sum(np.searchsorted(p, thresholds, side="left").astype(np.int64) for p in parts)
    return sum(p.size for p in parts) - below


def _thin(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most ``max_points`` points (both ends included) evenly spaced in L1 curve length."""
    keep = np.flatnonzero(np.append(True, (np.diff(x) != 0) | (np.diff(y) != 0)))  # drop repeated points
    x, y = x[keep], y[keep]
    if x.size <= max_points:
        return x, y
    length = np.concatenate(([0.0], np.cumsum(np.abs(np.diff(x)) + np.abs(np.diff(y)))))
    idx = np.unique(np.searchsorted(length, np.linspace(0.0, length[-1], max_points), side="left"))
    idx[-1] = x.size - 1
    return x[idx], y[idx]


def _points(x: np.ndarray, y: np.ndarray, name: str) -> list[dict]:
    x_key, y_key = CURVES[name]
    return [{x_key: round(float(a), _DECIMALS), y_key: round(float(b), _DECIMALS)} for a, b in zip(x, y)]


def _sorted_classes(flat: np.ndarray, positive: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Ascending negative scores (parallel sorted parts, as in ``metrics``) and ascending positive scores."""
    slices = metrics._part_slices(flat.size)
    tasks = [metrics._sorted_normal_task(flat, positive, part, None) for part in slices]
    pos = flat[positive]
    *neg_parts, _ = metrics._run_all([*tasks, pos.sort], parallel=len(slices) > 1)
    return neg_parts, pos


def _candidates(neg_parts: list[np.ndarray], pos: np.ndarray, max_points: int) -> np.ndarray:
    """Descending thresholds: quantiles of each class's scores, several per point kept."""
    k = _CANDIDATES_PER_POINT * max_points
    return np.unique(np.concatenate([_quantiles(p, k) for p in (*neg_parts, pos)]))[::-1]


def _pr(neg_parts: list[np.ndarray], pos: np.ndarray, max_points: int) -> list[dict]:
    """Thinned precision-recall curve from ascending negative parts and ascending positive scores, highest
    threshold first; [] when a class is absent."""
    if pos.size == 0 or sum(p.size for p in neg_parts) == 0:
        return []
    thresholds = _candidates(neg_parts, pos, max_points)
    tp = _count_at_least([pos], thresholds)
    fp = _count_at_least(neg_parts, thresholds)
    keep = tp > 0  # thresholds above every positive have no precision
    x, y = _thin(tp[keep] / pos.size, tp[keep] / (tp[keep] + fp[keep]), max_points)
    return _points(x, y, "pixel_pr")


def _roc(neg_parts: list[np.ndarray], pos: np.ndarray, max_points: int) -> list[dict]:
    """Thinned ROC from ascending negative parts and ascending positive scores; [] when a class is absent."""
    n_neg = sum(p.size for p in neg_parts)
    if pos.size == 0 or n_neg == 0:
        return []
    thresholds = _candidates(neg_parts, pos, max_points)
    fpr = _count_at_least(neg_parts, thresholds) / n_neg
    tpr = _count_at_least([pos], thresholds) / pos.size
    # (0, 0) = a threshold above every score; the lowest threshold is the minimum score, i.e. (1, 1).
    x, y = _thin(np.append(0.0, fpr), np.append(0.0, tpr), max_points)
    return _points(x, y, "pixel_roc")


def _pro(
    neg_parts: list[np.ndarray],
    defect_scores: np.ndarray,
    order: np.ndarray,
    region: np.ndarray,
    n_regions: int,
    fpr_limit: float,
    max_points: int,
) -> list[dict]:
    """Thinned PRO curve up to ``fpr_limit`` (MVTec AD definition, as ``metrics.au_pro``).

    ``neg_parts``: ascending normal scores; ``defect_scores``: the defect pixels' scores, ``order`` their argsort,
    ``region`` each one's region (1..``n_regions``).
    """
    n_ok = sum(p.size for p in neg_parts)
    sizes = np.bincount(region, minlength=n_regions + 1).astype(np.float64)
    scores = defect_scores[order]
    # PRO(t) = sum over defect pixels with score >= t of 1 / (|region| * R): suffix sums of these weights.
    suffix = np.append(np.cumsum((1.0 / (sizes[region[order]] * n_regions))[::-1])[::-1], 0.0)

    def pro_at(t: np.ndarray, side: str = "left") -> np.ndarray:  # side="right": strictly above t
        return suffix[np.searchsorted(scores, t, side=side)]

    x_limit = fpr_limit * n_ok  # the limit in normal pixels, as in metrics.au_pro
    allowed = min(int(math.floor(x_limit)), n_ok)  # normal positives allowed at FPR <= limit
    top = [p[max(0, p.size - allowed - 1) :] for p in neg_parts]  # they hold the (allowed + 1) largest
    k = _CANDIDATES_PER_POINT * max_points
    thresholds = np.unique(np.concatenate([_quantiles(p, k) for p in (*top, scores)]))[::-1]  # descending
    if allowed < n_ok:
        merged = np.concatenate(top)
        r = merged.size - allowed - 1
        cut = np.partition(merged, r)[r]  # first threshold past the limit (the cut of metrics.au_pro)
        thresholds = thresholds[thresholds > cut]
    x = np.append(0.0, _count_at_least(neg_parts, thresholds) / n_ok)
    y = np.append(0.0, pro_at(thresholds))
    if allowed < n_ok:
        # Vertex just above the cut (n_above, PRO(> cut)), then the partial step towards
        # (n_above + n_at_cut, PRO(>= cut)) interpolated at the limit.
        n_above = int(sum(p.size - np.searchsorted(p, cut, side="right") for p in neg_parts))
        n_at_cut = int(_count_at_least(neg_parts, np.array([cut]))[0]) - n_above
        y_gt, y_ge = float(pro_at(np.array([cut]), "right")[0]), float(pro_at(np.array([cut]))[0])
        x = np.append(x, [n_above / n_ok, fpr_limit])
        y = np.append(y, [y_gt, y_gt + (y_ge - y_gt) * (x_limit - n_above) / n_at_cut])
    x, y = _thin(x, y, max_points)
    x[-1] = fpr_limit  # the last vertex is at the limit, up to the rounding of a count / n_ok
    return _points(x, y, "pro")


def curves(scores: ScoreSet, fpr_limit: float, max_points: int = 1000) -> dict[str, list[dict]]:
    """Every curve of :data:`CURVES` of one scored test set, at most ``max_points`` each; a curve that is
    undefined (a class absent, or no masks) is an empty list."""
    limit = float(fpr_limit)
    if not 0.0 < limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit!r}")
    if int(max_points) < 2:
        raise ValueError(f"max_points must be at least 2 (the two ends), got {max_points!r}")
    n = int(max_points)
    image = _sorted_classes(scores.image_scores, scores.labels)
    out = {"image_roc": _roc(*image, n), "image_pr": _pr(*image, n), "pixel_roc": [], "pixel_pr": [], "pro": []}
    px = scores.pixels
    if px is None:
        return out
    pos = px.defect[px.order]
    out["pixel_roc"] = _roc(px.normal_parts, pos, n)
    out["pixel_pr"] = _pr(px.normal_parts, pos, n)
    out["pro"] = _pro(px.normal_parts, px.defect, px.order, px.region, px.n_regions, limit, n)
    return out


def compute_curves(
    maps: Any, masks: Any, image_scores: Any, labels: Any, fpr_limit: float, max_points: int = 1000
) -> dict[str, list[dict]]:
    """:func:`curves` of (N, H, W) maps and masks (None: no masks) and (N,) image scores and 0/1 labels."""
    return curves(score_set(maps, masks, image_scores, labels), fpr_limit, max_points)


def plot_rows(curves_by_method: Mapping[str, Mapping[str, list[dict]]], name: str) -> list[dict]:
    """Rows ``{"method", x, y}`` of curve ``name`` for every method, in method order: one DVC plot file."""
    if name not in CURVES:
        raise ValueError(f"unknown curve {name!r}: expected one of {', '.join(CURVES)}")
    x_key, y_key = CURVES[name]
    return [
        {"method": method, x_key: p[x_key], y_key: p[y_key]}
        for method, by_name in curves_by_method.items()
        for p in by_name.get(name, [])
    ]
