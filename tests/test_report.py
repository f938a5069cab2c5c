"""Tests for pipeline.report (tables, seeds, comparison methods, metrics, plots, errors) and pipeline.paper
(transcription). Score files are small and hand-made; expected cells are recomputed here with statistics/math."""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from pipeline_utils import DELETE, THREADS, changed

from frad.errors import ConfigError, DataError
from frad.evaluation.curves import CURVES, compute_curves
from frad.evaluation.scoreset import METRICS as ALL_METRICS
from pipeline import paper, report
from pipeline.params import LAYER_VARIANT, MODULE_VARIANTS, Params, layers_of, validate_params

PROJECT = Path(__file__).resolve().parent.parent
PAPER_TEXT = PROJECT.parent / "shared" / "paper" / "frad-paper.txt"
METRICS = paper.METRICS
ANOMALOUS_ONLY = "all test images are anomalous: image AUROC is undefined"

# Per-category metrics (image AUROC, pixel AUROC, PRO): carpet and grid are MVTec textures (built in, data.textures
# is empty), bottle an MVTec object, cable / capsule objects the paper does not have; blank's image AUROC is undefined.
CATS = ("carpet", "grid", "bottle", "cable", "capsule")
FULL = {
    "carpet": (0.9912, 0.9876, 0.9634),
    "grid": (0.9850, 0.9700, 0.9400),
    "bottle": (0.9951, 0.9823, 0.9502),
    "cable": (0.8000, 0.9000, 0.7000),
    "capsule": (None, 0.9500, 0.8500),
}
# FRAD variants: the full values shifted by a constant.
OFFSETS = {"full": 0.0, "baseline": -0.02, "gfe": -0.01, "shuffle": -0.015, "L1": -0.1, "L123": -0.03}
# Baselines, by hand: RD wins image AUROC on the textures, PatchCore on the objects and overall.
BASELINES = {
    "padim": {
        "carpet": (0.9950, 0.9890, 0.9600),
        "grid": (0.9600, 0.9700, 0.9400),
        "bottle": (0.9990, 0.9800, 0.9500),
        "cable": (0.7000, 0.8800, 0.6800),
        "capsule": (None, 0.9400, 0.8300),
    },
    "patchcore": {
        "carpet": (0.9930, 0.9910, 0.9500),
        "grid": (0.9800, 0.9650, 0.9300),
        "bottle": (1.0, 0.9860, 0.9610),
        "cable": (0.8600, 0.9100, 0.7200),
        "capsule": (None, 0.9600, 0.8600),
    },
    "rd": {
        "carpet": (0.9960, 0.9900, 0.9710),
        "grid": (0.9980, 0.9930, 0.9760),
        "bottle": (0.9970, 0.9850, 0.9600),
        "cable": (0.7500, 0.8900, 0.6900),
        "capsule": (None, 0.9500, 0.8400),
    },
}


def make_params(**dotted) -> Params:
    # the report does not read the study; intervals need the score stages' summaries (tests/test_report_stats.py)
    return validate_params(changed(**{"choices__categories": [], "bootstrap__resamples": 0, **dotted}))


STANDARD = {
    "data__categories": list(CATS),
    "ablation__layers": ["L1", "L123"],
    "train__seeds": [0],
    "bootstrap__resamples": 0,
}


def values_of(method: str, category: str) -> tuple[float | None, ...]:
    if method in BASELINES:
        return BASELINES[method][category]
    offset = OFFSETS["L1" if method == "L13" else method]
    return tuple(None if v is None else round(v + offset, 10) for v in FULL[category])


def write_score(root: Path, category: str, method: str, values, seed: int = 0, extra: dict | None = None) -> Path:
    """One score file as the score stage writes it; ``extra`` overrides fields."""
    doc: dict = {"category": category, "method": method, "seed": seed}
    if method not in BASELINES:  # FRAD variants record their layer set and modules
        gfe, ssl = MODULE_VARIANTS.get(method, (True, True))
        layers = list(layers_of(method)) if LAYER_VARIANT.match(method) else [2, 3]
        doc.update(layers=layers, gfe=gfe, ssl=ssl)
    if isinstance(values, dict):  # every metric, as measured
        named = {m: values[m] for m in ALL_METRICS}
    else:  # the paper's three; the other four follow from them (AP and F1-max below AUROC, as usual)
        named = dict(zip(METRICS, values))
        derived = {"image_ap": ("image_auroc", 0.01), "image_f1max": ("image_auroc", 0.03)}
        derived |= {"pixel_ap": ("pixel_auroc", 0.3), "pixel_f1max": ("pixel_auroc", 0.35)}
        for m, (source, drop) in derived.items():
            named[m] = None if named[source] is None else round(max(0.0, named[source] - drop), 10)
    doc.update(named)
    doc["undefined"] = {m: ANOMALOUS_ONLY for m, v in named.items() if v is None}
    doc.update(n_test=10, n_defect=10, names=[], labels=[], image_scores=[])
    doc.update(extra or {})
    path = root / category / method / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def write_all_scores(root: Path, p: Params) -> Path:
    for c in p.data.categories:
        for m in p.methods:
            for s in p.train.seeds:
                write_score(root, c, m, values_of(m, c), s)
    return root


def make_curves(seed: int) -> dict:
    """Realistic curves (frad.evaluation.curves.compute_curves) of a tiny random test set."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((4, 8, 8), bool)
    masks[2:, 2:5, 3:6] = True
    maps = rng.random((4, 8, 8)) + masks
    labels = np.array([0, 0, 1, 1])
    return compute_curves(maps, masks, maps.reshape(4, -1).max(axis=1), labels, fpr_limit=0.3)


def write_all_curves(root: Path, p: Params) -> dict:
    """A distinct curve set per (category, method, seed); returns them by (category, method, seed)."""
    written = {}
    for i, (c, m, s) in enumerate((c, m, s) for c in p.data.categories for m in p.methods for s in p.train.seeds):
        written[c, m, s] = make_curves(i)
        path = root / c / m / f"seed{s}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(written[c, m, s]))
    return written


def section(text: str, n: int) -> str:
    """The text of '## Table n' up to the next section."""
    return text.split(f"## Table {n} ")[1].split("\n## ")[0]


def rows(text: str) -> dict[str, list[str]]:
    """Pipe-table rows of a section: first cell (notes stripped) -> remaining cells."""
    out = {}
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|:") and not line.startswith("|-"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out[cells[0].split(" [")[0]] = cells[1:]
    return out


def notes(text: str) -> dict[str, str]:
    """'- [n] text' lines of a section: '[n]' -> text."""
    return dict(line[2:].split(" ", 1) for line in text.splitlines() if line.startswith("- ["))


def strip_notes(cell: str) -> str:
    """'89.8 [2] / 94.3' -> '89.8 / 94.3'."""
    return " / ".join(part.split(" [")[0] for part in cell.split(" / "))


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def dlt(ours: str, ref: float) -> str:
    """Δ = ours − paper of the two values as shown (one decimal each)."""
    return f"{round(float(ours) - float(f'{ref:.1f}'), 1) + 0.0:+.1f}"


def defined_mean(values) -> float:
    return statistics.fmean(v for v in values if v is not None)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The report of the standard scores (one seed, maps for carpet only, curves), built once for read-only tests."""
    tmp = tmp_path_factory.mktemp("built")
    p = make_params(**STANDARD)
    root = write_all_scores(tmp / "scores", p)
    curves = write_all_curves(tmp / "curves", p)
    metrics = report.build_report(root, p, tmp / "reports", curves_dir=tmp / "curves")
    return metrics, tmp / "reports", (tmp / "reports" / "tables.md").read_text(), curves


@pytest.fixture
def scores(tmp_path: Path) -> Path:
    """Score files of the standard params."""
    return write_all_scores(tmp_path / "scores", make_params(**STANDARD))


# ------------------------------------------------------------------------------------------------
# Tables 1 and 2, one seed
# ------------------------------------------------------------------------------------------------
def test_table1_per_category_values_and_deltas(built):
    _, _, text, _ = built
    assert text.splitlines()[0].startswith("<!-- Generated by `python -m pipeline.report`")
    assert "dvc repro report" in text.splitlines()[0]
    t1 = rows(section(text, 1))
    assert t1["Category"] == [
        "FRAD ours image / pixel",
        "paper",
        "Δ",
        "PaDiM ours image / pixel",
        "paper",
        "Δ",
        "PatchCore ours image / pixel (not in paper)",
        "RD ours image / pixel",
        "paper",
        "Δ",
    ]
    # FRAD: ours | paper | Δ, cells "image / pixel" like the paper
    assert t1["carpet"][:3] == ["99.1 / 98.8", "100.0 / 99.2", "-0.9 / -0.4"]
    assert t1["bottle"][:3] == ["99.5 / 98.2", "100.0 / 98.9", "-0.5 / -0.7"]
    assert t1["cable"][:3] == ["80.0 / 90.0", "99.2 / 98.3", "-19.2 / -8.3"]
    # the same for every category, recomputed from the inputs and paper.py
    for c in ("carpet", "grid", "bottle"):
        for col, method in ((0, "full"), (3, "padim"), (7, "rd")):
            ours = [pct(v) for v in values_of(method, c)[:2]]
            refs = [paper.category_value(c, m, method) for m in METRICS[:2]]
            assert t1[c][col : col + 3] == [
                " / ".join(ours),
                " / ".join(f"{r:.1f}" for r in refs),
                " / ".join(map(dlt, ours, refs)),
            ], (c, method)
        assert t1[c][6] == " / ".join(pct(v) for v in values_of("patchcore", c)[:2])  # ours only
    # row order: textures, texture average, objects, object average, total
    assert list(t1)[1:] == [
        "carpet",
        "grid",
        "Texture average",
        "bottle",
        "cable",
        "capsule",
        "Object average",
        "Total average",
    ]


def test_comparison_method_columns(built):
    _, _, text, _ = built
    t1, t2 = rows(section(text, 1)), rows(section(text, 2))
    # PaDiM and RD next to the paper's published columns (literal spot checks of the recomputed test above)
    assert t1["carpet"][3:6] == ["99.5 / 98.9", "99.8 / 99.1", "-0.3 / -0.2"]
    assert t1["bottle"][7:10] == ["99.7 / 98.5", "100.0 / 98.7", "-0.3 / -0.2"]
    assert t2["carpet"][3:6] == ["96.0", "96.2", "-0.2"] and t2["bottle"][7:10] == ["96.0", "96.6", "-0.6"]
    # PatchCore: one column, no paper value, no Δ
    assert t1["carpet"][6] == "99.3 / 99.1" and t2["carpet"][6] == "95.0"
    assert t2["Category"][6] == "PatchCore ours PRO (not in paper)"
    assert "PatchCore has no column in the paper" in text
    # a comparison method's group average: its own per-category values, the paper's mean over the same categories
    pad = [paper.category_value(c, "image_auroc", "padim") for c in ("carpet", "grid")]
    ours = pct(statistics.fmean(BASELINES["padim"][c][0] for c in ("carpet", "grid")))
    assert strip_notes(t1["Texture average"][3]).split(" / ")[0] == ours
    assert strip_notes(t1["Texture average"][4]).split(" / ")[0] == f"{statistics.fmean(pad):.1f}"
    assert t1["Texture average"][5].split(" / ")[0] == dlt(ours, statistics.fmean(pad))


def test_table1_undefined_metric_notes_and_partial_averages(built):
    _, _, text, _ = built
    sec = section(text, 1)
    t1, n = rows(sec), notes(sec)
    for col, method in ((0, "full"), (3, "padim"), (6, "patchcore"), (7, "rd")):
        image, pixel = t1["capsule"][col].split(" / ")
        assert image.startswith("n/a [") and pixel == pct(values_of(method, "capsule")[1]), method
        mark, label = image.split(" ")[1], report.METHOD_LABELS[method]
        assert n[mark].startswith(f"{label} on capsule: Image AUROC is undefined") and ANOMALOUS_ONLY in n[mark]
    assert t1["capsule"][1:3] == ["96.1 / 98.5", "— / -3.5"]  # no Δ where ours is undefined

    # Object average of image AUROC: over bottle and cable only (capsule undefined).
    ours, paper_cell, d = t1["Object average"][:3]
    image = ours.split(" / ")[0]
    assert image.split(" ")[0] == pct(defined_mean(FULL[c][0] for c in ("bottle", "cable", "capsule")))
    assert "2 of 3 categories" in n[image.split(" ")[1]] and "capsule" in n[image.split(" ")[1]]
    assert strip_notes(paper_cell) == "98.4 / 98.6"  # the paper's mean over the same three categories (noted)
    # object pixel AUROC: defined everywhere, no note
    assert ours.split(" / ")[1] == pct(statistics.fmean(FULL[c][1] for c in ("bottle", "cable", "capsule")))

    # Texture average over carpet and grid: not the paper's published 99.6 / 97.8 but its mean of the same two
    tex = t1["Texture average"]
    ref = [statistics.fmean(paper.category_value(c, m) for c in ("carpet", "grid")) for m in METRICS[:2]]
    assert strip_notes(tex[1]) == " / ".join(f"{r:.1f}" for r in ref)
    assert n[tex[1].split(" ")[1]].startswith("The paper's mean over the same 2 categories (carpet, grid)")
    ours_tex = [pct(statistics.fmean(FULL[c][i] for c in ("carpet", "grid"))) for i in range(2)]
    assert tex[0] == " / ".join(ours_tex) and tex[2] == " / ".join(map(dlt, ours_tex, ref))

    total = [pct(defined_mean(FULL[c][i] for c in CATS)) for i in range(2)]
    assert strip_notes(t1["Total average"][0]) == " / ".join(total)
    assert "4 of 5 categories" in n[t1["Total average"][0].split(" / ")[0].split(" ")[1]]


def test_table2_pro(built):
    _, _, text, _ = built
    t2 = rows(section(text, 2))
    assert t2["carpet"][:3] == ["96.3", "97.5", "-1.2"]
    assert t2["bottle"][:3] == ["95.0", "96.8", "-1.8"]
    assert t2["capsule"][:3] == ["85.0", "96.2", "-11.2"]
    assert t2["Total average"][0] == pct(statistics.fmean(FULL[c][2] for c in CATS))
    assert t2["Texture average"][1].startswith(f"{statistics.fmean([97.5, 97.6]):.1f} [")  # carpet and grid


def test_best_method_line(built):
    _, _, text, _ = built
    groups = {"textures": ("carpet", "grid"), "objects": ("bottle", "cable", "capsule"), "all": CATS}
    parts = []
    for label, cats in groups.items():
        means = {m: defined_mean(values_of(m, c)[0] for c in cats) for m in ("full", "padim", "patchcore", "rd")}
        best = max(means, key=means.get)
        parts.append(f"{label}: {report.METHOD_LABELS[best]} ({pct(means[best])})")
    line = "Best image AUROC here (mean over seeds): " + "; ".join(parts) + "."
    assert [p.split(" (")[0] for p in parts] == ["textures: RD", "objects: PatchCore", "all: PatchCore"]  # not all FRAD
    assert line in text.splitlines()
    assert text.index(line) < text.index("## Table 2")


def test_textures_are_built_in(tmp_path: Path):
    """carpet counts as a texture without data.textures; data.textures adds other datasets' categories."""
    cases = {"default": {}, "omitted": {"data__textures": DELETE}, "cable": {"data__textures": ["cable"]}}
    for name, dotted in cases.items():
        p = make_params(
            **{
                **STANDARD,
                "data__categories": ["cable", "carpet", "bottle"],
                "ablation__layers": [],
                "compare__methods": [],
                **dotted,
            }
        )
        out = tmp_path / name
        report.build_report(write_all_scores(tmp_path / f"scores_{name}", p), p, out)
        t1 = list(rows(section((out / "tables.md").read_text(), 1)))[1:]
        textures = ["cable", "carpet"] if name == "cable" else ["carpet"]
        objects = [c for c in ("cable", "bottle") if c not in textures]
        assert t1 == [*textures, "Texture average", *objects, "Object average", "Total average"], name
        assert (
            f"Groups — texture: {', '.join(textures)}; object: {', '.join(objects)}." in (out / "tables.md").read_text()
        )


# ------------------------------------------------------------------------------------------------
# Tables 3 and 4, one seed
# ------------------------------------------------------------------------------------------------
def expected_mean_cells(method: str, paper_row: tuple[float | None, ...]) -> list[str]:
    cells = []
    for i, ref in enumerate(paper_row):
        ours = pct(defined_mean(values_of(method, c)[i] for c in CATS))
        cells += [ours, "—", "—"] if ref is None else [ours, f"{ref:.1f}", dlt(ours, ref)]
    return cells


def test_table3_module_ablation(built):
    _, _, text, _ = built
    sec = section(text, 3)
    t3 = rows(sec)
    assert list(t3) == ["Model", "baseline", "GFE only", "shuffle only", "full"]
    assert t3["baseline"][:2] == ["", ""] and t3["GFE only"][:2] == ["✓", ""]
    assert t3["shuffle only"][:2] == ["", "✓"] and t3["full"][:2] == ["✓", "✓"]
    for label, method in (("baseline", "baseline"), ("GFE only", "gfe"), ("shuffle only", "shuffle"), ("full", "full")):
        modules = MODULE_VARIANTS.get(method, (True, True))
        expected = expected_mean_cells(method, paper.module_ablation(*modules).values())
        assert [strip_notes(c) for c in t3[label][2:]] == expected, label
    # literal spot check: baseline image AUROC = mean(0.9712, 0.965, 0.9751, 0.78) = 92.3 %, paper 97.9
    assert t3["baseline"][2:5] == ["92.3 [1]", "97.9", "-5.6"]
    assert "4 of 5 categories" in notes(sec)["[1]"]
    assert "not a like-for-like comparison" in sec  # 5 categories, not the paper's 15
    assert "≈" not in text  # one seed: no spread, nothing is within noise


def test_table4_layer_ablation(built):
    _, _, text, _ = built
    t4 = rows(section(text, 4))
    assert list(t4) == ["Model", "L1", "full (L23)", "L123"]
    assert t4["L1"][:3] == ["✓", "", ""] and t4["full (L23)"][:3] == ["", "✓", "✓"]
    assert t4["L123"][:3] == ["✓", "✓", "✓"]
    for label, method, layers in (("L1", "L1", [1]), ("full (L23)", "full", [2, 3]), ("L123", "L123", [1, 2, 3])):
        expected = expected_mean_cells(method, paper.layer_ablation(layers).values())
        assert [strip_notes(c) for c in t4[label][3:]] == expected, label


def test_layer_set_without_paper_row_and_main_layer_in_ablation(tmp_path: Path):
    p = make_params(**{**STANDARD, "ablation__layers": ["L13", "L23"]})  # L23 = features.layers: its row is `full`
    assert "L23" not in p.methods
    root = write_all_scores(tmp_path / "scores", p)
    report.build_report(root, p, tmp_path / "out")
    t4 = rows(section((tmp_path / "out" / "tables.md").read_text(), 4))
    assert list(t4) == ["Model", "L13", "full (L23)"]  # by size, then layer order
    assert t4["L13"][:3] == ["✓", "", "✓"]
    assert t4["L13"][4:6] == ["—", "—"]  # the paper has no L = {1, 3} row


def test_full_model_without_gfe_compares_with_the_matching_paper_row(tmp_path: Path):
    p = make_params(**STANDARD, model__gfe=False)
    root = write_all_scores(tmp_path / "scores", p)
    for c in CATS:
        for m in ("full", "L1", "L123"):
            write_score(root, c, m, values_of(m, c), extra={"gfe": False})
    report.build_report(root, p, tmp_path / "out")
    text = (tmp_path / "out" / "tables.md").read_text()
    sec3 = section(text, 3)
    t3 = rows(sec3)
    assert t3["full"][:2] == ["", "✓"]
    expected = expected_mean_cells("full", paper.module_ablation(False, True).values())  # the shuffle-only row
    assert [strip_notes(c) for c in t3["full"][2:]] == expected
    label = next(line for line in sec3.splitlines() if line.startswith("| full")).split("|")[1].strip()
    assert label.startswith("full [") and "not the paper's full model" in notes(sec3)[label.split(" ")[1]]
    t4 = rows(section(text, 4))
    assert t4["L1"][4] == "—" and t4["full (L23)"][4] == "—"  # Table 4 is the paper's full model: no comparison


# ------------------------------------------------------------------------------------------------
# Seeds: mean ± sample std, group averages over per-seed means, the ≈ marking
# ------------------------------------------------------------------------------------------------
SEEDS = [1, 0, 2]  # not sorted: the "first seed" is the first listed
SEED_BASE = {"carpet": (0.97, 0.96, 0.93), "cable": (0.85, 0.90, 0.80)}
SEED_SHIFT = {"carpet": (0.0, 0.012, -0.006), "cable": (0.008, -0.004, 0.002)}  # per seed, in SEEDS order
# gfe is inside the seed noise of full, shuffle and baseline outside it (checked against the reference below).
SEED_OFFSETS = {"full": 0.0, "gfe": -0.002, "shuffle": -0.008, "baseline": -0.05, "rd": -0.02, "patchcore": 0.01}


def seed_value(method: str, category: str, seed: int, metric: int) -> float:
    return round(SEED_BASE[category][metric] + SEED_OFFSETS[method] + SEED_SHIFT[category][SEEDS.index(seed)], 10)


def per_seed_means(method: str, cats, metric: int) -> list[float]:
    return [statistics.fmean(seed_value(method, c, s, metric) for c in cats) for s in SEEDS]


def mean_std(values: list[float]) -> str:
    return f"{pct(statistics.fmean(values))}±{100 * statistics.stdev(values):.1f}"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeded")
    p = make_params(
        data__categories=["carpet", "cable"],
        ablation__layers=[],
        compare__methods=["rd", "patchcore"],
        train__seeds=SEEDS,
    )
    for c in p.data.categories:
        for m in p.methods:
            for s in SEEDS:
                write_score(tmp / "scores", c, m, [seed_value(m, c, s, i) for i in range(3)], s)
    curves = write_all_curves(tmp / "curves", p)
    metrics = report.build_report(tmp / "scores", p, tmp / "reports", curves_dir=tmp / "curves")
    return p, metrics, tmp / "reports", (tmp / "reports" / "tables.md").read_text(), curves


def test_seeds_mean_and_sample_std_per_category(seeded):
    _, _, _, text, _ = seeded
    assert "Seeds: 1, 0, 2 (values are mean ± sample standard deviation over seeds)." in text
    t1, t2 = rows(section(text, 1)), rows(section(text, 2))
    for c in ("carpet", "cable"):
        for col, method in ((0, "full"), (3, "rd"), (6, "patchcore")):
            image, pixel, pro = ([seed_value(method, c, s, i) for s in SEEDS] for i in range(3))
            assert t1[c][col] == f"{mean_std(image)} / {mean_std(pixel)}", (c, method)
            assert t2[c][col] == mean_std(pro), (c, method)
    # Δ from the mean as shown: carpet FRAD image 97.2±0.9 vs the paper's 100.0
    ours = t1["carpet"][0].split(" / ")[0]
    assert ours == "97.2±0.9" and t1["carpet"][2].split(" / ")[0] == dlt(ours.split("±")[0], 100.0) == "-2.8"


def test_seeds_group_average_is_std_over_per_seed_means(seeded):
    _, _, _, text, _ = seeded
    t1 = rows(section(text, 1))
    cats = ("carpet", "cable")
    for i in range(2):
        per_seed = per_seed_means("full", cats, i)
        assert t1["Total average"][0].split(" / ")[i] == mean_std(per_seed)
    # the shifts partly cancel between the categories: the average's spread is smaller than each category's
    per_seed = per_seed_means("full", cats, 0)
    spreads = [statistics.stdev(seed_value("full", c, s, 0) for s in SEEDS) for c in cats]
    assert statistics.stdev(per_seed) < min(spreads)
    assert t1["Total average"][0].split(" / ")[0] == "91.2±0.3"


def test_seeds_within_noise_marking(seeded):
    _, _, _, text, _ = seeded
    sec = section(text, 3)
    t3 = rows(sec)
    cats = ("carpet", "cable")

    def inside(method: str, i: int) -> bool:  # reference: |Δmean| ≤ √(σ_full² + σ_method²)
        a, b = per_seed_means(method, cats, i), per_seed_means("full", cats, i)
        return abs(statistics.fmean(a) - statistics.fmean(b)) <= math.hypot(statistics.stdev(a), statistics.stdev(b))

    assert all(inside("gfe", i) for i in range(3))
    assert not any(inside(m, i) for m in ("shuffle", "baseline") for i in range(3))
    for label, method in (("GFE only", "gfe"), ("shuffle only", "shuffle"), ("baseline", "baseline"), ("full", "full")):
        for i in range(3):
            cell = t3[label][2 + 3 * i]
            expected = mean_std(per_seed_means(method, cats, i))
            if method != "full" and inside(method, i):
                assert cell.startswith("≈" + expected + " ["), (label, cell)
                assert "within seed noise" in notes(sec)[cell.split(" ")[1]]
                ref = paper.module_ablation(*MODULE_VARIANTS[method])[METRICS[i]]
                assert t3[label][4 + 3 * i] == dlt(expected.split("±")[0], ref)  # Δ still computed
            else:
                assert cell == expected, (label, cell)


def test_seeds_metrics_json(seeded):
    p, metrics, out, _, _ = seeded
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert set(metrics) == {*ALL_METRICS, "categories", "seeds", "std", "methods"}
    assert metrics["seeds"] == 3 and metrics["categories"] == 2
    cats = ("carpet", "cable")
    for i, m in enumerate(METRICS):
        per_seed = per_seed_means("full", cats, i)
        assert metrics[m] == pytest.approx(statistics.fmean(per_seed), abs=1e-12)
        assert metrics["std"][m] == pytest.approx(statistics.stdev(per_seed), abs=1e-12)
        for b in ("rd", "patchcore"):
            assert metrics["methods"][b][m] == pytest.approx(statistics.fmean(per_seed_means(b, cats, i)), abs=1e-12)
    assert set(metrics["methods"]) == set(p.compare.methods)


def test_seeds_plots_use_the_first_seed(seeded):
    p, _, out, _, curves = seeded
    for name, (x, y) in CURVES.items():
        got = json.loads((out / "plots" / name / "carpet.json").read_text())
        first_seed = [(m, pt) for m in p.methods for pt in curves["carpet", m, 1][name]]
        assert got == [{"method": m, x: pt[x], y: pt[y]} for m, pt in first_seed]


# ------------------------------------------------------------------------------------------------
# metrics.json, figures, plots
# ------------------------------------------------------------------------------------------------
def test_metrics_json(built):
    metrics, out, _, _ = built
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == metrics
    assert set(on_disk) == {*ALL_METRICS, "categories", "seeds", "methods"}  # no std with one seed
    assert on_disk["categories"] == 5 and on_disk["seeds"] == 1
    for i, m in enumerate(METRICS):
        assert on_disk[m] == pytest.approx(defined_mean(FULL[c][i] for c in CATS), abs=1e-12)
        for b in BASELINES:
            assert on_disk["methods"][b][m] == pytest.approx(defined_mean(BASELINES[b][c][i] for c in CATS), abs=1e-12)
    assert list(on_disk["methods"]) == ["padim", "patchcore", "rd"]


def test_metric_undefined_everywhere_is_null(tmp_path: Path):
    p = make_params(data__categories=["capsule"], ablation__layers=[], compare__methods=[], train__seeds=[0])
    root = tmp_path / "scores"
    for m in p.methods:
        write_score(root, "capsule", m, (None, 0.9, 0.8))
    metrics = report.build_report(root, p, tmp_path / "out")
    assert metrics == {
        "image_auroc": None,
        "image_ap": None,
        "image_f1max": None,
        "pixel_auroc": pytest.approx(0.9),
        "pixel_ap": pytest.approx(0.6),
        "pixel_f1max": pytest.approx(0.55),
        "pro": pytest.approx(0.8),
        "categories": 1,
        "seeds": 1,
    }  # no comparison methods: no `methods`
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["image_auroc"] is None
    text = (tmp_path / "out" / "tables.md").read_text()
    sec3 = section(text, 3)
    assert rows(sec3)["full"][2].startswith("n/a [")
    assert f"Image AUROC is undefined (capsule): {ANOMALOUS_ONLY}." in notes(sec3).values()
    assert "Texture average" not in section(text, 1)  # no texture among the categories
    assert "No comparison method selected" in text and "PaDiM" not in section(text, 1)


def test_plots_one_file_per_curve_and_category(built):
    _, out, _, curves = built
    p = make_params(**STANDARD)
    assert sorted(d.name for d in (out / "plots").iterdir()) == sorted(CURVES)
    for name, (x, y) in CURVES.items():
        assert sorted(f.name for f in (out / "plots" / name).iterdir()) == sorted(f"{c}.json" for c in CATS)
        for c in CATS:
            got = json.loads((out / "plots" / name / f"{c}.json").read_text())
            assert [r["method"] for r in got] == [m for m in p.methods for _ in curves[c, m, 0][name]]
            assert got == [{"method": m, x: pt[x], y: pt[y]} for m in p.methods for pt in curves[c, m, 0][name]]
            assert got and all(0.0 <= r[x] <= 1.0 for r in got)


def test_stale_plots_are_removed(scores: Path, tmp_path: Path):
    out = tmp_path / "reports"
    for stale in ("plots/image_roc/old_category.json", "plots/old_curve/x.json"):
        (out / stale).parent.mkdir(parents=True, exist_ok=True)
        (out / stale).write_bytes(b"x")
    p = make_params(**STANDARD)
    write_all_curves(tmp_path / "curves", p)
    report.build_report(scores, p, out, curves_dir=tmp_path / "curves")
    assert sorted(d.name for d in (out / "plots").iterdir()) == sorted(CURVES)
    assert "old_category.json" not in {f.name for f in (out / "plots" / "image_roc").iterdir()}


# ------------------------------------------------------------------------------------------------
# Errors and the entry point
# ------------------------------------------------------------------------------------------------
def test_missing_score_file_is_named_and_nothing_written(scores: Path, tmp_path: Path):
    (scores / "bottle" / "L123" / "seed0.json").unlink()
    (scores / "carpet" / "rd" / "seed0.json").unlink()
    out = tmp_path / "reports"
    with pytest.raises(DataError) as err:
        report.build_report(scores, make_params(**STANDARD), out)
    msg = str(err.value)
    assert str(scores / "bottle" / "L123" / "seed0.json") in msg and "(and 1 more)" in msg
    assert "dvc repro" in msg and "\n" not in msg
    assert not out.exists()


@pytest.mark.parametrize(
    "method, extra, match",
    [
        ("L1", {"layers": [2, 3]}, "layers"),  # an L1 file computed on the main layers
        ("L1", {"image_auroc": 1.7}, "fraction"),
        ("L1", {"pro": float("nan")}, "fraction"),
        ("L1", {"method": "full"}, "method"),
        ("L1", {"seed": 1}, "seed"),
        ("L1", {"category": "grid"}, "category"),
        ("patchcore", {"pixel_auroc": -0.1}, "fraction"),
        ("rd", {"image_auroc": "0.9"}, "fraction"),
    ],
)
def test_bad_score_file(scores: Path, tmp_path: Path, method, extra, match):
    bad = write_score(scores, "carpet", method, values_of(method, "carpet"), extra=extra)
    with pytest.raises(DataError, match=match) as err:
        report.build_report(scores, make_params(**STANDARD), tmp_path / "out")
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "not a readable score file"),
        ("[0.9, 0.9, 0.9]", "expected a JSON object"),
        (json.dumps({"image_auroc": 0.9, "pixel_auroc": 0.9}), "lacks the metric 'pro'"),
    ],
)
def test_unreadable_score_file(scores: Path, tmp_path: Path, content, match):
    (scores / "cable" / "padim" / "seed0.json").write_text(content)
    with pytest.raises(DataError, match=match):
        report.build_report(scores, make_params(**STANDARD), tmp_path / "out")


def test_module_flags_checked(scores: Path, tmp_path: Path):
    p = make_params(**STANDARD)
    write_score(scores, "carpet", "gfe", values_of("gfe", "carpet"), extra={"ssl": True})
    with pytest.raises(DataError, match="gfe=True, ssl=True"):
        report.build_report(scores, p, tmp_path / "out")
    write_score(scores, "carpet", "gfe", values_of("gfe", "carpet"))
    write_score(scores, "bottle", "full", values_of("full", "bottle"), extra={"gfe": False})  # others say gfe=True
    with pytest.raises(DataError, match="full score files disagree on gfe/ssl"):
        report.build_report(scores, p, tmp_path / "out")


def test_bad_curves_file_is_named_and_nothing_written(scores: Path, tmp_path: Path):
    p = make_params(**STANDARD)
    curves = tmp_path / "curves"
    write_all_curves(curves, p)
    for content, match in (("[]", "not a curves file"), ("{oops", "not a readable curves file")):
        (curves / "grid" / "rd" / "seed0.json").write_text(content)
        with pytest.raises(DataError, match=match) as err:
            report.build_report(scores, p, tmp_path / "out", curves_dir=curves)
        assert str(curves / "grid" / "rd" / "seed0.json") in str(err.value)
        assert not (tmp_path / "out").exists()


def test_bad_curves_file_leaves_the_previous_report(scores: Path, tmp_path: Path):
    p = make_params(**STANDARD)
    write_all_curves(tmp_path / "curves", p)
    out = tmp_path / "out"
    previous = {"tables.md": b"old", "metrics.json": b"{}", "plots/pro/carpet.json": b"[]"}
    for name, content in previous.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(content)
    (tmp_path / "curves" / "grid" / "full" / "seed0.json").write_text("{oops")
    with pytest.raises(DataError, match="seed0.json is not a readable curves file"):
        report.build_report(scores, p, out, curves_dir=tmp_path / "curves")
    assert {str(f.relative_to(out)): f.read_bytes() for f in out.rglob("*") if f.is_file()} == previous
    assert sorted(f.name for f in out.iterdir()) == ["metrics.json", "plots", "tables.md"]  # no temporaries


@pytest.mark.parametrize(
    "dotted, match",
    [
        ({"ablation__layers": ["X1"]}, "ablation.layers"),
        ({"ablation__layers": ["L11"]}, "ablation.layers"),
        ({"features__layers": []}, "features.layers"),
        ({"data__categories": ["a", "a"]}, "more than once"),
        ({"train__seeds": [0, 0]}, "train.seeds lists seed 0 more than once"),
        ({"compare__methods": ["padin"]}, "did you mean padim"),
    ],
)
def test_bad_params(dotted, match, tmp_path: Path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(changed(**dotted)))
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=match) as err:
        report.run(["--params", str(params_file), "--scores", str(tmp_path), "--out", str(out)])
    assert "\n" not in str(err.value) and not out.exists()


BENCH = """# frad speed benchmark

- date: 2026-11-27 00:00 UTC

| stage | variant | throughput |
|---|---|---|
| ceiling | fp32 matmul 2048×2048 | 0.150 TFLOP/s |
| backbone | fp32, eager, NCHW (naive) | 2.92 img/s |
| backbone | fp32, channels_last ← fast path | 5.16 img/s |
| training | full model, batch 16 | 3.77 samples/s |
| scoring | backbone + reconstruction | 4.02 img/s |
| metrics | pixel AUROC (exact) | 980 maps/s |
| metrics | AU-PRO + pixel AUROC | 585 maps/s |

- Backbone rows: best of 2.
"""


def test_speed_section_summarises_the_benchmark(scores: Path, tmp_path: Path):
    p = make_params(**STANDARD)
    bench = tmp_path / "benchmark.md"
    bench.write_text(BENCH)
    report.build_report(scores, p, tmp_path / "out", bench)
    text = (tmp_path / "out" / "tables.md").read_text()
    assert text.index("## Table 4") < text.index("## Speed")
    speed = text.split("## Speed")[1]
    assert "[`benchmark.md`](benchmark.md)" in speed and "2026-11-27 00:00 UTC" in speed
    table = [line for line in speed.splitlines() if line.startswith("|")]
    headline = ("| stage", "|---", "fast path", "| training", "| scoring", "AU-PRO +")
    expected = [line for line in BENCH.splitlines() if line.startswith("|") and any(k in line for k in headline)]
    assert table == ["|" + "|".join(line.split("|")[1:5]) + "|" for line in expected]  # stage, variant, rate, time
    assert len(table) == 6 and "ceiling" not in speed and "(naive)" not in speed and "(exact)" not in speed
    assert "Backbone rows" not in speed

    report.build_report(scores, p, tmp_path / "none", tmp_path / "missing.md")
    text = (tmp_path / "none" / "tables.md").read_text()
    assert "No benchmark run recorded" in text and "python -m bench" in text and "missing.md" in text

    bench.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="benchmark.md: cannot read the benchmark table"):
        report.build_report(scores, p, tmp_path / "bad", bench)
    assert not (tmp_path / "bad").exists()  # nothing written


def test_run_and_command_line(scores: Path, tmp_path: Path):
    p = make_params(**STANDARD)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(changed(**STANDARD)))
    write_all_curves(tmp_path / "curves", p)
    out = tmp_path / "reports"
    args = [
        "--params",
        str(params_file),
        "--scores",
        str(scores),
        "--curves",
        str(tmp_path / "curves"),
        "--out",
        str(out),
        "--benchmark",
        str(tmp_path / "none.md"),
    ]
    metrics = report.run(args)
    assert metrics == json.loads((out / "metrics.json").read_text())
    first = {f: f.read_bytes() for f in out.rglob("*") if f.is_file()}
    report.run(args)
    assert {f: f.read_bytes() for f in out.rglob("*") if f.is_file()} == first  # deterministic

    with pytest.raises(ConfigError, match="not found"):
        report.run(["--params", str(tmp_path / "nope.yaml")])

    (scores / "cable" / "full" / "seed0.json").unlink()
    out2 = tmp_path / "reports2"
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "OMP_NUM_THREADS": str(THREADS)}
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.report", *args[:-4], "--out", str(out2)],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: missing score file") and "cable" in err[0], proc.stderr
    assert not out2.exists()


def test_all_paper_categories_at_paper_values(tmp_path: Path):
    """Our scores equal to the paper's: Δ = 0 per category, averages compared with the published values."""
    p = make_params(data__categories=list(paper.CATEGORIES), ablation__layers=[], compare__methods=["padim", "rd"])
    root = tmp_path / "scores"
    for c in paper.CATEGORIES:
        for m in p.methods:
            method = m if m in paper.IN_PAPER else "full"
            write_score(root, c, m, tuple(paper.category_value(c, k, method) / 100 for k in METRICS))
    report.build_report(root, p, tmp_path / "out")
    text = (tmp_path / "out" / "tables.md").read_text()
    t1, t2 = rows(section(text, 1)), rows(section(text, 2))
    for c in paper.CATEGORIES:
        for col in (2, 5, 8):  # FRAD, PaDiM, RD Δ
            assert t1[c][col] == "+0.0 / +0.0" and t2[c][col] == "+0.0", (c, col)
    for label, group in (("Texture average", "texture"), ("Object average", "object"), ("Total average", "total")):
        for col, method in ((1, "full"), (4, "padim"), (7, "rd")):
            published = [paper.average_value(group, m, method) for m in METRICS]
            assert t1[label][col] == f"{published[0]:.1f} / {published[1]:.1f}", (label, method)
            assert t2[label][col] == f"{published[2]:.1f}", (label, method)
            ours = t1[label][col - 1].split(" / ") + [t2[label][col - 1]]
            deltas = t1[label][col + 1].split(" / ") + [t2[label][col + 1]]
            for i, m in enumerate(METRICS):  # ours = the mean of the per-category values: Δ is rounding only
                per_category = [paper.category_value(c, m, method) / 100 for c in paper.GROUPS[group]]
                assert ours[i] == pct(statistics.fmean(per_category))
                assert deltas[i] == dlt(ours[i], published[i]) and abs(float(deltas[i])) <= 0.1, (label, method, m)
    assert "[" not in section(text, 1)  # no notes needed
    assert "like-for-like" not in section(text, 3)
    assert "Groups — texture: carpet, grid, leather, tile, wood;" in text  # built in, data.textures is empty


# ------------------------------------------------------------------------------------------------
# pipeline.paper: transcription against the paper's text, and internal consistency
# ------------------------------------------------------------------------------------------------
def test_paper_spot_checks():
    assert paper.TABLE1["bottle"] == (100.0, 98.9)
    assert paper.TABLE1["capsule"] == (96.1, 98.5) and paper.TABLE1["hazelnut"] == (100.0, 99.2)
    assert paper.TABLE1["toothbrush"] == (93.3, 99.1)
    assert paper.TABLE1_AVERAGES["total"] == (98.7, 98.3)
    assert paper.TABLE2["metal_nut"] == 88.0 and paper.TABLE2["transistor"] == 87.8
    assert paper.TABLE2_AVERAGES["total"] == 94.6
    assert paper.TABLE1_OTHERS["padim"]["transistor"] == (97.4, 97.5)
    assert paper.TABLE1_OTHERS["rd"]["screw"] == (97.0, 99.6)
    assert paper.TABLE2_OTHERS["padim"]["tile"] == 86.0 and paper.TABLE2_OTHERS["rd"]["transistor"] == 78.0
    assert paper.TABLE1_OTHERS_AVERAGES["rd"]["total"] == (98.5, 97.8)
    assert paper.TABLE2_OTHERS_AVERAGES["padim"]["total"] == 92.1
    assert paper.module_ablation(True, True) == {"image_auroc": 98.7, "pixel_auroc": 98.3, "pro": 94.6}
    assert paper.module_ablation(False, False) == {"image_auroc": 97.9, "pixel_auroc": 97.6, "pro": 93.8}
    assert paper.layer_ablation([1]) == {"image_auroc": 88.1, "pixel_auroc": 95.7, "pro": 89.1}
    assert paper.layer_ablation((3, 2)) == paper.module_ablation(True, True)  # the standard configuration
    assert paper.layer_ablation([1, 3]) is None
    assert paper.category_value("widget", "pro") is None and paper.category_value("widget", "pro", "rd") is None
    assert paper.category_value("bottle", "pro", "patchcore") is None  # not in the paper
    assert paper.average_value("total", "image_auroc", "patchcore") is None


def test_paper_tables_cover_the_mvtec_categories():
    assert len(paper.CATEGORIES) == 15 and not set(paper.TEXTURES) & set(paper.OBJECTS)
    assert set(paper.TABLE1) == set(paper.TABLE2) == set(paper.CATEGORIES)
    assert "capsure" not in paper.TABLE1 and "hazel_nut" not in paper.TABLE1
    assert set(paper.TABLE1_OTHERS) == set(paper.TABLE2_OTHERS) == set(paper.IN_PAPER) - {"full"}
    for method in paper.TABLE1_OTHERS:
        assert set(paper.TABLE1_OTHERS[method]) == set(paper.TABLE2_OTHERS[method]) == set(paper.CATEGORIES)


@pytest.mark.parametrize("method", paper.IN_PAPER)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("group", ["texture", "object", "total"])
def test_paper_averages_match_their_categories(group, metric, method):
    """Each published average is the mean of the published per-category values, to rounding."""
    cats = paper.GROUPS[group]
    computed = math.fsum(paper.category_value(c, metric, method) for c in cats) / len(cats)
    assert abs(computed - paper.average_value(group, metric, method)) <= 0.05 + 1e-9


def _paper_table(text: str, start: str, end: str) -> dict[str, dict[str, str]]:
    """{column: {row: cell}} of a tab-separated table of the paper's text, markup removed."""
    lines = [line for line in text.split(start)[1].split(end)[0].splitlines() if "\t" in line]

    def clean(s: str) -> str:
        return s.replace("<u>", "").replace("</u>", "").replace(" ", "")

    header = [h.split("^")[0].strip() for h in lines[0].split("\t")]
    names = {"capsure": "capsule", "hazel_nut": "hazelnut", "TotalAverage": "total"}
    out: dict[str, dict[str, str]] = {h: {} for h in header[1:]}
    averages = iter(("texture", "object"))
    for line in lines[1:]:
        first, *cells = [clean(c) for c in line.split("\t")]
        row = next(averages) if first == "Average" else names.get(first, first)
        for h, cell in zip(header[1:], cells):
            out[h][row] = cell
    return out


def test_paper_transcription_matches_the_paper_text():
    if not PAPER_TEXT.is_file():
        pytest.skip(f"the paper's text is not at {PAPER_TEXT} (../shared is absent)")
    text = PAPER_TEXT.read_text(encoding="utf-8")
    t1 = _paper_table(text, "Table 1 AUROC scores", "表 2")
    t2 = _paper_table(text, "Table 2 PRO scores", "文提出")
    for column, method in (("Ours", "full"), ("Padim", "padim"), ("RD", "rd")):
        assert set(t1[column]) == set(t2[column]) == {*paper.CATEGORIES, "texture", "object", "total"}
        for row, cell in t1[column].items():
            image, pixel = (float(v) for v in cell.split("/"))
            get = paper.category_value if row in paper.CATEGORIES else paper.average_value
            assert (get(row, "image_auroc", method), get(row, "pixel_auroc", method)) == (image, pixel), (method, row)
            assert get(row, "pro", method) == float(t2[column][row]), (method, row)


# ------------------------------------------------------------------------------------------------
# The paper's column only beside the paper's data
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "case, dotted, title, first",
    [
        (
            "synthetic",
            {"data__source": "synthetic", "data__categories": ["tile", "bottle"]},
            "# FRAD on synthetic data (no paper column)",
            "Synthetic data drawn by the pipeline's generator (frad.datasets.synthetic: seed 0;",
        ),
        (
            "mvtec_folder",
            {"data__source": "folder", "data__root": "/data/mvtec", "data__categories": ["carpet", "bottle"]},
            "# FRAD on MVTec AD: our results next to the paper's",
            "MVTec AD (Bergmann, Fauser, Sattlegger, Steger",
        ),
        (
            "own_folder",
            {
                "data__source": "folder",
                "data__dataset": "custom",
                "data__root": "/data/mine",
                "data__categories": ["tile", "bottle"],
            },
            "# FRAD on your own data (no paper column)",
            "Your own data from the folder /data/mine, 2 categories: tile, bottle.",
        ),
        (
            "visa",
            {"data__dataset": "visa", "data__categories": ["capsules", "pcb1"]},
            "# FRAD on VisA (no paper column)",
            "VisA (Zou, Jeong, Pemula, Zhang, Dabeer",
        ),
    ],
)
def test_the_paper_column_stands_only_beside_the_papers_data(tmp_path, case, dotted, title, first):
    """Synthetic drawings, another dataset and a folder not declared MVTec AD (even one that reuses MVTec AD's
    category names) get no paper column, no Δ and no ∈ mark; a folder declared MVTec AD keeps them."""
    p = make_params(**{**STANDARD, "ablation__layers": ["L1"], "bootstrap__resamples": 0, **dotted})
    out = tmp_path / "out"
    for c, like in zip(p.data.categories, ("carpet", "bottle")):  # VisA's categories take these values
        for m in p.methods:
            write_score(tmp_path / "scores", c, m, values_of(m, like), 0)
    report.build_report(tmp_path / "scores", p, out)
    text = (out / "tables.md").read_text()
    lines = text.splitlines()
    assert lines[2] == title and lines[4].startswith(first)
    tables = "\n".join(section(text, n) for n in (1, 2, 3, 4))
    with_paper = case == "mvtec_folder"
    assert bool(re.search(r"\|\s+paper\s+\|", tables)) == with_paper and ("Δ" in tables) == with_paper
    assert ("not in paper" in tables) == with_paper
    if with_paper:
        assert "declared MVTec AD" in lines[4] and rows(section(text, 1))["carpet"][1] == "100.0 / 99.2"
    else:
        assert set(len(r) for r in rows(section(text, 1)).values()) == {4}  # FRAD + 3 comparison methods, nothing else
        assert "Δ" not in text and "∈" not in text
    if case == "synthetic":
        assert "not a result" in lines[4]
