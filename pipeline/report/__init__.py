"""Stage `report`: the paper's Tables 1–4 next to ours, the same-harness comparison methods, the DVC metrics file,
and ROC, precision-recall and PRO plot files (the pictures are the gallery stage's).

Reads ``data/scores/<category>/<method>/seed<s>.json`` for every method the params select (the FRAD variants,
then ``compare.methods``) and every seed of ``train.seeds``; writes, each atomically:

* ``reports/tables.md`` — Table 1 (image / pixel AUROC per category, cells "image / pixel" like the paper) and
  Table 2 (PRO): FRAD ours | paper | Δ, then PaDiM and RD re-run in our harness next to the paper's published
  columns, then PatchCore (not in the paper); Table 3 (module ablation) and Table 4 (layer ablation). Values in %,
  one decimal, mean ± sample standard deviation over seeds when there are several. Δ = ours − paper of the values
  as shown. Group averages are means over categories per seed, then mean ± std over seeds. An undefined metric
  shows "n/a" with a note giving the reason. With ``bootstrap.resamples`` > 0: Δ marked ∈ where the paper's value
  lies inside our 95% interval over test images, the best-method line names a winner only where the paired
  interval says so, and a "Test-set uncertainty" section (:mod:`.uncertainty`): every method's interval,
  paired differences FRAD − each comparison method and each Table 3–4 row − full. Last, a short "Speed" summary
  of ``reports/benchmark.md``.
* ``reports/metrics.json`` — the full model's averages of every metric (``image_auroc``, ``pixel_auroc``, ``pro``,
  ``image_ap``, ``image_f1max``, ``pixel_ap``, ``pixel_f1max`` as fractions, ``categories``, ``seeds``; ``ci_low`` /
  ``ci_high`` per metric with intervals) and each comparison method's averages under ``methods.<name>``.
* ``reports/plots/<curve>/<category>.json`` — ROC and precision-recall (image, pixel) and PRO curves of every
  method (first seed), one DVC plot per category and curve (see ``plots:`` in dvc.yaml).
* after Tables 1–4, every metric per category and as their mean (``metrics_table``).

The package, by what each module holds: ``scores`` (reading and checking the score files), ``stats`` (mean ± std
over seeds, %, Δ, seed noise), ``labels`` (metric and method labels, Table 3 rows, cell marks), ``cells`` (notes,
cells, pipe tables), ``category_tables`` (Tables 1–2, best line), ``ablation_tables`` (Tables 3–4), ``tables``
(tables.md), ``intervals`` (bootstrap intervals over test images), ``uncertainty`` (their section, marks and
fields), ``summary`` (metrics.json, the Speed section), ``metrics_table`` (every metric), ``plots`` (plot files); ``__main__`` is the
stage's entry (``python -m pipeline.report``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Sequence

from frad.io import write_json, write_text

from ..params import PARAMS_FILE, Params, load_params
from . import intervals, uncertainty
from .cells import Notes, markdown_table
from .labels import CHECK, DASH, METHOD_LABELS, METRIC_LABELS, METRICS, NA, NOISE, TABLE3_ROWS
from .plots import CURVES_DIR, load_curves, write_plots
from .scores import SCORES_DIR, Score, Scores, load_score, load_scores
from .stats import Stat, delta, pct, shown, stat, within_noise
from .summary import BENCHMARK_FILE, benchmark_section, summary_metrics
from .tables import HEADER, render_tables

__all__ = [
    "BENCHMARK_FILE",
    "CHECK",
    "CURVES_DIR",
    "DASH",
    "HEADER",
    "METHOD_LABELS",
    "METRICS",
    "METRIC_LABELS",
    "NA",
    "NOISE",
    "REPORTS_DIR",
    "SCORES_DIR",
    "TABLE3_ROWS",
    "Notes",
    "Score",
    "Scores",
    "Stat",
    "benchmark_section",
    "build_report",
    "delta",
    "load_score",
    "load_scores",
    "markdown_table",
    "pct",
    "render_tables",
    "run",
    "shown",
    "stat",
    "summary_metrics",
    "within_noise",
]

log = logging.getLogger("frad.report")

REPORTS_DIR = Path("reports")


def build_report(
    scores_dir: str | Path,
    params: Params,
    out_dir: str | Path,
    benchmark: str | Path | None = None,
    curves_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Write tables.md, metrics.json and plots/ under ``out_dir``; return the metrics dict.
    ``benchmark``: a ``python -m bench`` Markdown file summarised as the Speed section; ``curves_dir``: the score
    stages' curves (no plots without it). Every input is read and checked before anything is written."""
    scores_dir, out_dir = Path(scores_dir), Path(out_dir)
    scores = load_scores(scores_dir, params)
    seeds = params.train.seeds
    boot = intervals.load_bootstrap(scores_dir, params, lambda c, m, s: scores[m][c][seeds.index(s)].values)
    tables = render_tables(scores, params, boot) + "\n" + benchmark_section(Path(benchmark) if benchmark else None)
    metrics = summary_metrics(scores, params, boot)
    curves = load_curves(Path(curves_dir), params) if curves_dir is not None else None
    if curves is not None:
        point = lambda m, cats, metric: stat(scores[m], cats, metric).mean  # noqa: E731
        more = {"intervals": uncertainty.plot_files(boot, params, point)} if boot else {}
        write_plots(curves, params, out_dir / "plots", more)
    write_text(out_dir / "tables.md", tables)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def run(argv: Sequence[str]) -> dict[str, Any]:
    """``python -m pipeline.report [--params …] [--scores …] [--curves …] [--out …] [--benchmark …]``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.report", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path(PARAMS_FILE))
    parser.add_argument("--scores", type=Path, default=SCORES_DIR)
    parser.add_argument("--curves", type=Path, default=CURVES_DIR)
    parser.add_argument("--out", type=Path, default=REPORTS_DIR)
    parser.add_argument(
        "--benchmark",
        type=Path,
        default=BENCHMARK_FILE,
        help="latest `python -m bench` table to summarise (default: %(default)s)",
    )
    args = parser.parse_args(list(argv))
    metrics = build_report(args.scores, load_params(args.params), args.out, args.benchmark, args.curves)
    shown_metrics = ", ".join(f"{m} {'n/a' if metrics[m] is None else pct(metrics[m])}" for m in METRICS)
    log.info("report: %d categories, %s -> %s", metrics["categories"], shown_metrics, args.out / "tables.md")
    return metrics
