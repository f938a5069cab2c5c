"""scripts/time_stages.py (the stage timer the GPU check uses) runs the real stages and prints their times."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
    ]
    args = [a for kv in tiny for a in ("--set", kv)]
    proc = subprocess.run(
        [sys.executable, "scripts/time_stages.py", "--dest", str(tmp_path / "ws"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines() if line.startswith("| ") and "wall" not in line]
    assert [r[0].strip() for r in rows] == [
        "prepare bottle",
        "features bottle",
        "train bottle full",
        "score bottle full",
    ]
    assert all(float(r[1]) > 0 and r[2].strip() == "0" for r in rows)
    assert (tmp_path / "ws" / "data" / "scores" / "bottle" / "full" / "seed0.json").is_file()
