"""Serial `dvc repro` against `python -m pipeline.run -j N` on the same pipeline, each in a fresh workspace.

    python -m bench.runner [--jobs 2] [--threads-per-stage K] [--set KEY=YAML ...] [--keep DIR]

The default workload is the demo's synthetic bottle + carpet with EfficientNet-Lite0, C 64, widths 32, 2 FRAD and
2 RD epochs, PaDiM d 50, PatchCore coreset 0.01 (every stage of the pipeline). Prints the wall time of each run,
their ratio, the load average before and after each, whether the two dvc.lock files are byte-identical and whether
`dvc status` is clean after the parallel run; the parallel run's per-stage table (the runner's own cost) is in its
reports/timings.md. Measure on an idle machine: a loaded one flatters any process pool.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pipeline.workspace import make_workspace

WORKLOAD = {
    "data.source": "synthetic",
    "data.categories": ["bottle", "carpet"],
    "data.image_size": 128,
    "data.synthetic": {"seed": 0, "n_train": 24, "n_test_good": 12, "n_test_defect": 4, "size": 128},
    "backbone.name": "tf_efficientnet_lite0",
    "features.channels": 64,
    "model.widths": [32, 32, 32],
    "model.grid": 2,
    "train.epochs": 2,
    "train.device": "cpu",
    "choices.categories": [],
    "ablation.layers": ["L3"],
    "compare.padim": {"d": 50, "eps": 0.01},
    "compare.patchcore": {
        "coreset": 0.01,
        "dims": 128,
        "projection": 128,
        "neighbourhood": 3,
        "reweight": False,
        "k": 9,
    },
    "compare.rd": {"epochs": 2, "batch_size": 16, "lr": 0.005, "betas": [0.5, 0.999], "student_output": "relu"},
}


def _env() -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
    }


def timed_run(ws: Path, cmd: list[str]) -> tuple[float, float, float]:
    """(wall seconds, load average before, load average after) of ``cmd`` in ``ws``; fails loudly."""
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    proc = subprocess.run(cmd, cwd=ws, env=_env(), capture_output=True, text=True)
    wall, load1 = time.perf_counter() - t0, os.getloadavg()[0]
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed in {ws}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, load0, load1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.runner", description=__doc__.split("\n\n")[0])
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--threads-per-stage", type=int)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=YAML", help="params override")
    ap.add_argument("--keep", type=Path, help="folder for the two workspaces (default: a temporary one)")
    args = ap.parse_args(argv)
    overrides = dict(WORKLOAD)
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    base = args.keep or Path(tempfile.mkdtemp(prefix="frad-runner-"))
    serial, parallel = make_workspace(base / "serial", overrides), make_workspace(base / "parallel", overrides)
    s_wall, s0, s1 = timed_run(serial, [sys.executable, "-m", "dvc", "repro"])
    cmd = [sys.executable, "-m", "pipeline.run", "-j", str(args.jobs)]
    cmd += ["--threads-per-stage", str(args.threads_per_stage)] if args.threads_per_stage else []
    p_wall, p0, p1 = timed_run(parallel, cmd)
    same = (serial / "dvc.lock").read_bytes() == (parallel / "dvc.lock").read_bytes()
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "-q"], cwd=parallel, env=_env()).returncode
    n = len(yaml.safe_load((serial / "dvc.lock").read_text())["stages"])
    print(f"workload: {n} stages; {os.cpu_count()} CPUs; overrides: {', '.join(args.set) or 'none'}")
    print(f"serial `dvc repro`:            {s_wall:7.1f} s  (load {s0:.1f} -> {s1:.1f})")
    print(f"`{' '.join(cmd[2:])}`: {p_wall:7.1f} s  (load {p0:.1f} -> {p1:.1f})")
    print(f"ratio parallel / serial: {p_wall / s_wall:.2f}")
    print(f"dvc.lock byte-identical: {same}; dvc status clean after the parallel run: {status == 0}")
    print(f"per-stage runner cost: {parallel / 'reports' / 'timings.md'}; workspaces in {base}")
    return 0 if same and status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
