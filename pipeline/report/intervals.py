"""The report's test-set intervals: 95% bootstrap intervals over test images (``frad.evaluation.bootstrap``) of every method
and category, and of paired differences. The statistics are ``frad.evaluation.bootstrap``'s; this module loads the score
stages' summaries (``data/scores/<category>/<method>/seed<s>_boot.npz``), checks them against the score files and
holds the replicates (:class:`Bootstrap`); ``uncertainty`` renders them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from frad.errors import DataError
from frad.evaluation import bootstrap

from ..params import Params

LEVEL = 0.95
METRICS = bootstrap.METRICS

Replicates = Mapping[str, np.ndarray | None]


@dataclass(frozen=True)
class Bootstrap:
    """Replicates per method, category and metric (mean over seeds), the same resampled images for every method
    and seed of a category; ``errors``: for each metric on the threshold grid (``bootstrap.ERRORS``), the largest
    error bound over all resamples (a fraction)."""

    resamples: int
    seed: int
    reps: Mapping[str, Mapping[str, Replicates]]
    errors: Mapping[str, float]

    def replicate(self, method: str, cats: Sequence[str], metric: str) -> np.ndarray | None:
        """Per resample, the mean over the categories where the metric is defined (as the tables average)."""
        per = [self.reps[method][c][metric] for c in cats]
        return bootstrap.mean_replicates([v for v in per if v is not None] or [None])

    def interval(self, method: str, cats: Sequence[str], metric: str) -> tuple[float, float] | None:
        reps = self.replicate(method, cats, metric)
        return None if reps is None else bootstrap.interval(reps, LEVEL)

    def difference(self, a: str, b: str, cats: Sequence[str], metric: str) -> tuple[float, float] | None:
        """Interval of the paired difference a − b (same resampled images), over the categories where both are
        defined."""
        both = [c for c in cats if self.reps[a][c][metric] is not None and self.reps[b][c][metric] is not None]
        ra, rb = self.replicate(a, both, metric), self.replicate(b, both, metric)
        return None if ra is None or rb is None else bootstrap.interval(ra - rb, LEVEL)


def load_bootstrap(
    scores_dir: Path, p: Params, values: Callable[[str, str, int], Mapping[str, float | None]]
) -> Bootstrap | None:
    """The replicates of every method the params select, or None when ``bootstrap.resamples`` is 0.
    ``values(category, method, seed)``: the score file's metrics; each summary must reproduce them (the
    image and pixel AUROC exactly, AU-PRO within its bound), else it is stale."""
    if p.bootstrap.resamples == 0:
        return None
    reps: dict[str, dict[str, Replicates]] = {m: {} for m in p.methods}
    worst = dict.fromkeys(bootstrap.ERRORS, 0.0)
    for c in p.data.categories:
        first: tuple[Path, np.ndarray] | None = None
        weights = np.zeros(0)
        for m in p.methods:
            per_seed = []
            for s in p.train.seeds:
                path = scores_dir / c / m / f"seed{s}_boot.npz"
                summary = bootstrap.Summary.load(path)
                if first is None:
                    first = (path, summary.labels)
                    resampled = bootstrap.resample_weights(summary.labels, p.bootstrap.resamples, p.bootstrap.seed, c)
                    weights = np.vstack([np.ones(summary.labels.size), resampled])  # row 0: the whole set
                elif not np.array_equal(summary.labels, first[1]):
                    raise DataError(f"{path}: its test labels differ from {first[0]}'s; rerun `dvc repro`")
                r = bootstrap.replicates(summary, weights)
                _check_whole_set(path, r, values(c, m, s))
                per_seed.append({k: None if v is None else v[1:] for k, v in r.items()})
                for metric, key in bootstrap.ERRORS.items():
                    if r[key] is not None and np.isfinite(r[key]).any():
                        worst[metric] = max(worst[metric], float(np.nanmax(r[key])))
            reps[m][c] = {k: bootstrap.mean_replicates([r[k] for r in per_seed]) for k in METRICS}
    return Bootstrap(p.bootstrap.resamples, p.bootstrap.seed, reps, worst)


def _check_whole_set(path: Path, r: Mapping[str, np.ndarray | None], recorded: Mapping[str, float | None]) -> None:
    for metric in METRICS:
        ours, theirs = r[metric], recorded[metric]
        if (ours is None or np.isnan(ours[0])) != (theirs is None):
            raise DataError(
                f"{path}: {metric} defined in one of the summary and the score file only; rerun `dvc repro`"
            )
        if theirs is None:
            continue
        key = bootstrap.ERRORS.get(metric)
        tol = 1e-12 + (float(r[key][0]) if key else 0.0)  # type: ignore[index]
        if abs(float(ours[0]) - theirs) > tol:  # type: ignore[index]
            raise DataError(
                f"{path}: {metric} {float(ours[0])!r} differs from the score file's {theirs!r}; rerun `dvc repro`"  # type: ignore[index]
            )
