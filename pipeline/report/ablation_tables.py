"""Tables 3–4 of reports/tables.md: the module ablation (baseline / GFE only / shuffle only / full) and the layer
ablation (one row per layer set), averaged over the categories, next to the paper's rows."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from frad.errors import DataError

from .. import paper
from ..params import MODULE_VARIANTS, Params
from . import uncertainty
from .cells import Notes, comparability_note, compare_cells, markdown_table, ours_cell
from .labels import CHECK, DASH, METRIC_LABELS, METRICS, NOISE, TABLE3_ROWS
from .scores import Score, Scores
from .stats import stat, within_noise


def _recorded_modules(
    by_category: Mapping[str, Sequence[Score]], variant: str, nominal: tuple[bool, bool]
) -> tuple[bool, bool]:
    found = {s.modules for seeds in by_category.values() for s in seeds if s.modules is not None}
    if len(found) > 1:
        raise DataError(
            f"the {variant} score files disagree on gfe/ssl ({sorted(found)}): some are stale; rerun `dvc repro`"
        )
    return found.pop() if found else nominal


def _ablation_rows(
    scores: Scores,
    p: Params,
    entries: Sequence[tuple[str, list[str], Mapping[str, float] | None]],
    notes: Notes,
    boot: Any = None,
) -> list[list[str]]:
    """Rows [label cells…, ours, paper, Δ per metric] ([…, ours per metric] where these are not the paper's data);
    a cell within seed noise of the full row is marked ≈."""
    cats = list(p.data.categories)
    full = {m: stat(scores["full"], cats, m) for m in METRICS}
    rows = []
    for variant, label_cells, ref in entries:
        cells: list[str] = []
        for m in METRICS:
            s = stat(scores[variant], cats, m)
            ours = ours_cell(s, m, len(cats), notes)
            if variant != "full" and within_noise(s, full[m]):
                ours = (
                    NOISE
                    + ours
                    + notes.mark(
                        f"{NOISE}: differs from the full row by at most their combined seed standard deviation "
                        "(within seed noise)."
                    )
                )
            if not p.data.paper_data:
                cells.append(ours)
                continue
            paper_cell, delta_cell = compare_cells(ours.lstrip(NOISE), None if ref is None else ref[m])
            if delta_cell != DASH:
                delta_cell += uncertainty.paper_mark(boot, variant, cats, m, None if ref is None else ref[m])
            cells += [ours, paper_cell, delta_cell]
        rows.append(label_cells + cells)
    return rows


def _metric_headers(p: Params) -> list[str]:
    if not p.data.paper_data:
        return [METRIC_LABELS[m] for m in METRICS]
    return [x for m in METRICS for x in (f"{METRIC_LABELS[m]} ours", "paper", "Δ")]


def module_table(scores: Scores, p: Params, boot: Any = None) -> str:
    """Table 3: baseline / GFE only / shuffle only / full, averaged over the categories."""
    notes = Notes()
    entries = []
    for variant, label in TABLE3_ROWS:
        gfe, ssl = _recorded_modules(scores[variant], variant, MODULE_VARIANTS.get(variant, (True, True)))
        if variant == "full" and (gfe, ssl) != (True, True) and p.data.paper_data:
            label += notes.mark(
                "params.yaml switches off GFE or the shuffle loss (model.gfe / ssl.enabled), so `full` is not the "
                "paper's full model; it is compared with the paper's row of the same modules."
            )
        entries.append((variant, [label, CHECK if gfe else "", CHECK if ssl else ""], paper.module_ablation(gfe, ssl)))
    text = markdown_table(
        ["Model", "GFE", "Shuffle", *_metric_headers(p)], _ablation_rows(scores, p, entries, notes, boot), 2
    )
    note = comparability_note(p)
    return "\n".join([text, *notes.render(), *(["", note] if note else [])])


def layer_table(scores: Scores, p: Params, boot: Any = None) -> str:
    """Table 4: one row per layer set; the main layer set's row is the full model."""
    notes = Notes()
    full_modules = _recorded_modules(scores["full"], "full", (True, True))
    sets = [(p.features.layers, "full")] + [(p.variant(v).layers, v) for v in p.layer_variants]
    sets.sort(key=lambda e: (len(e[0]), e[0]))
    columns = sorted({layer for layers, _ in sets for layer in layers} | {1, 2, 3})
    entries = []
    for layers, variant in sets:
        modules = _recorded_modules(scores[variant], variant, full_modules)
        label = variant if variant != "full" else f"full (L{''.join(map(str, layers))})"
        ref = paper.layer_ablation(layers)
        if p.data.paper_data and ref is not None and modules != (True, True):
            ref = None
            label += notes.mark(
                "GFE or the shuffle loss is off (model.gfe / ssl.enabled) while the paper's Table 4 uses the full "
                "model: no paper value."
            )
        entries.append((variant, [label] + [CHECK if c in layers else "" for c in columns], ref))
    text = markdown_table(
        ["Model", *map(str, columns), *_metric_headers(p)],
        _ablation_rows(scores, p, entries, notes, boot),
        len(columns),
    )
    note = comparability_note(p)
    return "\n".join([text, *notes.render(), *(["", note] if note else [])])
