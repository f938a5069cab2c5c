"""The report's test-set uncertainty, rendered from the intervals (:mod:`.intervals`): the "Test-set
uncertainty" section (every method's interval, paired differences FRAD vs each comparison method and each
Table 3–4 row vs the full model), the best-method line, the "paper value inside our interval" mark of Δ cells, the
``ci_low`` / ``ci_high`` fields of metrics.json and the rows of the DVC plot ``reports/plots/intervals``."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from ..params import Params
from .cells import markdown_table
from .intervals import METRICS, Bootstrap
from .labels import METRICS as PAPER_METRICS
from .stats import pct

IN_INTERVAL = "∈"
UP, DOWN = "▲", "▼"


# ------------------------------------------------------------------------------------------------
# Cells
# ------------------------------------------------------------------------------------------------
def _signed(x: float) -> str:
    return f"{round(100.0 * x, 1) + 0.0:+.1f}"


def interval_text(iv: tuple[float, float] | None) -> str:
    return "n/a" if iv is None else f"[{pct(iv[0])}, {pct(iv[1])}]"


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
    return f" {IN_INTERVAL}" if float(pct(iv[0])) <= round(paper_value, 1) <= float(pct(iv[1])) else ""


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
        return f"{labels[top]} ({pct(top_v)})"
    tied = [(v, m) for v, m in ranked[1:] if (iv := boot.difference(top, m, cats, metric)) is None or not iv[0] > 0]
    if not tied:
        return f"{labels[top]} ({pct(top_v)})"
    return "no clear winner: " + ", ".join(f"{labels[m]} {pct(v)}" for v, m in [ranked[0], *tied]) + " (not separated)"


# ------------------------------------------------------------------------------------------------
# Section and metrics.json
# ------------------------------------------------------------------------------------------------
Point = Callable[[str, Sequence[str], str], "float | None"]
"""(method, categories, metric) -> the tables' value (mean over seeds of the category mean)."""


def _value_cell(boot: Bootstrap, point: Point, method: str, cats: Sequence[str], metric: str) -> str:
    v = point(method, cats, metric)
    return "n/a" if v is None else f"{pct(v)} {interval_text(boot.interval(method, cats, metric))}"


def _diff(boot: Bootstrap, point: Point, a: str, b: str, cats: Sequence[str], metric: str) -> str:
    va, vb = point(a, cats, metric), point(b, cats, metric)
    return difference_cell(None if va is None or vb is None else va - vb, boot.difference(a, b, cats, metric))


def _grid_sentence(boot: Bootstrap) -> str:
    """How exact the metrics on the per-image threshold grid are (AU-PRO, pixel AP, pixel F1-max)."""
    names = {"pro": "AU-PRO", "pixel_ap": "pixel AP", "pixel_f1max": "pixel F1-max"}
    inexact = {m: e for m, e in boot.errors.items() if e > 0}
    exact = [names[m] for m in boot.errors if m not in inexact]
    parts = [f"{names[m]} within {100.0 * e:.3f} points" for m, e in inexact.items()]
    text = (
        "From per-image statistics on a threshold grid: " + ", ".join(parts) + " of the exact value in every resample"
        if parts
        else ""
    )
    if exact:
        text += ("; " if text else "") + ", ".join(exact) + " exact (every distinct score needed is a threshold)"
    return text + "."


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
        f"this test set. " + _grid_sentence(boot),
    ]
    others = list(p.compare.methods)
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
        lines += ["", f"### {metric_labels[metric]}", "", markdown_table(headers, table)]
    cats = list(p.data.categories)
    variants = [v for v in p.frad_variants if v != "full"]
    if variants:
        headers = ["Model"] + [x for m in PAPER_METRICS for x in (metric_labels[m], "− full")]
        table = [
            ["full" if v == "full" else labels.get(v, v)]
            + [
                x
                for m in PAPER_METRICS
                for x in (_value_cell(boot, point, v, cats, m), _diff(boot, point, v, "full", cats, m))
            ]
            for v in ["full", *variants]
        ]
        for row in table[:1]:
            row[2::2] = ["—"] * len(PAPER_METRICS)
        lines += [
            "",
            "### Tables 3–4 rows vs the full model (averages over the categories)",
            "",
            markdown_table(headers, table),
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
            for m in ("full", *p.compare.methods):
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
