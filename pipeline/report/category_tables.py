"""Tables 1–2 of reports/tables.md: per category and per group average, FRAD and every same-harness comparison method,
ours next to the paper's published column and Δ; and the best-method line under Table 1."""

from __future__ import annotations

import math
from typing import Any, Sequence

from .. import paper
from ..params import Params
from . import uncertainty
from .cells import Notes, compare_cells, markdown_table, ours_cell, plural
from .labels import DASH, METHOD_LABELS, METRIC_LABELS
from .scores import Scores
from .stats import stat


def _paper_mean(method: str, group: str, cats: Sequence[str], metric: str, notes: Notes) -> tuple[float | None, str]:
    """The paper's value to compare a mean over ``cats`` with: its published average when ``cats`` are exactly
    the group's categories, else the mean of its per-category values (noted), else None."""
    if len(cats) == 1:
        return paper.category_value(cats[0], metric, method), ""
    values = [paper.category_value(c, metric, method) for c in cats]
    if not cats or any(v is None for v in values):
        return None, ""
    if group in paper.GROUPS and set(cats) == set(paper.GROUPS[group]):
        return paper.average_value(group, metric, method), ""
    return math.fsum(values) / len(values), notes.mark(  # type: ignore[arg-type]
        f"The paper's mean over the same {plural(len(cats), 'category')} ({', '.join(cats)}), not a published average."
    )


def category_groups(p: Params) -> list[tuple[str, str, tuple[str, ...]]]:
    """(paper group, label, categories) rows of Tables 1-2: each category, then its group's average (the dataset's
    groups: MVTec AD's textures and objects, VisA's three)."""
    return [(label.lower(), f"{label} average", cats) for label, cats in p.data.groups]


def _with_paper(p: Params, method: str) -> bool:
    """A paper column beside ``method``: the paper has one, and these are the paper's data (MVTec AD)."""
    return p.data.paper_data and method in paper.IN_PAPER


def _method_cells(
    scores: Scores,
    method: str,
    group: str,
    cats: Sequence[str],
    metrics: Sequence[str],
    notes: Notes,
    boot: Any,
    with_paper: bool,
) -> list[str]:
    """[ours, paper, Δ] (or [ours] without a paper column); several metrics share a cell as "a / b"."""
    ours, papers, deltas = [], [], []
    for m in metrics:
        s = stat(scores[method], cats, m)
        cell = ours_cell(s, m, len(cats), notes, f"{METHOD_LABELS[method]} on {cats[0]}: " if len(cats) == 1 else "")
        ref, mark = _paper_mean(method, group, cats, m, notes)
        paper_cell, delta_cell = compare_cells(cell, ref, mark)
        delta_cell += uncertainty.paper_mark(boot, method, cats, m, ref) if delta_cell != DASH else ""
        ours.append(cell)
        papers.append(paper_cell)
        deltas.append(delta_cell)
    joined = [" / ".join(ours)]
    if with_paper:
        joined += [" / ".join(papers), " / ".join(deltas)]
    return joined


def _headers(p: Params, methods: Sequence[str], what: str) -> list[str]:
    out = ["Category"]
    for m in methods:
        if _with_paper(p, m):
            out += [f"{METHOD_LABELS[m]} ours {what}", "paper", "Δ"]
        elif p.data.paper_data:
            out += [f"{METHOD_LABELS[m]} ours {what} (not in paper)"]
        else:
            out += [f"{METHOD_LABELS[m]} {what}"]
    return out


def category_table(scores: Scores, p: Params, metrics: Sequence[str], boot: Any = None) -> str:
    """Table 1 (metrics = image and pixel AUROC, one "image / pixel" cell) or Table 2 (PRO) for the full model
    and every comparison method, with the group averages (``category_groups``) and the total average."""
    notes = Notes()
    methods = ["full", *p.compare.methods]
    rows: list[list[str]] = []
    paper_col = {m: _with_paper(p, m) for m in methods}

    def cells(group: str, cats: Sequence[str]) -> list[str]:
        return [x for m in methods for x in _method_cells(scores, m, group, cats, metrics, notes, boot, paper_col[m])]

    for group, label, cats in category_groups(p):
        rows += [[c, *cells("", [c])] for c in cats]
        rows.append([label, *cells(group, cats)])
    total = list(p.data.categories)
    rows.append(["Total average", *cells("total", total)])
    what = "image / pixel" if len(metrics) == 2 else METRIC_LABELS[metrics[0]]
    return "\n".join([markdown_table(_headers(p, methods, what), rows), *notes.render()])


def best_line(scores: Scores, p: Params, metric: str, boot: Any = None) -> str:
    """One line: the best method (highest mean over seeds) per category group, as measured here; with intervals,
    a winner only where its paired difference to every other method excludes 0."""
    methods = ["full", *p.compare.methods]
    parts = []
    for _, label, cats in [*category_groups(p), ("total", "Total average", p.data.categories)]:
        if not cats:
            continue
        means = {m: stat(scores[m], cats, metric).mean for m in methods}
        if any(v is not None for v in means.values()):
            winner = uncertainty.best(boot, means, cats, metric, METHOD_LABELS)
            name = label.removesuffix(" average").lower()
            name = "all" if name == "total" else name if name.endswith("s") else name + "s"
            parts.append(f"{name}: {winner}")
    return (
        f"Best {METRIC_LABELS[metric].lower().replace('auroc', 'AUROC')} here (mean over seeds"
        + (
            "; a winner only where the 95% interval of its paired difference to every other method excludes 0"
            if boot
            else ""
        )
        + "): "
        + "; ".join(parts)
        + "."
    )
