"""Helpers for the end-to-end DVC tests: tiny synthetic workspaces and what DVC itself reports."""

from __future__ import annotations

import copy
import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import yaml

BASE: dict = yaml.safe_load((Path(__file__).resolve().parent.parent / "params.yaml").read_text())
"""The project's params.yaml, as a plain dict."""
DELETE = object()  # marker for changed(): remove the key

# Tiny but complete: 1 synthetic category, all stages and comparison methods, 1 epoch, EfficientNet-Lite0 ImageNet weights.
TINY = {
    "data.source": "synthetic",
    "data.categories": ["tile"],
    "data.textures": ["tile"],
    "data.image_size": 64,
    "data.synthetic": {"seed": 0, "n_train": 6, "n_test_good": 2, "n_test_defect": 2, "size": 64},
    "backbone.name": "tf_efficientnet_lite0",
    "features.channels": 16,
    "features.batch_size": 8,
    "model.widths": [16, 16, 16],
    "model.grid": 1,
    "ssl.grid": 2,
    "train.epochs": 1,
    "train.batch_size": 4,
    "train.device": "cpu",
    "ablation.layers": ["L3"],
    "compare.padim": {"d": 16, "eps": 0.01},
    "compare.patchcore": {"coreset": 0.5, "dims": 32, "projection": 8, "neighbourhood": 3, "reweight": False, "k": 3},
    "compare.rd": {"epochs": 1, "batch_size": 4, "lr": 0.005, "betas": [0.5, 0.999], "student_output": "relu"},
    "choices.categories": [],  # no study items (tests/test_study.py covers them)
}

RUNNING = re.compile(r"Running stage '([^']+)'")
THREADS = int(os.environ.get("FRAD_TEST_THREADS", "1"))
"""Intra-op threads of the tests' torch work and of the stages they run (default 1: no OpenMP contention between
two test workers on two cores). FRAD_TEST_THREADS=2 runs the same tests with two: no assertion may depend on it."""


def env() -> dict:
    bindir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "FRAD_WORKERS": "0",
        "OMP_NUM_THREADS": str(THREADS),
        "DVC_NO_ANALYTICS": "1",
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
    }


def dvc(ws: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=ws, env=env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def repro(ws: Path, *args: str) -> set[str]:
    """Run `dvc repro` and return the names of the stages DVC says it ran."""
    out = dvc(ws, "repro", *args)
    return set(RUNNING.findall(out.stdout + out.stderr))


def status(ws: Path) -> set[str]:
    """Stages `dvc status --json` reports as changed."""
    return set(json.loads(dvc(ws, "status", "--json").stdout or "{}"))


def set_params(ws: Path, **dotted) -> None:
    path = ws / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for key, value in dotted.items():
        node = params
        *parents, last = key.split(".")
        for k in parents:
            node = node[k]
        node[last] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def stages(names: list[str], categories: list[str], variants_by_stage: dict[str, list[str]], seeds=(0,)) -> set[str]:
    return {
        f"{stage}@{c}-{v}-{s}" for stage, vs in variants_by_stage.items() for c in categories for v in vs for s in seeds
    } | set(names)


def bash_blocks(markdown: str, heading: str) -> list[str]:
    """The ```bash blocks of the section of ``markdown`` under ``heading`` (up to the next ``##`` heading;
    a ``# comment`` line inside a block is not a heading)."""
    section = markdown.split(heading + "\n", 1)[1]
    section = re.split(r"^#{2,6} ", section, maxsplit=1, flags=re.M)[0]
    return re.findall(r"^```bash\n(.*?)^```", section, flags=re.M | re.S)


def copy_workspace(src: Path, dest: Path) -> Path:
    """A private copy of a built workspace: git, DVC state, cache and outputs (links kept as links)."""
    import shutil

    shutil.copytree(src, dest, symlinks=True)
    return dest


def changed(base: dict | None = None, **dotted) -> dict:
    """A deep copy of the project's params (or ``base``) with ``a__b__c=value`` changes (``__`` for the dots)."""
    raw = copy.deepcopy(BASE if base is None else base)
    for key, value in dotted.items():
        *parents, last = key.split("__")
        node = raw
        for k in parents:
            node = node[k]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return raw


def run_cpu_timed(args: list[str], **kwargs) -> tuple[subprocess.CompletedProcess, float]:
    """``subprocess.run(args, **kwargs)`` and the CPU seconds (user + system) the child used. "Fast" tests assert CPU
    time: it measures the work a process does, while wall time stretches with whatever else the machine runs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(args, **kwargs)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
