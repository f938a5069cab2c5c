"""Stage `choices_report`: the study of the open choices (stage family `choice`) as ``reports/choices.md`` and
its training curves as DVC plots.

Per development category (``choices.categories``): one row per ``choices.changes`` entry — image AUROC, pixel
AUROC, AU-PRO in %, mean ± sample std over ``train.seeds`` — marked against the reference row (the entry that
changes nothing: the defaults): ▲ / ▼ better / worse beyond seed noise (|Δ| > √(σa² + σb²), the rule of Tables
3–4), ≈ within it; then the same-harness comparison methods (``compare.methods``) on the same category and seeds. Each
default decision (:data:`DECISIONS`) is printed with the measured verdicts of its key. Curves:
``reports/training/<loss|image_auroc>/<category>.json``, rows ``{method, epoch, value}`` averaged over seeds
(image AUROC per epoch is for the study only, never used to stop or select).
"""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path
from typing import Any, Sequence

from frad.errors import DataError
from frad.io import atomic_path, write_text

from .common import choice_path, score_path, stage_main
from .params import PARAMS_FILE, Params, load_params
from .report import (
    DASH,
    METHOD_LABELS,
    METRIC_LABELS,
    METRICS,
    NOISE,
    Score,
    Stat,
    load_score,
    markdown_table,
    shown,
    stat,
    within_noise,
)

log = logging.getLogger("frad.choices")

OUT = Path("reports/choices.md")
TRAINING = Path("reports/training")
CURVES = ("loss", "image_auroc")  # per-epoch values plotted (reports/training/<curve>/<category>.json)
BETTER, WORSE = "▲", "▼"
DECISIONS: dict[str, str] = {
    "model.gfe_modules": "default [3], GFE at the bottleneck only, replacing [1, 2, 3] on this evidence (better "
    "localisation beyond seed noise on tire and bottle, worse nowhere, less compute); §1.3 defines GFE on any "
    "module's t ∈ R^{C_i×H_i×W_i} without saying which, so both are faithful readings",
    "model.strides": "default [1, 2, 2] kept (paper silent): a 4×4 bottleneck trades tire localisation (worse "
    "beyond noise) for image AUROC",
    "model.widths": "default kept (paper silent): wider is better on localisation but costs ~1.7× the training "
    "time here (width² conv FLOPs); set model.widths to the input channels C when compute allows",
    "model.skips": "default [1, 2, 3] kept: §1 connects every encoder module to its decoder module",
    "model.input_norm": "default none kept: eq. 8 compares z as §1.1 defines it",
    "score.top_k": "default 1 kept: A_sam is the max of A_pix (§1.5); a top-k mean is not the paper's score",
}
"""One line per open choice: the default kept or changed, and why (the measured verdicts follow it)."""


def _label(change: tuple[str, Any] | None, p: Params) -> str:
    if change is None:
        return "params as they are"
    section, key = change[0].split(".")
    same = list(getattr(getattr(p, section), key)) if isinstance(change[1], list) else getattr(getattr(p, section), key)
    return f"{change[0]} = {json.dumps(change[1])}" + (
        " (= params: repeats the reference)" if same == change[1] else ""
    )


def load_study(p: Params) -> dict[str, dict[str, list[Score]]]:
    """{category: {change: [Score per seed]}} of every study item (all checked before anything is written)."""
    out: dict[str, dict[str, list[Score]]] = {}
    for c in p.choices.categories:
        out[c] = {
            v: [load_score(choice_path(c, v, s), c, v, s, None) for s in p.train.seeds] for v in p.choices.changes
        }
    return out


def load_compared(p: Params) -> dict[str, dict[str, list[Score]]]:
    """{category: {method: [Score per seed]}} of the comparison methods on the study's categories."""
    return {
        c: {m: [load_score(score_path(c, m, s), c, m, s, None) for s in p.train.seeds] for m in p.compare.methods}
        for c in p.choices.categories
    }


def _cell(s: Stat, ref: Stat | None) -> str:
    """``mean±std`` and, against the reference row, ▲ / ▼ beyond seed noise or ≈ within it."""
    if s.mean is None:
        return "n/a"
    text = shown(s)
    if ref is None or s.std is None or ref.std is None or ref.mean is None:
        return text
    if within_noise(s, ref):
        return f"{text} {NOISE}"
    return f"{text} {BETTER if s.mean > ref.mean else WORSE}"


def _reference(p: Params) -> str | None:
    return next((v for v, change in p.choices.changes.items() if change is None), None)


def verdicts(study: dict[str, dict[str, list[Score]]], p: Params, change: str) -> str:
    """Where ``change`` differs from the reference row beyond seed noise, in points of %."""
    ref = _reference(p)
    if ref is None or len(p.train.seeds) < 2:
        return "no verdict (needs a reference entry {} and at least 2 seeds)"
    found = []
    for c, rows in study.items():
        for m in METRICS:
            a, b = stat({c: rows[change]}, [c], m), stat({c: rows[ref]}, [c], m)
            if a.mean is None or b.mean is None or within_noise(a, b):
                continue
            found.append(f"{c} {METRIC_LABELS[m]} {100 * (a.mean - b.mean):+.1f}")
    return "beyond seed noise: " + ", ".join(found) if found else "within seed noise everywhere"


def render(study: dict, compared: dict, p: Params) -> str:
    """The Markdown of reports/choices.md."""
    ref = _reference(p)
    seeds = len(p.train.seeds)
    lines = [
        "<!-- Generated by `python -m pipeline.choices_report` (DVC stage `choices_report`). Do not edit. -->",
        "# Open choices: evidence on the development categories",
        "",
        f"FRAD full (GFE {p.model.gfe}, shuffle loss {p.ssl.enabled}) with one open choice changed per row; backbone "
        f"{p.backbone.name}, L = {set(p.features.layers)}, C = {p.features.channels}, widths {list(p.model.widths)}, "
        f"gfe_modules {list(p.model.gfe_modules)}, skips {list(p.model.skips)}, strides {list(p.model.strides)}, "
        f"input_norm {p.model.input_norm}, {p.train.epochs} epochs, λ = "
        f"{p.ssl.lambda_}, σ = {p.score.sigma}, image score top_k {p.score.top_k}; {seeds} seed(s) "
        f"{list(p.train.seeds)}. Values in %, mean ± sample std over seeds. {BETTER} / {WORSE}: better / worse than "
        f"the reference row ({ref or DASH}) beyond seed noise (|Δ| > √(σ₁² + σ₂²)), {NOISE}: within it. Baselines: "
        "same harness, same cached features, same seeds.",
        "",
    ]
    headers = ["row", "open choice", *(METRIC_LABELS[m] for m in METRICS)]
    for c in p.choices.categories:
        refs = {m: stat({c: study[c][ref]}, [c], m) for m in METRICS} if ref else {}
        rows = []
        for v, change in p.choices.changes.items():
            cells = [_cell(stat({c: study[c][v]}, [c], m), None if v == ref else refs.get(m)) for m in METRICS]
            rows.append([v + (" (reference)" if v == ref else ""), _label(change, p), *cells])
        for m, scores in compared[c].items():
            cells = [_cell(stat({c: scores}, [c], k), None) for k in METRICS]
            rows.append([f"{METHOD_LABELS.get(m, m)} (same harness)", DASH, *cells])
        lines += [f"## {c}", "", markdown_table(headers, rows, n_checks=1), ""]
    lines += ["## Defaults and their evidence", ""]
    for v, change in p.choices.changes.items():
        if change is not None:
            decision = DECISIONS.get(change[0], "no decision recorded")
            lines.append(
                f"- `{change[0]}` = {json.dumps(change[1])} ({v}): {verdicts(study, p, v)}. Decision: {decision}."
            )
    return "\n".join(lines) + "\n"


def curve_rows(p: Params, category: str, name: str) -> list[dict]:
    """Rows ``{method, epoch, <name>}``: per change and epoch, the mean over seeds (skipping undefined values)."""
    rows = []
    for v in p.choices.changes:
        runs = [json.loads(choice_path(category, v, s).read_text()).get("epochs") for s in p.train.seeds]
        if any(not isinstance(r, list) for r in runs):
            bad = next(s for s, r in zip(p.train.seeds, runs) if not isinstance(r, list))
            raise DataError(f"{choice_path(category, v, bad)} has no per-epoch record; rerun `dvc repro`")
        for i, record in enumerate(runs[0]):
            values = [r[i][name] for r in runs if i < len(r) and r[i].get(name) is not None]
            if values:
                rows.append({"method": v, "epoch": record["epoch"], name: statistics.fmean(values)})
    return rows


def write_training(p: Params, out: Path, enabled: bool) -> None:
    with atomic_path(out, is_dir=True) as tmp:
        for name in CURVES:
            (tmp / name).mkdir()
            for c in p.choices.categories if enabled else ():
                (tmp / name / f"{c}.json").write_text(json.dumps(curve_rows(p, c, name)) + "\n")


def run(argv: Sequence[str]) -> None:
    p = load_params(PARAMS_FILE)
    if not p.choices.enabled:
        write_training(p, TRAINING, enabled=False)
        write_text(
            OUT,
            "# Open choices\n\nThe study is off (`choices.enabled: false` in params.yaml). Turn it on with "
            "`dvc exp run -S choices.enabled=true` (or edit params.yaml and `dvc repro`): it trains every "
            "`choices.changes` entry on every `choices.categories` category and seed.\n",
        )
        log.info("choices report: the study is off (choices.enabled: false)")
        return
    study, compared = load_study(p), load_compared(p)
    text = render(study, compared, p)
    write_training(p, TRAINING, enabled=True)
    write_text(OUT, text)
    log.info("choices report: %d categories, %d changes -> %s", len(study), len(p.choices.changes), OUT)


main = stage_main(run)

if __name__ == "__main__":
    main()
