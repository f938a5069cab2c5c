"""Tests for pipeline.report (tables, metrics, figures, errors) and pipeline.paper (transcription)."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from frad.errors import ConfigError, DataError
from pipeline import paper, report

METRICS = ("image_auroc", "pixel_auroc", "pro")
ANOMALOUS_ONLY = "all test images are anomalous: image AUROC is undefined"

# Full-model metrics per category: carpet = texture, bottle = object, widget / blank = objects the
# paper does not have; blank's image AUROC is undefined (every test image is defective).
FULL = {
    "carpet": (0.9912, 0.9876, 0.9634),
    "bottle": (0.9951, 0.9823, 0.9502),
    "widget": (0.8000, 0.9000, 0.7000),
    "blank": (None, 0.9500, 0.8500),
}
# Other variants: the full values shifted by a constant (keeps the expected averages easy to derive).
OFFSETS = {"full": 0.0, "baseline": -0.02, "gfe": -0.01, "shuffle": -0.015, "L1": -0.1, "L123": -0.03}
LAYERS = {"full": [2, 3], "baseline": [2, 3], "gfe": [2, 3], "shuffle": [2, 3], "L1": [1], "L123": [1, 2, 3]}
MODULES = {"baseline": (False, False), "gfe": (True, False), "shuffle": (False, True)}
PARAMS = {
    "data": {"categories": list(FULL), "textures": ["carpet"]},
    "features": {"layers": [2, 3]},
    "ablation": {"layers": ["L1", "L123"]},
}


def variant_values(variant: str, category: str) -> tuple[float | None, ...]:
    return tuple(None if v is None else v + OFFSETS[variant] for v in FULL[category])


def write_score(scores: Path, category: str, variant: str, values, extra: dict | None = None) -> Path:
    """One score file as the score stage writes it; ``extra`` overrides fields."""
    gfe, ssl = MODULES.get(variant, (True, True))
    doc = {
        "category": category, "variant": variant, "layers": LAYERS.get(variant, [2, 3]), "gfe": gfe, "ssl": ssl,
        **dict(zip(METRICS, values)),
        "undefined": {m: ANOMALOUS_ONLY for m, v in zip(METRICS, values) if v is None},
        "n_test": 10, "n_defect": 10, "names": [], "labels": [], "image_scores": [],
    }
    doc.update(extra or {})
    path = scores / category / f"{variant}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def write_maps(scores: Path, category: str, k: int = 2, size: int = 16) -> None:
    rng = np.random.default_rng(0)
    masks = np.zeros((k, size, size), bool)
    masks[:, 4:9, 5:11] = True
    np.savez_compressed(
        scores / category / "full_maps.npz",
        names=np.array([f"defect/{i:03d}" for i in range(k)]),
        images=rng.integers(0, 256, (k, size, size, 3), dtype=np.uint8),
        maps=(rng.random((k, size, size)) + masks).astype(np.float16),
        masks=masks,
    )


def make_scores(root: Path) -> Path:
    for category in FULL:
        for variant in OFFSETS:
            write_score(root, category, variant, variant_values(variant, category))
    return root


@pytest.fixture
def scores(tmp_path: Path) -> Path:
    """Score files of every (category, variant), no maps (figures are slow to draw)."""
    return make_scores(tmp_path / "scores")


def section(text: str, n: int) -> str:
    """The text of '## Table n' up to the next table."""
    return text.split(f"## Table {n} ")[1].split("## Table ")[0].split("\n## ")[0]


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
    return {line[2:].split(" ", 1)[0]: line[2:].split(" ", 1)[1] for line in text.splitlines() if line.startswith("- [")}


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def mean(values) -> float:
    values = [v for v in values if v is not None]
    return sum(values) / len(values)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The report of the standard fake scores (maps for carpet only), built once for the read-only tests."""
    tmp = tmp_path_factory.mktemp("built")
    root = make_scores(tmp / "scores")
    write_maps(root, "carpet")
    params = copy.deepcopy(PARAMS)
    metrics = report.build_report(root, params, tmp / "reports")
    assert params == PARAMS  # not modified
    return metrics, tmp / "reports", (tmp / "reports" / "tables.md").read_text()


# ------------------------------------------------------------------------------------------------
# Table 1 and 2
# ------------------------------------------------------------------------------------------------
def test_table1_per_category_values_and_deltas(built):
    _, _, text = built
    assert text.splitlines()[0].startswith("<!-- Generated by `python -m pipeline.report`")
    assert "dvc repro report" in text.splitlines()[0]
    t1 = rows(section(text, 1))
    # ours | paper | Δ for image AUROC, then for pixel AUROC
    assert t1["carpet"] == ["99.1", "100.0", "-0.9", "98.8", "99.2", "-0.4"]
    assert t1["bottle"] == ["99.5", "100.0", "-0.5", "98.2", "98.9", "-0.7"]
    assert t1["widget"] == ["80.0", "—", "—", "90.0", "—", "—"]  # not in the paper
    assert t1["blank"][0].startswith("n/a [") and t1["blank"][1:3] == ["—", "—"]
    assert t1["blank"][3] == "95.0"
    # row order: textures, texture average, objects, object average, total
    assert list(t1)[1:] == ["carpet", "Texture average", "bottle", "widget", "blank", "Object average", "Total average"]


def test_table1_undefined_metric_note_and_averages(built):
    _, _, text = built
    sec = section(text, 1)
    t1, n = rows(sec), notes(sec)
    blank_mark = t1["blank"][0].split(" ")[1]
    assert "blank" in n[blank_mark] and ANOMALOUS_ONLY in n[blank_mark]

    # Object average of image AUROC: over bottle and widget only (blank undefined), paper "—" (widget).
    obj_image = mean([FULL["bottle"][0], FULL["widget"][0]])
    ours, paper_cell, d = t1["Object average"][:3]
    assert ours.split(" ")[0] == pct(obj_image) == "89.8"
    assert "2 of 3 categories" in n[ours.split(" ")[1]] and "blank" in n[ours.split(" ")[1]]
    assert paper_cell.startswith("—") and "widget" in n[paper_cell.split(" ")[1]] and d == "—"
    # Object pixel AUROC: all three defined, no note
    assert t1["Object average"][3] == pct(mean([FULL[c][1] for c in ("bottle", "widget", "blank")]))

    # Texture average = carpet alone: the paper's value is recomputed over carpet (100.0 / 99.2), not 99.6 / 97.8.
    tex = t1["Texture average"]
    assert tex[0] == "99.1" and tex[1].startswith("100.0 [") and tex[2] == "-0.9"
    assert n[tex[1].split(" ")[1]].startswith("The paper's mean Image AUROC over the same 1 category (carpet)")
    assert tex[3:] == ["98.8", tex[4], "-0.4"] and tex[4].startswith("99.2 [")

    total_image = mean([FULL[c][0] for c in FULL])
    total_pixel = mean([FULL[c][1] for c in FULL])
    assert t1["Total average"][0].split(" ")[0] == pct(total_image) == "92.9"
    assert t1["Total average"][3] == pct(total_pixel)


def test_table2_pro(built):
    _, _, text = built
    t2 = rows(section(text, 2))
    assert t2["carpet"] == ["96.3", "97.5", "-1.2"]
    assert t2["bottle"] == ["95.0", "96.8", "-1.8"]
    assert t2["blank"] == ["85.0", "—", "—"]
    assert t2["Total average"][0] == pct(mean([FULL[c][2] for c in FULL]))
    assert t2["Texture average"][1].startswith("97.5 [")  # recomputed over carpet


# ------------------------------------------------------------------------------------------------
# Table 3 and 4
# ------------------------------------------------------------------------------------------------
def expected_mean_cells(variant: str, paper_row: tuple[float, float, float]) -> list[str]:
    cells = []
    for i, ref in enumerate(paper_row):
        ours = pct(mean([variant_values(variant, c)[i] for c in FULL]))
        d = round(float(ours) - ref, 1) + 0.0
        cells += [ours, f"{ref:.1f}", f"{d:+.1f}"]
    return cells


def strip_notes(cells: list[str]) -> list[str]:
    return [c.split(" [")[0] for c in cells]


def test_table3_module_ablation(built):
    _, _, text = built
    sec = section(text, 3)
    t3 = rows(sec)
    assert list(t3) == ["Model", "baseline", "GFE only", "shuffle only", "full"]
    assert t3["baseline"][:2] == ["", ""] and t3["GFE only"][:2] == ["✓", ""]
    assert t3["shuffle only"][:2] == ["", "✓"] and t3["full"][:2] == ["✓", "✓"]
    assert strip_notes(t3["baseline"][2:]) == expected_mean_cells("baseline", (97.9, 97.6, 93.8))
    assert strip_notes(t3["full"][2:]) == expected_mean_cells("full", (98.7, 98.3, 94.6))
    # literal spot check: baseline image AUROC = mean(0.9712, 0.9751, 0.78) = 90.9 %, paper 97.9
    assert t3["baseline"][2:5] == ["90.9 [1]", "97.9", "-7.0"]
    assert "3 of 4 categories" in notes(sec)["[1]"]
    assert "not a like-for-like comparison" in sec  # 4 categories, not the paper's 15


def test_table4_layer_ablation(built):
    _, _, text = built
    t4 = rows(section(text, 4))
    assert list(t4) == ["Model", "L1", "full (L23)", "L123"]
    assert t4["L1"][:3] == ["✓", "", ""] and t4["full (L23)"][:3] == ["", "✓", "✓"]
    assert t4["L123"][:3] == ["✓", "✓", "✓"]
    assert strip_notes(t4["L1"][3:]) == expected_mean_cells("L1", (88.1, 95.7, 89.1))
    assert strip_notes(t4["full (L23)"][3:]) == expected_mean_cells("full", (98.7, 98.3, 94.6))
    assert strip_notes(t4["L123"][3:]) == expected_mean_cells("L123", (95.2, 97.4, 92.8))


def test_layer_set_without_paper_row_and_main_layer_in_ablation(scores: Path, tmp_path: Path):
    params = copy.deepcopy(PARAMS)
    params["ablation"]["layers"] = ["L13", "L23"]  # L23 = features.layers: its row is `full`, no L23.json needed
    for c in FULL:
        write_score(scores, c, "L13", variant_values("L1", c), {"layers": [1, 3]})
    report.build_report(scores, params, tmp_path / "out")
    t4 = rows(section((tmp_path / "out" / "tables.md").read_text(), 4))
    assert list(t4) == ["Model", "L13", "full (L23)"]  # by size, then layer order
    assert t4["L13"][:3] == ["✓", "", "✓"]
    assert t4["L13"][4:6] == ["—", "—"]  # the paper has no L = {1, 3} row


def test_full_model_without_gfe_compares_with_the_matching_paper_row(scores: Path, tmp_path: Path):
    for c in FULL:
        for v in ("full", "L1", "L123"):
            write_score(scores, c, v, variant_values(v, c), {"gfe": False})
    report.build_report(scores, PARAMS, tmp_path / "out")
    text = (tmp_path / "out" / "tables.md").read_text()
    t3 = rows(section(text, 3))
    assert t3["full"][:2] == ["", "✓"]
    assert strip_notes(t3["full"][2:]) == expected_mean_cells("full", (97.6, 98.0, 94.1))  # the shuffle-only row
    t4 = rows(section(text, 4))
    assert t4["L1"][4] == "—"  # Table 4 is the paper's full model: no comparison


# ------------------------------------------------------------------------------------------------
# metrics.json and figures
# ------------------------------------------------------------------------------------------------
def test_metrics_json(built):
    metrics, out, _ = built
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == metrics
    assert set(on_disk) == {"image_auroc", "pixel_auroc", "pro", "categories"}
    assert on_disk["categories"] == 4
    assert on_disk["image_auroc"] == pytest.approx((0.9912 + 0.9951 + 0.8) / 3, abs=1e-12)
    assert on_disk["pixel_auroc"] == pytest.approx((0.9876 + 0.9823 + 0.9 + 0.95) / 4, abs=1e-12)
    assert on_disk["pro"] == pytest.approx((0.9634 + 0.9502 + 0.7 + 0.85) / 4, abs=1e-12)


def test_metric_undefined_everywhere_is_null(tmp_path: Path):
    root = tmp_path / "scores"
    params = {"data": {"categories": ["blank"], "textures": []}, "features": {"layers": [2, 3]}, "ablation": {"layers": []}}
    for v in ("full", "baseline", "gfe", "shuffle"):
        write_score(root, "blank", v, (None, 0.9, 0.8))
    metrics = report.build_report(root, params, tmp_path / "out")
    assert metrics == {"image_auroc": None, "pixel_auroc": pytest.approx(0.9), "pro": pytest.approx(0.8), "categories": 1}
    text = (tmp_path / "out" / "tables.md").read_text()
    assert "Image AUROC is undefined for every category" in text
    assert "Texture average" not in section(text, 1)  # no texture among the categories
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["image_auroc"] is None


def test_figures(built):
    _, out, _ = built
    png = out / "figures" / "carpet.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    assert imread(png).shape[0] > imread(png).shape[1] // 2  # 2 rows of 3 panels
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["carpet.png"]  # no maps, no figure


def test_stale_figures_are_removed(scores: Path, tmp_path: Path):
    out = tmp_path / "reports"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "old_category.png").write_bytes(b"x")
    write_maps(scores, "bottle")
    report.build_report(scores, PARAMS, out)
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["bottle.png"]


# ------------------------------------------------------------------------------------------------
# Errors and the entry point
# ------------------------------------------------------------------------------------------------
def test_missing_score_file_is_named_and_nothing_written(scores: Path, tmp_path: Path):
    (scores / "bottle" / "L123.json").unlink()
    out = tmp_path / "reports"
    with pytest.raises(DataError) as err:
        report.build_report(scores, PARAMS, out)
    msg = str(err.value)
    assert str(scores / "bottle" / "L123.json") in msg and "dvc repro" in msg and "\n" not in msg
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"layers": [2, 3]}, "layers"),  # an L1 file computed on the main layers
        ({"image_auroc": 1.7}, "fraction"),
        ({"pro": float("nan")}, "fraction"),
        ({"variant": "full"}, "variant"),
    ],
)
def test_bad_score_file(scores: Path, tmp_path: Path, extra, match):
    write_score(scores, "carpet", "L1", variant_values("L1", "carpet"), extra)
    with pytest.raises(DataError, match=match):
        report.build_report(scores, PARAMS, tmp_path / "out")


def test_module_flags_checked(scores: Path, tmp_path: Path):
    write_score(scores, "carpet", "gfe", variant_values("gfe", "carpet"), {"ssl": True})
    with pytest.raises(DataError, match="gfe=True, ssl=True"):
        report.build_report(scores, PARAMS, tmp_path / "out")


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("ablation", {"layers": ["X1"]}, "ablation.layers"),
        ("ablation", {"layers": ["L11"]}, "ablation.layers"),
        ("features", {"layers": []}, "features.layers"),
        ("data", {"categories": ["a", "a"], "textures": []}, "more than once"),
        ("data", {"categories": ["a"]}, "data.textures is missing"),
    ],
)
def test_bad_params(key, value, match, tmp_path: Path):
    params = copy.deepcopy(PARAMS)
    params[key] = value
    with pytest.raises(ConfigError, match=match):
        report.build_report(tmp_path, params, tmp_path / "out")


def test_speed_section_is_the_latest_benchmark_table(scores: Path, tmp_path: Path):
    bench = tmp_path / "benchmark.md"
    bench.write_text("# frad speed benchmark\n\n- date: 2026-11-27\n\n| stage | throughput |\n|---|---|\n"
                     "| backbone | 3.22 img/s |\n\n## detail\n- a note\n")
    report.build_report(scores, PARAMS, tmp_path / "out", bench)
    text = (tmp_path / "out" / "tables.md").read_text()
    speed = text.split("## Speed — the latest `python -m frad.bench` run")[1]
    assert "| backbone | 3.22 img/s |" in speed and "- date: 2026-11-27" in speed and f"From `{bench}`." in speed
    assert "### detail" in speed and "# frad speed benchmark" not in text  # headings nest under Speed
    assert text.index("## Table 4") < text.index("## Speed")

    report.build_report(scores, PARAMS, tmp_path / "none", tmp_path / "missing.md")
    text = (tmp_path / "none" / "tables.md").read_text()
    assert "No benchmark run recorded" in text and "python -m frad.bench" in text

    bench.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="benchmark.md: cannot read the benchmark table"):
        report.build_report(scores, PARAMS, tmp_path / "bad", bench)
    assert not (tmp_path / "bad").exists()  # nothing written


def test_main(scores: Path, tmp_path: Path, capsys):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({**PARAMS, "train": {"epochs": 1}}))  # other keys are ignored
    out = tmp_path / "reports"
    args = ["--params", str(params_file), "--scores", str(scores), "--out", str(out)]
    assert report.main(args) == 0
    first = (out / "tables.md").read_bytes()
    assert report.main(args) == 0
    assert (out / "tables.md").read_bytes() == first  # deterministic

    (scores / "widget" / "full.json").unlink()
    assert report.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: missing score file") and "widget" in err[0]

    assert report.main(["--params", str(tmp_path / "nope.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_all_paper_categories_at_paper_values(tmp_path: Path):
    """Our scores equal to the paper's: Δ = 0 per category, averages show the published values."""
    root = tmp_path / "scores"
    params = {
        "data": {"categories": list(paper.CATEGORIES), "textures": list(paper.TEXTURES)},
        "features": {"layers": [2, 3]},
        "ablation": {"layers": []},
    }
    for c in paper.CATEGORIES:
        values = tuple(paper.category_value(c, m) / 100 for m in METRICS)
        for v in ("full", "baseline", "gfe", "shuffle"):
            write_score(root, c, v, values)
    report.build_report(root, params, tmp_path / "out")
    text = (tmp_path / "out" / "tables.md").read_text()
    t1, t2 = rows(section(text, 1)), rows(section(text, 2))
    for c in paper.CATEGORIES:
        assert t1[c][2] == t1[c][5] == t2[c][2] == "+0.0"
    assert t1["Total average"][1] == "98.7" and t1["Total average"][4] == "98.3"
    assert t1["Texture average"][1] == "99.6" and t1["Object average"][4] == "98.5"
    assert t2["Total average"][1] == "94.6"
    assert "[" not in section(text, 1)  # no notes needed
    assert "like-for-like" not in section(text, 3)


# ------------------------------------------------------------------------------------------------
# pipeline.paper: transcription spot checks against the paper's text, and internal consistency
# ------------------------------------------------------------------------------------------------
def test_paper_spot_checks():
    assert paper.TABLE1["bottle"] == (100.0, 98.9)
    assert paper.TABLE1["capsule"] == (96.1, 98.5) and paper.TABLE1["hazelnut"] == (100.0, 99.2)
    assert paper.TABLE1["toothbrush"] == (93.3, 99.1)
    assert paper.TABLE1_AVERAGES["total"] == (98.7, 98.3)
    assert paper.TABLE2["metal_nut"] == 88.0 and paper.TABLE2["transistor"] == 87.8
    assert paper.TABLE2_AVERAGES["total"] == 94.6
    assert paper.module_ablation(True, True) == {"image_auroc": 98.7, "pixel_auroc": 98.3, "pro": 94.6}
    assert paper.module_ablation(False, False) == {"image_auroc": 97.9, "pixel_auroc": 97.6, "pro": 93.8}
    assert paper.layer_ablation([1]) == {"image_auroc": 88.1, "pixel_auroc": 95.7, "pro": 89.1}
    assert paper.layer_ablation((3, 2)) == paper.module_ablation(True, True)  # the standard configuration
    assert paper.layer_ablation([1, 3]) is None
    assert paper.category_value("widget", "pro") is None


def test_paper_tables_cover_the_mvtec_categories():
    assert len(paper.CATEGORIES) == 15 and not set(paper.TEXTURES) & set(paper.OBJECTS)
    assert set(paper.TABLE1) == set(paper.TABLE2) == set(paper.CATEGORIES)
    assert "capsure" not in paper.TABLE1 and "hazel_nut" not in paper.TABLE1


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("group", ["texture", "object", "total"])
def test_paper_averages_match_their_categories(group, metric):
    """Each published average is the mean of the published per-category values, to rounding."""
    cats = paper.GROUPS[group]
    computed = math.fsum(paper.category_value(c, metric) for c in cats) / len(cats)
    assert abs(computed - paper.average_value(group, metric)) <= 0.05 + 1e-9
