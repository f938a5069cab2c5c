"""Tests for the report's test-set intervals (pipeline.report.intervals and .uncertainty): section, paired marks,
best line, paper mark, metrics.json fields, a category without masks, stale and missing summaries. Score items are
small synthetic test sets written as the score stages write them (metrics from frad.evaluation.metrics, summaries from
frad.evaluation.bootstrap)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import test_report as tr

from frad.errors import DataError
from frad.evaluation import bootstrap, metrics
from pipeline import report

# Separation of each method's maps (defect pixels raised by this much); PaDiM's maps equal FRAD's.
STRENGTH = {"full": 1.5, "padim": 1.5, "rd": 0.05, "baseline": 0.05, "gfe": 1.5, "shuffle": 1.4}
SEEDS = [0, 1]


def params(**dotted):
    base = dict(data__categories=["bottle", "screw"], ablation__layers=[], compare__methods=["padim", "rd"])
    return tr.make_params(**{**base, "train__seeds": SEEDS, "bootstrap__resamples": 200, **dotted})


def scored_set(category: str, method: str, seed: int):
    """One category's test set (the same images and masks for every method) and a method's maps of it."""
    base = np.random.default_rng(sum(map(ord, category)))
    labels = np.arange(16) >= 6
    masks = np.zeros((16, 12, 12), bool)
    if category != "screw":
        for i in np.flatnonzero(labels):
            r, c = base.integers(0, 8, 2)
            masks[i, r : r + 3, c : c + 4] = True
    noise = np.random.default_rng([seed, sum(map(ord, method)) if method != "padim" else sum(map(ord, "full"))])
    maps = noise.random((16, 12, 12)) + STRENGTH[method] * masks
    if category == "screw":  # defective images without masks: their maps still score higher
        maps += STRENGTH[method] * labels[:, None, None]
    return maps, masks, maps.reshape(16, -1).max(axis=1), labels


def write_item(root: Path, category: str, method: str, seed: int, limit: float = 0.3) -> None:
    maps, masks, scores, labels = scored_set(category, method, seed)
    m = metrics.measure(maps, scores, labels, masks, limit)
    path = tr.write_score(root, category, method, m, seed)
    bootstrap.summarise(maps, masks, scores, labels, limit).save(path.with_name(f"seed{seed}_boot.npz"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats")
    p = params()
    for c in p.data.categories:
        for m in p.methods:
            for s in p.train.seeds:
                write_item(root / "scores", c, m, s)
    out = root / "out"
    metrics_json = report.build_report(root / "scores", p, out)
    return root, (out / "tables.md").read_text(), metrics_json


def _row(text: str, heading: str, label: str) -> list[str]:
    section = text.split(heading, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    line = next(line for line in section.splitlines() if line.startswith(f"| {label} "))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_section_shows_intervals_and_paired_marks(built):
    _, text, _ = built
    assert "## Test-set uncertainty — 95% bootstrap intervals over test images" in text
    assert "200 resamples per category" in text and "mean over the seeds" in text
    label, full, padim, full_padim, rd, full_rd = _row(text, "### Pixel AUROC", "bottle")
    assert re.fullmatch(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", full)
    assert full == padim and full_padim == "+0.0 [+0.0, +0.0]"  # identical maps: no mark
    assert full_rd.startswith("▲ +")  # far better on the same resampled images
    assert _row(text, "### Image AUROC", "screw")[1] != "n/a"
    assert _row(text, "### Pixel AUROC", "screw")[1:] == ["n/a"] * 5  # no masks: pixel metrics n/a
    row = _row(text, "### Tables 3–4 rows vs the full model", "baseline")
    assert row[2].startswith("▼ -")  # baseline row below the full model
    assert _row(text, "### Tables 3–4 rows vs the full model", "full")[2] == "—"


def test_best_line_names_a_winner_only_when_it_is_one(built):
    _, text, _ = built
    best = next(line for line in text.splitlines() if line.startswith("Best image AUROC"))
    assert "paired difference" in best
    assert "no clear winner: FRAD" in best and "PaDiM" in best and "RD" not in best.split("objects:")[1]


def test_best_line_names_the_winner_when_it_is_one(built, tmp_path):
    root, _, _ = built
    report.build_report(root / "scores", params(compare__methods=["rd"]), tmp_path / "out")
    best = next(line for line in (tmp_path / "out" / "tables.md").read_text().splitlines() if line.startswith("Best"))
    assert best.endswith("objects: FRAD (100.0); all: FRAD (100.0).")


def test_paper_value_inside_the_interval_marks_delta(built):
    _, text, _ = built
    row = _row(text, "## Table 1", "bottle")
    image_delta, pixel_delta = row[3].split(" / ")  # FRAD ours, paper, Δ
    assert row[2] == "100.0 / 98.9" and image_delta.endswith("∈")  # image AUROC interval [100.0, 100.0] holds 100.0
    assert not pixel_delta.endswith("∈")  # pixel AUROC interval [100.0, 100.0] does not hold 98.9
    assert "Δ ∈: the paper's value lies inside our 95% interval" in text


def test_interval_plot_files(built, tmp_path):
    root, _, _ = built
    curves = tmp_path / "curves"
    p = params()
    tr.write_all_curves(curves, p)
    report.build_report(root / "scores", p, tmp_path / "out", curves_dir=curves)
    rows = json.loads((tmp_path / "out" / "plots" / "intervals" / "pixel_auroc.json").read_text())
    assert {(r["method"], r["category"]) for r in rows} == {
        (m, c) for m in ("full", "padim", "rd") for c in ("bottle", "average")
    }
    assert all(r["ci_low"] <= r["ci_high"] <= 100.0 for r in rows)  # screw has no pixel interval: no row
    assert (tmp_path / "out" / "plots" / "image_roc" / "bottle.json").is_file()


def test_metrics_json_has_interval_fields(built):
    _, _, m = built
    for entry in (m, m["methods"]["padim"], m["methods"]["rd"]):
        for metric in ("image_auroc", "pro"):
            assert entry["ci_low"][metric] <= entry[metric] + 1e-12 <= entry["ci_high"][metric] + 2e-12
    assert m["ci_low"]["pixel_auroc"] is not None  # averaged over the category with masks
    assert json.loads(json.dumps(m)) == m


def test_stale_or_missing_summary_is_one_line_error(built, tmp_path):
    root, _, _ = built
    p = params()
    scores = tmp_path / "scores"
    for c in p.data.categories:
        for m in p.methods:
            for s in p.train.seeds:
                write_item(scores, c, m, s)
    path = scores / "bottle" / "rd" / "seed1.json"
    doc = json.loads(path.read_text())
    doc["pixel_auroc"] = 0.5
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"rd/seed1_boot.npz: pixel_auroc .* differs from the score file") as err:
        report.build_report(scores, p, tmp_path / "out")
    assert "\n" not in str(err.value)
    write_item(scores, "bottle", "rd", 1)
    (scores / "screw" / "gfe" / "seed0_boot.npz").unlink()
    with pytest.raises(DataError, match="missing bootstrap summary .*gfe/seed0_boot.npz"):
        report.build_report(scores, p, tmp_path / "out")


def test_no_resamples_no_intervals(built, tmp_path):
    root, _, _ = built
    m = report.build_report(root / "scores", params(bootstrap__resamples=0), tmp_path / "out")
    text = (tmp_path / "out" / "tables.md").read_text()
    assert "ci_low" not in m and "Test-set uncertainty" not in text and "∈" not in text
