"""Test-set uncertainty: stratified bootstrap over test images for every metric (image and pixel AUROC, AU-PRO,
image and pixel AP and F1-max).

A scored test set is summarised once (:func:`statistics` of the one pass :func:`~frad.evaluation.scoreset.score_set`,
by the score stages, where the maps are) into per-image statistics; a resample is a vector ``w`` of image
multiplicities (good and defective images resampled separately, with replacement), and each metric of the
resampled set follows from the summary:

* image and pixel AUROC are Mann–Whitney statistics, bilinear in ``w``:
  ``AUROC(w) = wᵀ U w / (2 P(w) Q(w))`` with ``U[i, j]`` the integer count ``2·#(s_p > s_q) + #(s_p = s_q)`` over
  positives ``p`` of image ``i`` (the image itself, or its defect pixels) and negatives ``q`` of image ``j``.
  All sums are integers below 2^53, so a resample's value is exactly ``metrics.image_auroc`` /
  ``metrics.pixel_auroc`` of the resampled images (tested for equality), at O(N²) per resample instead of a sort
  of ~10^7 pixels.
* AU-PRO: per image, the normal pixels at or above each of a fixed grid of thresholds (real scores of the set,
  dense up to twice the FPR limit) and the summed covered fractions of its regions. Grid vertices are exact
  vertices of the resampled PRO curve; between two of them the curve is monotone, so the trapezoid area differs
  from the exact one by at most ``ΔFPR·ΔPRO / 2`` per cell (the whole ``ΔFPR·ΔPRO`` for the cell at the limit).
  :func:`replicates` returns that bound per resample (``pro_error``, tested against ``metrics.au_pro`` of the
  resampled maps); a set with at most ``grid`` distinct scores per class has every score in the grid: exact.
* image AP and F1-max: exact, from the images in descending score order (ties grouped), their weighted
  positives and negatives summed cumulatively.
* pixel AP and F1-max: on the same threshold grid, from the defect and normal pixels of each image at or above
  each threshold. Between two grid thresholds TP and FP lie between their values at the two ends, which bounds
  the precision of every exact step there and the largest F1 (``pixel_ap_error``, ``pixel_f1max_error``); when
  every distinct defect score is a threshold, both are exact.

Intervals are percentile intervals (Efron) of the replicates; a paired comparison resamples the same images for
both methods (:func:`resample_weights` depends only on the labels and the seed) and takes the interval of the
replicate differences.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DataError
from .scoreset import METRICS, ScoreSet, score_set

__all__ = [
    "Summary",
    "statistics",
    "summarise",
    "resample_weights",
    "replicates",
    "interval",
    "METRICS",
]

ERRORS = {"pro": "pro_error", "pixel_ap": "pixel_ap_error", "pixel_f1max": "pixel_f1max_error"}
"""Metrics computed on the threshold grid -> their per-resample error bound in :func:`replicates`."""
GRID = 2048  # grid thresholds per class (AU-PRO, pixel AP and F1-max): each states its error bound (docs/intervals.md)
_COARSE = 64  # extra normal-score thresholds beyond twice the FPR limit, down to the minimum (any resample fits)
_CHUNK = 256  # resamples evaluated at once (bounds the (chunk, grid) temporaries)


@dataclass(frozen=True)
class Summary:
    """Per-image statistics of one scored test set (N images, K PRO thresholds); pixel fields None without
    defect or normal pixels (pixel metrics undefined)."""

    labels: np.ndarray  # (N,) bool, True = defective
    image_scores: np.ndarray  # (N,) float64
    image_pairs: np.ndarray  # (N, N) float64: 2·[s_i > s_j] + [s_i = s_j], defective i, good j (0 elsewhere)
    defect_pixels: np.ndarray | None  # (N,) float64: defect pixels per image
    normal_pixels: np.ndarray | None  # (N,) float64: normal pixels per image
    pixel_pairs: np.ndarray | None  # (N, N) float64: twice-counts, defect pixels of i vs normal pixels of j
    pro_normal: np.ndarray | None  # (N, K) float64: normal pixels of image j with score >= threshold k
    pro_cover: np.ndarray | None  # (N, K) float64: summed covered fraction of image i's regions at threshold k
    regions: np.ndarray | None  # (N,) float64: defect regions (8-connected) per image
    defect_at: np.ndarray | None  # (N, K) float64: defect pixels of image i with score >= threshold k
    pro_limit: float
    pro_complete: bool = False  # every distinct score is a grid threshold: AU-PRO exact
    defect_complete: bool = False  # every distinct defect score is a grid threshold: pixel AP and F1-max exact

    def save(self, path: str | Path) -> None:
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Summary:
        """Read a :meth:`save`d summary, checking shapes; a bad file is a :class:`DataError` naming it."""
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {f.name: (z[f.name] if f.name in z.files else None) for f in fields(cls)}
        except FileNotFoundError:
            raise DataError(f"missing bootstrap summary {path}: run `dvc repro` to compute the scores") from None
        except (OSError, ValueError) as err:
            raise DataError(f"{path} is not a readable bootstrap summary ({err}); rerun `dvc repro`") from None
        labels, pairs, limit = data["labels"], data["image_pairs"], data["pro_limit"]
        n = 0 if labels is None else labels.size
        ok = labels is not None and labels.ndim == 1 and pairs is not None and pairs.shape == (n, n)
        ok = ok and limit is not None and limit.ndim == 0
        ok = ok and data["image_scores"] is not None and data["image_scores"].shape == (n,)
        pixel = ("defect_pixels", "normal_pixels", "pixel_pairs", "pro_normal", "pro_cover", "regions", "defect_at")
        present = [data[k] is not None for k in pixel]
        ok = ok and (all(present) or not any(present))
        if ok and all(present):
            k = data["pro_normal"].shape[-1]
            shapes = ((n,), (n,), (n, n), (n, k), (n, k), (n,), (n, k))
            ok = all(data[name].shape == shape for name, shape in zip(pixel, shapes))
        if not ok:
            raise DataError(f"{path}: inconsistent bootstrap summary (an older format?); rerun `dvc repro`")
        data["labels"] = labels.astype(bool)
        data["pro_limit"] = float(limit)
        for flag in ("pro_complete", "defect_complete"):
            data[flag] = bool(data[flag]) if data[flag] is not None else False
        return cls(**data)


def _twice_counts(pos: np.ndarray, pos_group: np.ndarray, negs: Sequence[np.ndarray], n: int) -> np.ndarray:
    """(n, len(negs)) float64: per positive group i and ascending negative array j, the integer
    ``Σ 2·#(neg < p) + #(neg = p)`` over the positives ``p`` of group i."""
    values, inverse = np.unique(pos, return_inverse=True)
    out = np.zeros((n, len(negs)), dtype=np.float64)
    for j, neg in enumerate(negs):
        if neg.size == 0:
            continue
        left = np.searchsorted(neg, values, side="left")
        twice = left + np.searchsorted(neg, values, side="right")  # 2·less + equal
        out[:, j] = np.bincount(pos_group, weights=twice[inverse].astype(np.float64), minlength=n)
    return out


def _grid(
    normal_sorted: np.ndarray, defect_sorted: np.ndarray, limit: float, grid: int
) -> tuple[np.ndarray, bool, bool]:
    """Descending thresholds: ``grid`` normal scores evenly spaced in FPR over [0, min(1, 2·limit)] plus
    ``_COARSE`` down to the minimum, and ``grid`` defect-score quantiles; every distinct score of a class with at
    most ``grid`` of them. Also whether every distinct score of the set, and of the defect pixels, is a threshold."""
    pick = lambda a, idx: a[np.unique(np.clip(idx, 0, a.size - 1))]  # noqa: E731
    n_ok = normal_sorted.size
    top = np.round(n_ok - 1 - np.linspace(0, min(1.0, 2.0 * limit) * (n_ok - 1), grid)).astype(np.int64)
    coarse = np.round(np.linspace(0, n_ok - 1, _COARSE)).astype(np.int64)
    quantiles = np.round(np.linspace(0, defect_sorted.size - 1, grid)).astype(np.int64)
    candidates = [pick(normal_sorted, top), pick(normal_sorted, coarse), pick(defect_sorted, quantiles)]
    complete = []
    for sorted_scores in (normal_sorted, defect_sorted):
        few = 1 + np.count_nonzero(sorted_scores[1:] != sorted_scores[:-1]) <= grid
        if few:  # few distinct scores: all of them
            candidates.append(np.unique(sorted_scores))
        complete.append(few)
    return np.unique(np.concatenate(candidates))[::-1], all(complete), complete[1]


def statistics(scores: ScoreSet, pro_limit: float = 0.3, grid: int = GRID) -> Summary:
    """The per-image statistics of one scored test set (:func:`~frad.evaluation.scoreset.score_set`)."""
    y, s = scores.labels, scores.image_scores.astype(np.float64)
    n = y.size
    if not 0.0 < float(pro_limit) <= 1.0:
        raise ValueError(f"pro_limit must be in (0, 1], got {pro_limit!r}")
    image_pairs = (2.0 * (s[:, None] > s[None, :]) + (s[:, None] == s[None, :])) * (y[:, None] & ~y[None, :])
    base = dict(labels=y, image_scores=s, image_pairs=image_pairs, pro_limit=float(pro_limit))
    px = scores.pixels
    if px is None:
        none = ("defect_pixels", "normal_pixels", "pixel_pairs", "pro_normal", "pro_cover", "regions", "defect_at")
        return Summary(**base, **dict.fromkeys(none))
    negs = px.normal_by_image
    n_ok = np.array([neg.size for neg in negs], dtype=np.float64)
    n_def = np.bincount(px.defect_image, minlength=n).astype(np.float64)
    def_scores, def_img, region, n_regions = px.defect, px.defect_image, px.region, px.n_regions
    pixel_pairs = _twice_counts(def_scores, def_img, negs, n)
    region_img = np.zeros(n_regions + 1, dtype=np.int64)
    region_img[region] = def_img
    regions = np.bincount(region_img[1:], minlength=n).astype(np.float64)
    parts = px.normal_parts
    normal_sorted = parts[0] if len(parts) == 1 else np.sort(np.concatenate(parts), kind="stable")  # merges runs
    thresholds, complete, defect_complete = _grid(normal_sorted, def_scores[px.order], float(pro_limit), grid)
    ascending = thresholds[::-1]
    pro_normal = np.stack([neg.size - np.searchsorted(neg, ascending, side="left") for neg in negs])[:, ::-1]
    pro_cover = np.zeros((n, thresholds.size))
    defect_at = np.zeros((n, thresholds.size))
    order = np.lexsort((def_scores, region))  # by region, then score
    by_region = def_scores[order]
    bounds = np.searchsorted(region[order], np.arange(1, n_regions + 2))
    for r in range(n_regions):  # covered fraction = integer count / size: a fully covered region adds exactly 1
        seg = by_region[bounds[r] : bounds[r + 1]]
        at = (seg.size - np.searchsorted(seg, ascending, side="left"))[::-1]
        pro_cover[region_img[r + 1]] += at / seg.size
        defect_at[region_img[r + 1]] += at
    return Summary(
        **base,
        defect_pixels=n_def,
        normal_pixels=n_ok,
        pixel_pairs=pixel_pairs,
        pro_normal=pro_normal.astype(np.float64),
        pro_cover=pro_cover,
        regions=regions,
        defect_at=defect_at,
        pro_complete=complete,
        defect_complete=defect_complete,
    )


def summarise(
    anomaly_maps: Any, masks: Any, image_scores: Any, labels: Any, pro_limit: float = 0.3, grid: int = GRID
) -> Summary:
    """:func:`statistics` of (N, H, W) maps and masks and (N,) image scores and 0/1 labels; ``masks`` None (no pixel
    ground truth) leaves the pixel metrics undefined."""
    return statistics(score_set(anomaly_maps, masks, image_scores, labels), pro_limit, grid)


def resample_weights(labels: Any, resamples: int, seed: int, stream: str = "") -> np.ndarray:
    """(resamples, N) image multiplicities: the good and the defective images each resampled with replacement
    to their own count (stratified). Depends only on the labels, ``seed`` and ``stream`` (e.g. the category), so
    every method and seed scored on the same test set gets the same resampled images (paired comparisons)."""
    y = np.asarray(labels, dtype=bool)
    rng = np.random.default_rng([int(seed), zlib.crc32(stream.encode())])
    w = np.zeros((int(resamples), y.size), dtype=np.float64)
    for cls in (False, True):
        idx = np.flatnonzero(y == cls)
        if idx.size:
            w[:, idx] = rng.multinomial(idx.size, np.full(idx.size, 1.0 / idx.size), size=int(resamples))
    return w


def _auroc(pairs: np.ndarray, pos: np.ndarray, neg: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mann–Whitney AUROC per resample (row of ``w``); NaN where a class is absent from the resample."""
    num = np.sum((w @ pairs) * w, axis=1)  # integers below 2^53: exact in any order
    den = 2.0 * (w @ pos) * (w @ neg)
    return np.divide(num, den, out=np.full(num.shape, np.nan), where=den > 0)


def _au_pro(summary: Summary, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AU-PRO on the threshold grid per resample, and its error bound (module docstring). As in
    ``metrics.au_pro``, x counts normal pixels (integers) and y sums covered region fractions until the end."""
    q, r = w @ summary.normal_pixels, w @ summary.regions
    ok = (q > 0) & (r > 0)
    x_lim = summary.pro_limit * np.where(ok, q, 1.0)[:, None]
    zeros = np.zeros((w.shape[0], 1))
    x = np.hstack([zeros, w @ summary.pro_normal])
    # Cells past the limit have no width: keep the thresholds up to the first one at the limit in every resample.
    k = int(np.max(np.argmax(x >= x_lim, axis=1), initial=0)) if np.all(x[:, -1] >= x_lim[:, 0]) else x.shape[1]
    x = x[:, : max(k + 1, 2)]
    y = np.hstack([zeros, w @ summary.pro_cover[:, : x.shape[1] - 1]])
    x0, x1, y0, y1 = x[:, :-1], x[:, 1:], y[:, :-1], y[:, 1:]
    width = np.minimum(x1, x_lim) - np.minimum(x0, x_lim)  # each cell's part below the limit
    frac = np.divide(width, x1 - x0, out=np.zeros_like(width), where=x1 > x0)
    y_end = y0 + (y1 - y0) * frac  # PRO at the cell's right end, interpolated at the limit
    scale = 1.0 / (x_lim[:, 0] * np.where(ok, r, 1.0))
    area = np.sum(width * (y0 + y_end), axis=1) * scale / 2.0
    # Between grid vertices the exact curve is monotone: trapezoid error <= box / 2 (the whole box at the limit).
    box = width * (y1 - y0) * np.where(x1 > x_lim, 1.0, 0.5)
    bound = np.zeros(w.shape[0]) if summary.pro_complete else np.sum(box, axis=1) * scale
    return np.where(ok, area, np.nan), np.where(ok, bound, np.nan)


def _ap_f1(tp: np.ndarray, fp: np.ndarray, n_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AP and F1-max per row from cumulative TP and FP at descending thresholds (the last holding every positive)."""
    gained = np.diff(tp, axis=1, prepend=0.0)
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=tp > 0)
    ap = np.sum(gained * precision, axis=1) / n_pos
    f1 = np.max(2.0 * tp / (tp + fp + n_pos[:, None]), axis=1)
    return ap, f1


def _image_ap_f1(summary: Summary, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact image AP and F1-max per resample: images by descending score, ties grouped, weights summed."""
    order = np.argsort(-summary.image_scores, kind="stable")
    ranked = summary.image_scores[order]
    starts = np.flatnonzero(np.append(True, ranked[1:] != ranked[:-1]))
    y = summary.labels[order].astype(np.float64)
    tp = np.cumsum(np.add.reduceat(w[:, order] * y, starts, axis=1), axis=1)
    fp = np.cumsum(np.add.reduceat(w[:, order] * (1.0 - y), starts, axis=1), axis=1)
    n_pos, n_neg = tp[:, -1], fp[:, -1]
    ok = (n_pos > 0) & (n_neg > 0)
    ap, f1 = _ap_f1(tp, fp, np.where(ok, n_pos, 1.0))
    return np.where(ok, ap, np.nan), np.where(ok, f1, np.nan)


def _pixel_ap_f1(summary: Summary, w: np.ndarray) -> tuple[np.ndarray, ...]:
    """Pixel AP and F1-max per resample on the threshold grid, and their error bounds (module docstring)."""
    n_pos, n_neg = w @ summary.defect_pixels, w @ summary.normal_pixels
    ok = (n_pos > 0) & (n_neg > 0)
    p = np.where(ok, n_pos, 1.0)
    tp, fp = w @ summary.defect_at, w @ summary.pro_normal  # (R, K), thresholds descending
    ap, f1 = _ap_f1(tp, fp, p)
    if summary.defect_complete:
        ap_err, f1_err = np.zeros_like(ap), np.zeros_like(f1)
    else:  # within a cell TP and FP lie between the values at its two ends
        tp0, fp0 = np.hstack([np.zeros((len(w), 1)), tp[:, :-1]]), np.hstack([np.zeros((len(w), 1)), fp[:, :-1]])
        lo = np.divide(tp0, tp0 + fp, out=np.zeros_like(tp), where=tp0 > 0)
        hi = np.divide(tp, tp + fp0, out=np.zeros_like(tp), where=tp > 0)
        ap_err = np.sum(np.diff(tp, axis=1, prepend=0.0) * (hi - lo), axis=1) / p
        f1_err = np.max(2.0 * tp / (tp + fp0 + p[:, None]), axis=1) - f1
    nan = lambda v: np.where(ok, v, np.nan)  # noqa: E731
    return nan(ap), nan(f1), nan(ap_err), nan(f1_err)


def replicates(summary: Summary, weights: np.ndarray) -> dict[str, np.ndarray | None]:
    """Each metric of :data:`METRICS` per resample (row of ``weights``), NaN where undefined in that resample; None
    where it is undefined on the whole set; and for the metrics on the grid (:data:`ERRORS`) the bound on
    |value − exact value| per resample."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != summary.labels.size:
        raise ValueError(f"weights have {w.shape[1]} columns for {summary.labels.size} test images")
    y = summary.labels.astype(np.float64)
    out: dict[str, np.ndarray | None] = dict.fromkeys((*METRICS, *ERRORS.values()))
    if 0 < y.sum() < y.size:
        out["image_auroc"] = _auroc(summary.image_pairs, y, 1.0 - y, w)
        out["image_ap"], out["image_f1max"] = _image_ap_f1(summary, w)
    if summary.pixel_pairs is not None:
        out["pixel_auroc"] = _auroc(summary.pixel_pairs, summary.defect_pixels, summary.normal_pixels, w)
        chunks = [(_au_pro(summary, c), _pixel_ap_f1(summary, c)) for c in np.split(w, range(_CHUNK, len(w), _CHUNK))]
        out["pro"] = np.concatenate([c[0][0] for c in chunks])
        out["pro_error"] = np.concatenate([c[0][1] for c in chunks])
        for i, key in enumerate(("pixel_ap", "pixel_f1max", "pixel_ap_error", "pixel_f1max_error")):
            out[key] = np.concatenate([c[1][i] for c in chunks])
    return out


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval of bootstrap replicates (NaN replicates, a class absent, are left out); None if none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return None
    lo, hi = np.quantile(v, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(lo), float(hi)


def mean_replicates(per_item: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """Element-wise mean of replicate vectors (seeds of one method, or categories of a group); None if any is
    None (undefined on the whole set)."""
    if not per_item or any(v is None for v in per_item):
        return None
    return np.mean(np.stack(per_item), axis=0)  # type: ignore[arg-type]


def full_set(summary: Summary) -> Mapping[str, float | None]:
    """The metrics of the whole set (every multiplicity 1) from the summary."""
    reps = replicates(summary, np.ones((1, summary.labels.size)))
    return {k: (None if v is None else float(v[0])) for k, v in reps.items()}
