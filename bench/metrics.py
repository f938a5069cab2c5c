"""Benchmark of frad.evaluation.metrics on a synthetic test set of MVTec AD size.

    python -m bench.metrics [--n 1725 --size 256 --seed 0] [--thresholds 200] [--sklearn] [--target NAME=VALUE]

Builds ``n`` maps/masks of ``size`` x ``size`` (about one third good images, blob-like defects of
varied size, smooth float32 noise maps that are higher on defects), then times in the same run:
the exact ``au_pro`` and ``pixel_auroc`` of :mod:`frad.evaluation.metrics`, its ``pixel_ap`` and ``pixel_f1max``,
all seven metrics from the one pass the stages make (:mod:`frad.evaluation.scoreset`), the 95% intervals of all
seven for one bottle-size category (the first ``BOTTLE`` maps, 1,000 resamples) and the classic AU-PRO loop
(evenly spaced thresholds, connected components re-labelled at every threshold), and prints one table (met / NOT
met beside the targets given). :func:`run_metrics_benchmark` returns the numbers for
``python -m bench``.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage
from tabulate import tabulate

from frad.evaluation import bootstrap
from frad.evaluation.metrics import au_pro, pixel_ap, pixel_auroc, pixel_f1max
from frad.evaluation.scoreset import METRICS, score_set

from .measure import PeakMemory, memory_now, timed
from .targets import add_target_option, verdict

TARGETS = ("au_pro_s", "metrics_s", "classic_speedup", "ap_f1_s", "intervals_s")  # names --target takes
BOTTLE = 83  # test images of MVTec AD bottle: the category size of the intervals row
RESAMPLES = 1000

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def make_test_set(n: int = 1725, size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic ``(maps float32, masks bool)``, both ``(n, size, size)``.

    One third of the images are good. Each defective image gets 1-3 irregular elliptic blobs
    (radii log-uniform from 2 px to size/4); maps are smooth noise (bilinearly upsampled coarse
    noise plus fine uniform noise) plus a blurred bump of random strength on every blob.
    """
    rng = np.random.default_rng(seed)
    c = size // 8 + 2
    coarse = rng.standard_normal((n, c, c), dtype=np.float32)
    # Separable bilinear upsampling as two large matrix products (up @ coarse_i @ up.T).
    up = _linear_upsampler(c, size)
    cols = (coarse.reshape(n * c, c) @ up.T).reshape(n, c, size)
    rows = up @ cols.transpose(1, 0, 2).reshape(c, n * size)
    maps = np.ascontiguousarray(rows.reshape(size, n, size).transpose(1, 0, 2))
    fine = rng.random(maps.shape, dtype=np.float32)
    fine -= 0.5
    maps += fine  # fine uniform noise, std ~0.29
    del fine
    masks = np.zeros(maps.shape, dtype=bool)
    defective = rng.permutation(n)[: n - n // 3]
    for i in defective:
        for _ in range(rng.integers(1, 4)):
            _add_blob(rng, maps[i], masks[i])
    return maps, masks


def _linear_upsampler(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` float32 matrix of 1-D linear interpolation over the input range."""
    pos = np.linspace(0, n_in - 1, n_out)
    low = np.minimum(pos.astype(int), n_in - 2)
    frac = pos - low
    mat = np.zeros((n_out, n_in), dtype=np.float32)
    mat[np.arange(n_out), low] = 1 - frac
    mat[np.arange(n_out), low + 1] = frac
    return mat


def _add_blob(rng: np.random.Generator, amap: np.ndarray, mask: np.ndarray) -> None:
    """Draw one irregular ellipse into ``mask`` and add its blurred bump to ``amap``."""
    size = mask.shape[0]
    a, b = np.exp(rng.uniform(math.log(2), math.log(size / 4), 2))
    angle = rng.uniform(0, math.pi)
    cy, cx = rng.uniform(0, size, 2)
    r = int(max(a, b) * 1.3) + 8  # box holding the blob and its blur
    y0, y1 = max(int(cy) - r, 0), min(int(cy) + r + 1, size)
    x0, x1 = max(int(cx) - r, 0), min(int(cx) + r + 1, size)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dy, dx = yy - cy, xx - cx
    u = (dx * math.cos(angle) + dy * math.sin(angle)) / a
    v = (-dx * math.sin(angle) + dy * math.cos(angle)) / b
    wobble = ndimage.gaussian_filter(rng.standard_normal(u.shape), 2.0) * 1.5
    blob = u * u + v * v + wobble < 1.0
    if not blob.any():
        blob[min(int(cy), size - 1) - y0, min(int(cx), size - 1) - x0] = True
    mask[y0:y1, x0:x1] |= blob
    bump = ndimage.gaussian_filter(blob.astype(np.float32), 2.0)
    amap[y0:y1, x0:x1] += rng.uniform(1.0, 5.0) * bump / max(float(bump.max()), 1e-6)


def classic_au_pro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3, num_thresholds: int = 200) -> float:
    """AU-PRO the classic way: evenly spaced thresholds from min to max, at each one the
    connected components of every mask re-labelled and the per-region overlap recomputed;
    integrated like :func:`frad.evaluation.metrics.au_pro` (start (0, 0), trapezoids, interpolation at
    the limit, divided by it)."""
    normal = ~masks
    n_ok = np.count_nonzero(normal)
    fprs, pros = [], []
    for t in np.linspace(maps.min(), maps.max(), num_thresholds):
        pred = maps >= t
        overlaps = []
        for mask, hit in zip(masks, pred):
            lab, n_regions = ndimage.label(mask, structure=_EIGHT_CONNECTED)
            if n_regions:
                sizes = np.bincount(lab.ravel(), minlength=n_regions + 1)
                covered = np.bincount(lab[hit], minlength=n_regions + 1)
                overlaps.append(covered[1:] / sizes[1:])
        fprs.append(np.count_nonzero(pred & normal) / n_ok)
        pros.append(float(np.concatenate(overlaps).mean()))
    # Thresholds ascend, so the curve points run from FPR 1 down: reverse and prepend (0, 0).
    x = np.concatenate(([0.0], fprs[::-1], [1.0]))
    y = np.concatenate(([0.0], pros[::-1], [1.0]))
    return _area_to_limit(x, y, fpr_limit) / fpr_limit


def _area_to_limit(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoid area of a curve with ascending ``x`` up to ``limit``, y interpolated there."""
    inside = x <= limit
    xi, yi = x[inside], y[inside]
    area = float(np.sum(0.5 * (yi[1:] + yi[:-1]) * np.diff(xi)))
    nxt = int(np.count_nonzero(inside))
    if xi[-1] < limit and nxt < x.size:
        y_lim = yi[-1] + (y[nxt] - yi[-1]) * (limit - xi[-1]) / (x[nxt] - xi[-1])
        area += 0.5 * (yi[-1] + y_lim) * (limit - xi[-1])
    return area


def intervals_of_one_category(maps: np.ndarray, masks: np.ndarray, resamples: int = RESAMPLES) -> dict[str, Any]:
    """What the stages and the report do for one category: the one pass, its per-image statistics, ``resamples``
    replicates of every metric and their 95% intervals."""
    labels = masks.any(axis=(1, 2))
    scores = maps.reshape(len(maps), -1).max(axis=1)
    summary = bootstrap.statistics(score_set(maps, masks, scores, labels))
    reps = bootstrap.replicates(summary, bootstrap.resample_weights(labels, resamples, 0, "bench"))
    return {m: bootstrap.interval(reps[m]) for m in METRICS}


def _peak_rss_of(fn: Any, *args: Any) -> float:
    """Peak RSS (MiB) while ``fn(*args)`` runs, the data already held included."""
    with PeakMemory("cpu") as mem:
        fn(*args)
    return mem.peak_mib


def run_metrics_benchmark(
    n: int = 1725,
    size: int = 256,
    seed: int = 0,
    *,
    classic_thresholds: int = 200,
    repeat: int = 3,
    sklearn: bool = False,
    targets: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Time the fast metrics against the classic AU-PRO loop; print a table; return the numbers.

    Times are the best of ``repeat`` runs for the fast metrics and a single run for the classic
    loop (and for scikit-learn's ``roc_auc_score`` when ``sklearn`` is true).
    """
    targets = targets or {}
    maps, masks = make_test_set(n, size, seed)
    rss_data = memory_now("cpu")
    t = timed(lambda: au_pro(maps, masks), repeat)
    pro_fast, t_pro, c_pro = t.out, t.wall, t.cpu
    t = timed(lambda: pixel_auroc(maps, masks), repeat)
    pix, t_pix, c_pix = t.out, t.wall, t.cpu
    rss_pro = _peak_rss_of(au_pro, maps, masks)
    rss_pix = _peak_rss_of(pixel_auroc, maps, masks)
    t = timed(lambda: (pixel_ap(maps, masks), pixel_f1max(maps, masks)), repeat)
    (ap, (f1, f1_threshold)), t_ap, c_ap = t.out, t.wall, t.cpu
    labels = masks.any(axis=(1, 2))
    scores = maps.reshape(n, -1).max(axis=1)
    t = timed(lambda: score_set(maps, masks, scores, labels).metrics(0.3), repeat)
    one_pass, t_one, c_one = t.out, t.wall, t.cpu
    k = min(BOTTLE, n)
    t = timed(lambda: intervals_of_one_category(maps[:k], masks[:k]), repeat)
    intervals, t_iv, c_iv = t.out, t.wall, t.cpu
    rss_ap = _peak_rss_of(lambda: (pixel_ap(maps, masks), pixel_f1max(maps, masks)))
    rss_one = _peak_rss_of(lambda: score_set(maps, masks, scores, labels).metrics(0.3))
    rss_iv = _peak_rss_of(intervals_of_one_category, maps[:k], masks[:k])
    t = timed(lambda: classic_au_pro(maps, masks, 0.3, classic_thresholds))
    pro_classic, t_classic, c_classic = t.out, t.wall, t.cpu
    out: dict[str, Any] = {
        "n": n,
        "size": size,
        "seed": seed,
        "pixels": int(maps.size),
        "good_images": int(n - np.count_nonzero(masks.any(axis=(1, 2)))),
        "defect_pixel_fraction": float(masks.mean()),
        "au_pro": pro_fast,
        "au_pro_s": t_pro,
        "au_pro_cpu_s": c_pro,
        "pixel_auroc": pix,
        "pixel_auroc_s": t_pix,
        "pixel_auroc_cpu_s": c_pix,
        "fast_total_s": t_pro + t_pix,
        "pixel_ap": ap,
        "pixel_f1max": f1,
        "pixel_f1max_threshold": f1_threshold,
        "ap_f1_s": t_ap,
        "ap_f1_cpu_s": c_ap,
        "one_pass": {m: one_pass[m] for m in METRICS},
        "one_pass_s": t_one,
        "one_pass_cpu_s": c_one,
        "intervals": intervals,
        "intervals_images": k,
        "intervals_s": t_iv,
        "intervals_cpu_s": c_iv,
        "classic_au_pro": pro_classic,
        "classic_au_pro_s": t_classic,
        "classic_au_pro_cpu_s": c_classic,
        "classic_thresholds": classic_thresholds,
        "speedup": t_classic / t_pro,
        "rss_data_mib": rss_data,
        "peak_rss_au_pro_mib": rss_pro,
        "peak_rss_pixel_auroc_mib": rss_pix,
        "peak_rss_ap_f1_mib": rss_ap,
        "peak_rss_one_pass_mib": rss_one,
        "peak_rss_intervals_mib": rss_iv,
        "load_average_1min": os.getloadavg()[0],
        "cpus": len(os.sched_getaffinity(0)),
    }
    rows = [
        [
            "au_pro (exact, every threshold)",
            f"{pro_fast:.6f}",
            f"{t_pro:.2f}",
            f"{c_pro:.2f}",
            verdict(targets, "au_pro_s", t_pro),
        ],
        ["pixel_auroc (exact)", f"{pix:.6f}", f"{t_pix:.2f}", f"{c_pix:.2f}", ""],
        [
            "au_pro + pixel_auroc",
            "",
            f"{t_pro + t_pix:.2f}",
            f"{c_pro + c_pix:.2f}",
            verdict(targets, "metrics_s", t_pro + t_pix),
        ],
        ["pixel_ap (exact)", f"{ap:.6f}", "", "", ""],
        [
            "pixel_ap + pixel_f1max",
            f"F1 {f1:.6f}",
            f"{t_ap:.2f}",
            f"{c_ap:.2f}",
            verdict(targets, "ap_f1_s", t_ap),
        ],
        ["all seven metrics, one pass", "", f"{t_one:.2f}", f"{c_one:.2f}", ""],
        [
            f"intervals of all seven, {k} maps, {RESAMPLES} resamples",
            "",
            f"{t_iv:.2f}",
            f"{c_iv:.2f}",
            verdict(targets, "intervals_s", t_iv),
        ],
        [
            f"classic AU-PRO ({classic_thresholds} thresholds)",
            f"{pro_classic:.6f}",
            f"{t_classic:.2f}",
            f"{c_classic:.2f}",
            "; ".join(
                p
                for p in (f"au_pro speed-up {out['speedup']:.0f}x", verdict(targets, "classic_speedup", out["speedup"]))
                if p
            ),
        ],
    ]
    if sklearn:
        from sklearn.metrics import roc_auc_score

        t = timed(lambda: roc_auc_score(masks.ravel(), maps.ravel()))
        ref, t_ref, c_ref = t.out, t.wall, t.cpu
        out.update(sklearn_pixel_auroc=float(ref), sklearn_pixel_auroc_s=t_ref)
        rows.append(
            [
                "sklearn roc_auc_score (pixels)",
                f"{ref:.6f}",
                f"{t_ref:.2f}",
                f"{c_ref:.2f}",
                f"|diff| {abs(ref - pix):.1e}, pixel_auroc speed-up {t_ref / t_pix:.1f}x",
            ]
        )
    print(
        f"{n} maps of {size}x{size} ({maps.size / 1e6:.0f} M pixels, {out['good_images']} good, "
        f"{100 * out['defect_pixel_fraction']:.1f}% defect pixels), seed {seed}; "
        f"{out['cpus']} CPUs, load average {out['load_average_1min']:.1f}; "
        f"fast metrics: best of {repeat}"
    )
    print(tabulate(rows, headers=["metric", "value", "wall (s)", "cpu (s)", "note"]))
    print(
        f"|au_pro - classic| = {abs(pro_fast - pro_classic):.2e};  RSS with the data loaded "
        f"{rss_data:.0f} MiB; peak RSS during au_pro {rss_pro:.0f} MiB, during pixel_auroc "
        f"{rss_pix:.0f} MiB"
    )
    return out


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1725, help="number of test images")
    parser.add_argument("--size", type=int, default=256, help="map height and width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--thresholds", type=int, default=200, help="classic loop thresholds")
    parser.add_argument("--repeat", type=int, default=3, help="timing runs of the fast metrics")
    parser.add_argument("--sklearn", action="store_true", help="also time sklearn pixel AUROC")
    add_target_option(parser, TARGETS)
    args = parser.parse_args(argv)
    run_metrics_benchmark(
        args.n,
        args.size,
        args.seed,
        classic_thresholds=args.thresholds,
        repeat=args.repeat,
        sklearn=args.sklearn,
        targets=dict(args.targets),
    )


if __name__ == "__main__":
    main()
