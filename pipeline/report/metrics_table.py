"""The all-metrics table of reports/tables.md: every metric (image AUROC, AP, F1-max; pixel AUROC, AP, F1-max;
AU-PRO) of FRAD and every comparison method, per category and as the mean over the categories, with the 95%
intervals over test images when there are intervals. Tables 1–4 keep the paper's three metrics."""

from __future__ import annotations

from typing import Any

from ..params import Params
from .cells import Notes, markdown_table, ours_cell
from .labels import ALL_METRICS_ORDER, METHOD_LABELS, METRIC_LABELS
from .scores import Scores
from .stats import stat
from .uncertainty import interval_text


def all_metrics_table(scores: Scores, p: Params, boot: Any = None) -> str:
    """Rows (category or mean, method); a cell is the mean over seeds (± their std), then its interval."""
    notes = Notes()
    methods = ["full", *p.compare.methods]
    groups = [*((c, [c]) for c in p.data.categories), (f"Mean ({len(p.data.categories)})", list(p.data.categories))]
    rows = []
    for label, cats in groups:
        for m in methods:
            cells = []
            for metric in ALL_METRICS_ORDER:
                s = stat(scores[m], cats, metric)
                cell = ours_cell(
                    s, metric, len(cats), notes, f"{METHOD_LABELS[m]} on {cats[0]}: " if len(cats) == 1 else ""
                )
                if boot is not None and s.mean is not None:
                    cell += " " + interval_text(boot.interval(m, cats, metric))
                cells.append(cell)
            rows.append([label, METHOD_LABELS[m], *cells])
    headers = ["Category", "Method", *(METRIC_LABELS[m] for m in ALL_METRICS_ORDER)]
    return "\n".join([markdown_table(headers, rows, n_checks=1), *notes.render()])
