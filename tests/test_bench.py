"""bench (python -m bench): the --quick smoke run writes one complete table, targets are verdicts only when
given; and the feature cache really makes every model/scoring variant free of backbone forwards (λ, GFE, K,
epochs, σ, layer sets)."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pipeline_utils import THREADS

from bench.__main__ import main as bench_main
from bench.settings import parse_args, resolve_settings
from bench.targets import verdict
from bench.workloads import grids
from frad.backbone import Backbone

STAGES = ("backbone", "training", "scoring", "metrics")


def test_quick_benchmark_writes_a_complete_table(tmp_path):
    """Tiny sizes on the CPU, every row in its own worker process. EfficientNet-Lite0 with random
    weights keeps it fast and still takes the 'accuracy measured on another net' branch."""
    out, raw = tmp_path / "reports" / "bench.md", tmp_path / "bench.json"
    code = bench_main(
        [
            "--quick",
            "--device",
            "cpu",
            "--backbone",
            "tf_efficientnet_lite0",
            "--weights",
            "random",
            "--out",
            str(out),
            "--json",
            str(raw),
        ]
    )
    assert code == 0
    text = out.read_text()
    assert text.startswith("# frad speed benchmark")
    for needle in (
        "- device: CPU",
        "- date:",
        "torch " + torch.__version__,
        "CPUs available",
        "--quick",
        "measured on tf_efficientnet_lite0 with imagenet weights",
        "of the measured fp32 matmul ceiling",
        "The naive fp32 path already runs at",
        "`python -m bench --quick",
        "FAILED",
        "target",
    ):
        assert (needle in text) == (needle not in ("FAILED", "target")), needle  # no target given: no verdict

    rows = json.loads(raw.read_text())["rows"]
    labels = [(r["stage"], r["mode"]) for r in rows]
    assert [s for s, _ in labels] == (
        ["ceiling"]
        + ["backbone"] * 4
        + ["training"] * 2
        + ["scoring"]
        + ["compare"] * 3
        + ["coreset"]
        + ["metrics"] * 6  # AU-PRO, pixel AUROC, their sum, pixel AP + F1-max, all seven in one pass, intervals
    )
    variants = " | ".join(v for s, v in labels if s == "backbone")
    for v in (
        "fp32, eager, NCHW (naive)",
        "fp32, eager, channels_last",
        "fp32, eager, channels_last, tuned malloc",
        "bf16 autocast, eager, channels_last",
    ):
        assert v in variants
    assert rows[0]["throughput"] > 0 and rows[0]["raw"]["fp32"] == rows[0]["throughput"]  # TFLOP/s
    for r in rows[1:]:
        assert r["error"] is None, r
        assert r["throughput"] > 0 and r["time_s"] > 0 and r["peak_mib"] > 0, r
        if r["stage"] == "backbone":
            assert r["speedup"] > 0
            mean, low = r["cos"]
            assert 0.99 < low <= mean <= 1 + 1e-9, r["cos"]
    assert sum("← fast path" in v for _, v in labels) == 1

    # one Markdown table, one line per row, positive numbers in the throughput and time cells
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(rows)
    for line in table[3:]:  # after the header and the ceiling row (which has no time)
        cells = [c.strip() for c in line.strip("|").split("|")]
        for cell in cells[2:4]:
            value = float(re.match(r"[0-9.]+", cell).group())
            assert value > 0, line


def test_only_runs_the_named_row_groups(tmp_path, capsys):
    out = tmp_path / "bench.md"
    code = bench_main(["--quick", "--device", "cpu", "--only", "training,metrics", "--no-isolate", "--out", str(out)])
    assert code == 0
    stages = [line.split("|")[1].strip() for line in out.read_text().splitlines() if line.startswith("|")][2:]
    assert stages == ["training"] * 2 + ["metrics"] * 6  # CPU: default and tuned malloc; six metrics rows
    with pytest.raises(SystemExit) as err:
        parse_args(["--only", "training,speed"])
    assert err.value.code == 2
    assert (
        "--only takes a comma list drawn from ceiling,backbone,training,scoring,compare,coreset,metrics"
        in capsys.readouterr().err
    )


def test_quick_comparison_methods_give_one_row_per_method(tmp_path, capsys):
    """--only compare: PaDiM, PatchCore and RD each fit and make maps in their own process, with positive numbers;
    a partial run writes only where --out says (the full table in reports/benchmark.md stays)."""
    raw = tmp_path / "bench.json"
    argv = ["--quick", "--device", "cpu", "--backbone", "tf_efficientnet_lite0", "--only", "compare"]
    assert bench_main([*argv, "--json", str(raw)]) == 0
    assert "not written: --only ran part of the table" in capsys.readouterr().err
    rows = json.loads(raw.read_text())["rows"]
    assert [(r["stage"], r["mode"].split()[0]) for r in rows] == [
        ("compare", "PaDiM"),
        ("compare", "PatchCore"),
        ("compare", "RD"),
    ]
    for r in rows:
        assert r["error"] is None, r
        assert r["throughput"] > 0 and r["time_s"] > 0 and r["peak_mib"] > 0, r
        assert r["raw"]["finite"] and r["raw"]["score_s"] > 0, r
    padim, patchcore, rd = (r["raw"] for r in rows)
    assert padim["info"]["channels_total"] == 24 + 40 + 112  # Lite0 layers 1–3
    assert patchcore["info"]["coreset_patches"] == math.ceil(0.5 * patchcore["info"]["bank_patches"])
    assert rd["samples_s"] > 0 and rd["s_per_epoch"] == pytest.approx(rd["train_images"] / rd["samples_s"])

    assert resolve_settings(parse_args(argv)).out is None
    assert resolve_settings(parse_args([*argv, "--out", "x.md"])).out == "x.md"
    assert resolve_settings(parse_args(["--device", "cpu"])).out == "reports/benchmark.md"


def test_quick_coreset_row_times_the_pruned_loop_against_the_dense_one(tmp_path):
    raw = tmp_path / "bench.json"
    assert bench_main(["--quick", "--device", "cpu", "--only", "coreset", "--json", str(raw)]) == 0
    (row,) = json.loads(raw.read_text())["rows"]
    assert row["stage"] == "coreset" and row["error"] is None, row
    res = row["raw"]
    assert res["same_first_steps"] and res["n"] == math.ceil(0.1 * res["bank_rows"])
    assert row["time_s"] > 0 and res["dense_s"] > 0 and res["dense_floor_s"] > 0 and res["bandwidth_gb_s"] > 0


def test_method_configs_follow_the_method_defaults():
    from bench.method_jobs import method_config

    full = resolve_settings(parse_args(["--device", "cpu"]))
    assert method_config(full, "padim").d == 550  # WRN50-2 channels (PaDiM §4.1)
    lite = resolve_settings(parse_args(["--device", "cpu", "--backbone", "tf_efficientnet_lite0"]))
    assert method_config(lite, "padim").d == 100
    pc = method_config(full, "patchcore")
    assert (pc.coreset, pc.dims, pc.projection, pc.layers) == (0.1, 1024, 128, (2, 3))
    rd = method_config(full, "rd", epochs=3)
    assert (rd.lr, rd.batch_size, rd.epochs, rd.layers) == (0.005, 16, 3, (1, 2, 3))
    assert (full.method_test_images, full.rd_epochs) == (83, 1)


def test_targets_are_verdicts_only_when_given(tmp_path, capsys):
    out = tmp_path / "bench.md"
    code = bench_main(
        [
            "--quick",
            "--device",
            "cpu",
            "--only",
            "training,metrics",
            "--no-isolate",
            "--out",
            str(out),
            "--target",
            "metrics_s=1e9",
            "--target",
            "train_100ep_s=1e-9",
        ]
    )
    assert code == 0
    notes = {
        line.split("|")[2].strip(): line.split("|")[-2]
        for line in out.read_text().splitlines()
        if line.startswith("| training") or line.startswith("| metrics")
    }
    assert "target ≤ 1e+09 s: met" in notes["AU-PRO + pixel AUROC"]
    assert all("target ≤ 1e-09 s: NOT met" in n for v, n in notes.items() if v.startswith("full model"))
    assert not any("target" in n for v, n in notes.items() if v.startswith(("AU-PRO (", "pixel")))
    for bad in ("speed=3", "scoring_img_s", "scoring_img_s=fast"):
        with pytest.raises(SystemExit) as err:
            parse_args(["--target", bad])
        assert err.value.code == 2
    assert "--target wants NAME=VALUE with NAME one of backbone_speedup" in capsys.readouterr().err


def test_verdict_directions():
    targets = {"scoring_img_s": 1500.0, "metrics_s": 5.0}
    assert verdict(targets, "scoring_img_s", 1500) == "target ≥ 1500 img/s: met"
    assert verdict(targets, "scoring_img_s", 1499.9) == "target ≥ 1500 img/s: NOT met"
    assert verdict(targets, "metrics_s", 5.1) == "target ≤ 5 s: NOT met"
    assert verdict(targets, "train_100ep_s", 1.0) == ""


def test_inference_batch_defaults_to_the_training_batch_on_cpu():
    s = resolve_settings(parse_args(["--device", "cpu"]))
    assert (s.batch_size, s.infer_batch_size, s.epochs, s.test_images) == (16, 16, 2, 32)
    s = resolve_settings(parse_args(["--device", "cpu", "--infer-batch-size", "64"]))
    assert (s.batch_size, s.infer_batch_size) == (16, 64)


def test_grids_keep_the_paper_k_when_the_map_allows():
    assert grids(32) == (4, 4)  # 256² input, L = {2, 3}
    assert grids(8) == (2, 4)
    assert grids(4) == (1, 4)
    assert grids(32, (36, 36, 36)) == (2, 4)  # GFE K also needs every width to be a multiple of K²
    assert grids(32, (30, 30, 30)) == (1, 4)


# --------------------------------------------------------------------------- cached features


@pytest.fixture
def cached_workspace(tmp_path, monkeypatch):
    """A TINY synthetic workspace whose download/prepare/features stages ran in-process."""
    from pipeline_utils import TINY

    from pipeline import download, features, prepare
    from pipeline.params import load_params
    from pipeline.workspace import make_workspace

    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.set_num_threads(THREADS)  # tiny ops: a second thread only adds barrier waits on a busy machine
    ws = make_workspace(tmp_path / "ws", TINY, git=False)
    monkeypatch.chdir(ws)
    params = load_params()
    category = params.data.categories[0]
    forwards = count_forwards(monkeypatch)
    download.run(params)
    prepare.run(params, category)
    features.run(params, category)
    assert forwards, "the features stage ran no backbone forward: the spy does not see them"
    forwards.clear()
    yield ws, params, category, forwards
    torch.use_deterministic_algorithms(deterministic)  # leave the process as it was
    torch.set_num_threads(threads)


def count_forwards(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = Backbone.forward

    def forward(self, x):
        calls.append(len(x))
        return original(self, x)

    monkeypatch.setattr(Backbone, "forward", forward)
    return calls


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.e2e
def test_model_and_score_variants_need_no_backbone_forward(cached_workspace, monkeypatch):
    from pipeline import score, train
    from pipeline.params import validate_params

    ws, params, category, forwards = cached_workspace
    cache_dir = ws / "data" / "features" / category
    before = snapshot(cache_dir)
    assert {"train_l1.npy", "train_l2.npy", "train_l3.npy", "test_l2.npy", "test_l3.npy"} <= set(before)

    loaded: list[Path] = []
    real_load = np.load

    def spy_load(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)):
            loaded.append(Path(file).resolve())
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(np, "load", spy_load)

    def variant(**dotted):
        p = yaml.safe_load((ws / "params.yaml").read_text())
        for key, value in dotted.items():
            node = p
            *parents, last = key.split(".")
            for k in parents:
                node = node[k]
            node[last] = value
        return validate_params(p)

    def train_and_score(p, name: str, do_train: bool = True) -> dict:
        if do_train:
            train.run(p, category, name, 0)
        result = score.run(p, category, name, 0)
        assert result["method"] == name and 0 <= result["pixel_auroc"] <= 1
        return result

    train_and_score(params, "full")
    for p in (
        variant(**{"ssl.lambda": 0.5}),
        variant(**{"model.gfe": False}),
        # K of the GFE grid (L3's 4x4 map cannot take K=2: out of the ablation) and of the shuffle grid
        variant(**{"model.grid": 2, "ssl.grid": 4, "ablation.layers": ["L2"]}),
        variant(**{"train.epochs": 2}),
    ):
        train.run(p, category, "full", 0)
    train_and_score(variant(**{"score.sigma": 2}), "full", do_train=False)
    assert forwards == [], f"{len(forwards)} backbone forwards while changing λ, GFE, K, epochs or σ"

    # two layer sets read their own per-layer files of the one cache, and nothing is rewritten
    by_layers = {}
    for name in ("L2", "L3"):
        loaded.clear()
        train_and_score(params, name)
        by_layers[name] = {
            p.name for p in loaded if p.parent == cache_dir.resolve() and re.fullmatch(r"(train|test)_l\d\.npy", p.name)
        }
    assert by_layers["L2"] == {"train_l2.npy", "test_l2.npy"}
    assert by_layers["L3"] == {"train_l3.npy", "test_l3.npy"}
    assert forwards == []

    # the comparison methods fit and score on the same cache
    from frad.methods import METHODS
    from pipeline import compare

    for method in METHODS:
        assert 0 <= compare.run(params, method, category, 0)["pixel_auroc"] <= 1
    assert forwards == [], "a comparison method ran the backbone"

    # every open-choices study item (one choice changed, scored after each epoch) trains on the same cache
    from pipeline import choice

    study = variant(**{"choices.enabled": True, "choices.categories": [category]})
    for name in study.choices.changes:
        assert len(choice.run(study, category, name, 0)["epochs"]) == study.train.epochs
    assert forwards == [], "a study item ran the backbone"
    assert snapshot(cache_dir) == before, "the per-layer cache files were rewritten or changed"
    assert sorted(p.name for p in (ws / "data" / "features").iterdir()) == [category]
