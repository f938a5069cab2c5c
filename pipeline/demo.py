"""Offline quick demo: the whole pipeline on synthetic data with EfficientNet-Lite0 ImageNet weights
(shipped by a pip package), small settings, on the CPU. `python -m pipeline.demo [folder]`."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .workspace import make_workspace

# Every demo category reaches this image AUROC with the full model (tests/test_demo.py, slow).
MIN_IMAGE_AUROC = 0.95

DEMO_PARAMS = {
    "data.source": "synthetic",
    "data.categories": ["tile", "bottle"],  # one texture-like, one object-like synthetic category
    "data.image_size": 128,
    "data.synthetic": {"seed": 0, "n_train": 24, "n_test_good": 12, "n_test_defect": 4, "size": 128},
    "backbone.name": "tf_efficientnet_lite0",  # real ImageNet weights from a pip package: no network needed
    "features.channels": 64,
    "model.widths": [32, 32, 32],
    "model.grid": 2,  # a 4x4 GFE grid does not fit the 8x8 layer-3 map of 128 px images
    # 24 images at batch 16 = 2 Adam steps per epoch: the object category needs ~120 steps to learn its
    # position-dependent normal appearance (after 40 its good images still score like defects).
    "train.epochs": 60,
    "train.device": "cpu",
    "choices.categories": [],  # no open-choices study items (the study is off by default anyway)
    "ablation.layers": ["L3"],  # Table 4 with one extra layer set (L1 trains on 4x larger maps: slowest stages)
    # Comparison methods sized for Lite0's 24/40/112 channels (the defaults are WRN50-2's).
    "compare.padim": {"d": 100, "eps": 0.01},
    "compare.patchcore": {
        "coreset": 0.1,
        "dims": 128,
        "projection": 128,
        "neighbourhood": 3,
        "reweight": False,
        "k": 9,
    },
    "compare.rd": {"epochs": 30, "batch_size": 16, "lr": 0.005, "betas": [0.5, 0.999], "student_output": "relu"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("folder", nargs="?", default="demo", help="where to create the demo workspace (default: ./demo)")
    ap.add_argument("--force", action="store_true", help="replace an existing demo folder")
    args = ap.parse_args()
    dest = Path(args.folder)
    if dest.exists():
        if not args.force:
            sys.exit(f"error: {dest} exists; pass --force to replace it or name another folder")
        shutil.rmtree(dest)
    try:
        make_workspace(dest, DEMO_PARAMS)
    except FileNotFoundError as err:
        sys.exit(f"error: {err}")
    # Stage commands call `python`/`dvc`: use the ones of this interpreter's environment.
    # DVC runs one stage at a time, so each stage may use every core (torch's default). On a machine busy
    # with other work, OMP_NUM_THREADS=1 avoids oversubscription stalls of these tiny models.
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    t0 = time.time()
    rc = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=dest, env=env).returncode
    if rc:
        sys.exit(rc)
    print(f"\nDemo pipeline finished in {time.time() - t0:.0f} s. Tables: {dest / 'reports' / 'tables.md'}")
    print(
        "These numbers come from synthetic drawings and a few training epochs: they show that the pipeline works "
        "end to end, they are not a result (the paper's numbers are on MVTec AD: `make repro`).\n"
    )
    print((dest / "reports" / "tables.md").read_text())
    subprocess.run([sys.executable, "-m", "dvc", "metrics", "show"], cwd=dest, env=env)


if __name__ == "__main__":
    main()
