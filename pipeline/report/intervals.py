"""The report's test-set uncertainty: 95% bootstrap intervals over test images (``frad.bootstrap``) for every
method and category, paired differences (FRAD vs each comparison method, each Table 3–4 row vs the full model),
the best-method line, the "paper value inside our interval" mark of Δ cells and the ``ci_low`` / ``ci_high``
fields of metrics.json. The statistics are ``frad.bootstrap``'s; this module loads the score stages' summaries
(``data/scores/<category>/<method>/seed<s>_boot.npz``) and renders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from frad import bootstrap
from frad.errors import DataError

from .params import Params

LEVEL = 0.95
IN_INTERVAL = "∈"
UP, DOWN = "▲", "▼"
METRICS = bootstrap.METRICS

Replicates = Mapping[str, np.ndarray | None]


@dataclass(frozen=True)
class Bootstrap:
    """Replicates per method, category and metric (mean over seeds), the same resampled images for every method
    and seed of a category; ``pro_error``: the largest AU-PRO error bound over all resamples (a fraction)."""

    resamples: int
    seed: int
    reps: Mapping[str, Mapping[str, Replicates]]
    pro_error: float

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
    worst = 0.0
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
                if r["pro_error"] is not None:
                    worst = max(worst, float(np.nanmax(r["pro_error"])))
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
        tol = 1e-12 + (float(r["pro_error"][0]) if metric == "pro" else 0.0)  # type: ignore[index]
        if abs(float(ours[0]) - theirs) > tol:  # type: ignore[index]
            raise DataError(
                f"{path}: {metric} {float(ours[0])!r} differs from the score file's {theirs!r}; rerun `dvc repro`"  # type: ignore[index]
            )


# ------------------------------------------------------------------------------------------------
# Cells
# ------------------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    return f"{100.0 * x:.1f}"


def _signed(x: float) -> str:
    return f"{round(100.0 * x, 1) + 0.0:+.1f}"


def interval_text(iv: tuple[float, float] | None) -> str:
    return "n/a" if iv is None else f"[{_pct(iv[0])}, {_pct(iv[1])}]"


def difference_cell(point: float | None, iv: tuple[float, float] | None) -> str:
    """ "▲ +0.6 [+0.1, +1.2]" when the interval lies above 0, ▼ below; no mark when it contains 0."""
    if point is None or iv is None:
        return "n/a"
    mark = UP + " " if iv[0] > 0 else DOWN + " " if iv[1] < 0 else ""
    return f"{mark}{_signed(point)} [{_signed(iv[0])}, {_signed(iv[1])}]"


def paper_mark(boot: Bootstrap | None, method: str, cats: Sequence[str], metric: str, paper_value: float | None) -> str:
    """ " ∈" for a Δ cell when the paper's value (in %) lies inside our interval as shown (one decimal)."""
    if boot is None or paper_value is None or method not in boot.reps:
        return ""
    iv = boot.interval(method, cats, metric)
    if iv is None:
        return ""
    return f" {IN_INTERVAL}" if float(_pct(iv[0])) <= round(paper_value, 1) <= float(_pct(iv[1])) else ""


LEGEND = (
    f"Δ {IN_INTERVAL}: the paper's value lies inside our 95% interval over test images (section "
    '"Test-set uncertainty"): this test set does not resolve the difference.'
)


def best(
    boot: Bootstrap | None,
    means: Mapping[str, float | None],
    cats: Sequence[str],
    metric: str,
    labels: Mapping[str, str],
) -> str:
    """ "PatchCore (99.9)" when the highest mean's paired interval against every other method lies above 0, else
    "no clear winner: PatchCore 99.9, FRAD 99.8 (not separated)" naming the methods not separated from it."""
    ranked = sorted(((v, m) for m, v in means.items() if v is not None), key=lambda vm: -vm[0])
    if not ranked:
        return "n/a"
    top_v, top = ranked[0]
    if boot is None:
        return f"{labels[top]} ({_pct(top_v)})"
    tied = [(v, m) for v, m in ranked[1:] if (iv := boot.difference(top, m, cats, metric)) is None or not iv[0] > 0]
    if not tied:
        return f"{labels[top]} ({_pct(top_v)})"
    return "no clear winner: " + ", ".join(f"{labels[m]} {_pct(v)}" for v, m in [ranked[0], *tied]) + " (not separated)"


# ------------------------------------------------------------------------------------------------
# Section and metrics.json
# ------------------------------------------------------------------------------------------------
Point = Callable[[str, Sequence[str], str], "float | None"]
"""(method, categories, metric) -> the tables' value (mean over seeds of the category mean)."""


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    from tabulate import tabulate

    align = ["left"] + ["right"] * (len(headers) - 1)
    return tabulate(rows, headers=list(headers), tablefmt="pipe", disable_numparse=True, colalign=align)


def _value_cell(boot: Bootstrap, point: Point, method: str, cats: Sequence[str], metric: str) -> str:
    v = point(method, cats, metric)
    return "n/a" if v is None else f"{_pct(v)} {interval_text(boot.interval(method, cats, metric))}"


def _diff(boot: Bootstrap, point: Point, a: str, b: str, cats: Sequence[str], metric: str) -> str:
    va, vb = point(a, cats, metric), point(b, cats, metric)
    return difference_cell(None if va is None or vb is None else va - vb, boot.difference(a, b, cats, metric))


def section(
    boot: Bootstrap,
    p: Params,
    point: Point,
    rows: Sequence[tuple[str, Sequence[str]]],
    labels: Mapping[str, str],
    metric_labels: Mapping[str, str],
) -> str:
    """The "Test-set uncertainty" section: per metric, every method's interval and FRAD's paired difference to
    each comparison method (``rows``: (label, categories) as in Tables 1–2); then each Table 3–4 row vs full."""
    seeds = len(p.train.seeds)
    lines = [
        "## Test-set uncertainty — 95% bootstrap intervals over test images",
        "",
        f"{boot.resamples} resamples per category (good and defective test images resampled separately, with "
        f"replacement; bootstrap.seed {boot.seed}), percentile intervals. Every method"
        + (" and seed" if seeds > 1 else "")
        + " of a category is evaluated on the same resampled images, so differences are paired"
        + (
            "; a resample's value is the mean over the seeds of each seed's metric on those images: the interval is "
            "the test set's sampling uncertainty of the seed mean, the ± of Tables 1–4 the training seeds' spread"
            if seeds > 1
            else "; one seed: the interval holds the test set's sampling uncertainty only, not training noise"
        )
        + ". Averages resample each category independently and average the resampled values. "
        f"{UP} / {DOWN}: higher / lower, the interval of the paired difference excludes 0; no mark: not resolved by "
        f"this test set. "
        + (
            f"AU-PRO from per-image statistics on a threshold grid: within {100.0 * boot.pro_error:.3f} points of "
            "the exact value in every resample."
            if boot.pro_error > 0
            else "AU-PRO exact (every distinct score is a threshold of the per-image statistics)."
        ),
    ]
    others = list(p.baselines.methods)
    for metric in METRICS:
        headers = ["Category", labels["full"]]
        for m in others:
            headers += [labels[m], f"{labels['full']} − {labels[m]}"]
        table = []
        for label, cats in rows:
            row = [label, _value_cell(boot, point, "full", cats, metric)]
            for m in others:
                row += [_value_cell(boot, point, m, cats, metric), _diff(boot, point, "full", m, cats, metric)]
            table.append(row)
        lines += ["", f"### {metric_labels[metric]}", "", _table(headers, table)]
    cats = list(p.data.categories)
    variants = [v for v in p.frad_variants if v != "full"]
    if variants:
        headers = ["Model"] + [x for m in METRICS for x in (metric_labels[m], "− full")]
        table = [
            ["full" if v == "full" else labels.get(v, v)]
            + [
                x
                for m in METRICS
                for x in (_value_cell(boot, point, v, cats, m), _diff(boot, point, v, "full", cats, m))
            ]
            for v in ["full", *variants]
        ]
        for row in table[:1]:
            row[2::2] = ["—"] * len(METRICS)
        lines += [
            "",
            "### Tables 3–4 rows vs the full model (averages over the categories)",
            "",
            _table(headers, table),
        ]
    return "\n".join(lines) + "\n"


def plot_files(boot: Bootstrap, p: Params, point: Point) -> dict[str, list[dict[str, Any]]]:
    """{metric: rows {method, category, value, ci_low, ci_high} in %}: every method (Tables 1–2) per category and
    the total average, for the DVC plot ``reports/plots/intervals`` (template ``.dvc/plots/frad_intervals.json``)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    groups = [*((c, [c]) for c in p.data.categories), ("average", list(p.data.categories))]
    for metric in METRICS:
        rows[metric] = []
        for label, cats in groups:
            for m in ("full", *p.baselines.methods):
                v, iv = point(m, cats, metric), boot.interval(m, cats, metric)
                if v is not None and iv is not None:
                    r = dict(value=v, ci_low=iv[0], ci_high=iv[1])
                    rows[metric].append(
                        {"method": m, "category": label, **{k: round(100 * x, 3) for k, x in r.items()}}
                    )
    return rows


def metrics_fields(boot: Bootstrap | None, method: str, cats: Sequence[str]) -> dict[str, Any]:
    """``ci_low`` / ``ci_high`` per metric (fractions; None where undefined) of a method's mean over ``cats``."""
    if boot is None:
        return {}
    ivs = {m: boot.interval(method, cats, m) for m in METRICS}
    return {
        "ci_low": {m: None if iv is None else iv[0] for m, iv in ivs.items()},
        "ci_high": {m: None if iv is None else iv[1] for m, iv in ivs.items()},
    }
