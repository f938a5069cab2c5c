"""The all-metrics table of reports/tables.md: every metric (image AUROC, AP, F1-max; pixel AUROC, AP, F1-max;
AU-PRO) of FRAD and every comparison method, per category and as the mean over the categories, with the 95%
intervals over test images when there are intervals. Tables 1–4 keep the paper's three metrics."""

from __future__ import annotations

from typing import Any

from ..params import Params
from .cells import markdown_table
from .labels import ALL_METRICS_ORDER, METHOD_LABELS, METRIC_LABELS, NA
from .scores import Scores
from .stats import shown, stat
from .uncertainty import interval_text


def all_metrics_table(scores: Scores, p: Params, boot: Any = None) -> str:
    """Rows (category or mean, method); a cell is the mean over seeds (± their std), then its interval. A mean is
    over the categories where the metric is defined; why one is not is said once per category under the table."""
    methods = ["full", *p.compare.methods]
    cats = list(p.data.categories)
    groups = [*((c, [c]) for c in cats), (f"Mean ({len(cats)})", cats)]
    rows = []
    for label, group in groups:
        for m in methods:
            cells = []
            for metric in ALL_METRICS_ORDER:
                s = stat(scores[m], group, metric)
                cell = NA if s.mean is None else shown(s)
                if boot is not None and s.mean is not None:
                    cell += " " + interval_text(boot.interval(m, group, metric))
                cells.append(cell)
            rows.append([label, METHOD_LABELS[m], *cells])
    undefined = {}  # category -> its reasons, over every method and metric
    for c in cats:
        reasons = {r for m in methods for metric in ALL_METRICS_ORDER for r in stat(scores[m], [c], metric).reasons}
        if reasons:
            undefined[c] = "; ".join(sorted(reasons))
    headers = ["Category", "Method", *(METRIC_LABELS[m] for m in ALL_METRICS_ORDER)]
    notes = [f"- {NA} on {c}: {reason}." for c, reason in undefined.items()]
    if undefined:
        notes.append(f"- A mean is over the categories where its metric is defined ({len(cats)} at most).")
    return "\n".join([markdown_table(headers, rows, n_checks=1), *([""] + notes if notes else [])])
