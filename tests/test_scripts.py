"""scripts/time_stages.py (the stage timer the GPU check uses) runs the real stages and prints their times."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_utils import THREADS

PROJECT = Path(__file__).resolve().parent.parent

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.e2e
def test_time_stages_runs_the_real_stages_of_one_category(tmp_path):
    tiny = [
        "data.synthetic={seed: 0, n_train: 4, n_test_good: 2, n_test_defect: 1, size: 128}",
        "data.image_size=128",
        "backbone.name=tf_efficientnet_lite0",
        "backbone.weights=imagenet",
        "features.channels=32",
        "model.widths=[16, 16, 16]",
        "model.grid=2",
        "train.epochs=1",
        "train.device=cpu",
        "ablation.layers=[L3]",
        "compare.padim.d=16",
        "compare.patchcore={coreset: 0.5, dims: 32, projection: 8, neighbourhood: 3, reweight: false, k: 3}",
        "compare.rd.epochs=1",
        "compare.rd.batch_size=4",
    ]
    args = [a for kv in tiny for a in ("--set", kv)]
    proc = subprocess.run(
        [sys.executable, "scripts/time_stages.py", "--dest", str(tmp_path / "ws"), "--choices", "defaults", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(THREADS)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines() if line.startswith("| ") and "wall" not in line]
    table = [r for r in rows if len(r) == 4]
    assert [r[0].strip() for r in table] == [
        "prepare bottle",
        "features bottle",
        "train bottle full 0",
        "score bottle full 0",
        "compare padim bottle 0",
        "compare patchcore bottle 0",
        "compare rd bottle 0",
        "gallery bottle",
        "choice bottle defaults 0",
    ]
    assert all(float(r[1]) > 0 and r[2].strip() == "0" for r in table)
    for method in ("full", "padim", "patchcore", "rd"):
        assert (tmp_path / "ws" / "data" / "scores" / "bottle" / method / "seed0.json").is_file(), method
    phases = {r[0].strip(): r[1] for r in rows if len(r) == 2}
    assert set(phases) == {"method", "padim", "patchcore", "rd"}
    for method, needle in (("padim", "fit_s"), ("patchcore", "coreset_s"), ("rd", "s_per_epoch")):
        assert needle in phases[method] and "score_s" in phases[method], phases
    study = json.loads((tmp_path / "ws" / "data" / "scores" / "bottle" / "choice-defaults" / "seed0.json").read_text())
    assert [e["epoch"] for e in study["epochs"]] == [1]  # the study item trained (time_stages turns the study on)
    assert (tmp_path / "ws" / "reports" / "gallery" / "bottle" / "index.html").is_file()


def test_time_stages_takes_a_list_of_methods():
    spec = importlib.util.spec_from_file_location("time_stages", ROOT / "scripts" / "time_stages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.method_list("rd, padim") == ["rd", "padim"]
    assert module.method_list("") == []
    with pytest.raises(argparse.ArgumentTypeError, match="drawn from padim,patchcore,rd"):
        module.method_list("padim,knn")


@pytest.mark.e2e
def test_check_metrics_recomputes_every_metric_with_sklearn_from_the_stored_maps(tiny_built):
    """scripts/check_metrics.py on a finished run: every score item's metrics agree with scikit-learn's on its stored
    maps to 1e-6, and metrics.json with the score files."""
    proc = subprocess.run(
        [sys.executable, str(PROJECT / "scripts" / "check_metrics.py"), str(tiny_built[0]), "--tol", "1e-6"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "score items of" in proc.stdout and "pixel_f1max" in proc.stdout
