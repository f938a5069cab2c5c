"""frad.runtime.tune_malloc: applied on Linux/glibc, switchable off, and it never changes a result.
Each case runs in a fresh interpreter, since the setting lasts for the whole process."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning needs Linux with glibc")

TRAIN = """
import sys, torch
from frad.runtime import tune_malloc
from frad.config import ModelConfig
from frad.train import train_model
from frad.config import TrainConfig
print("applied", tune_malloc(), tune_malloc())  # idempotent
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
maps = {2: torch.randn(20, 24, 16, 16, generator=g).half(), 3: torch.randn(20, 40, 8, 8, generator=g).half()}
r = train_model(maps, 32, ModelConfig(32, (16, 16, 16), True, 2), TrainConfig(epochs=3, batch_size=8, device="cpu"),
                progress=False)
torch.save(r.model.state_dict(), sys.argv[1])
"""


def _run(code: str, *args: str, env: dict | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@glibc
def test_tuned_and_default_malloc_train_bitwise_the_same_model(tmp_path):
    out_tuned = _run(TRAIN, str(tmp_path / "tuned.pt"))
    out_default = _run(TRAIN, str(tmp_path / "default.pt"), env={"FRAD_MALLOC_TUNE": "0"})
    assert "applied True True" in out_tuned and "applied False False" in out_default
    tuned, default = torch.load(tmp_path / "tuned.pt"), torch.load(tmp_path / "default.pt")
    assert tuned.keys() == default.keys()
    assert all(torch.equal(tuned[k], default[k]) for k in tuned)


@glibc
def test_pipeline_stages_run_with_the_tuned_allocator():
    code = "import frad.runtime as r, pipeline.common as c\nc.stage_main(lambda args: print('inside', r._applied))()"
    assert "inside True" in _run(code)
    assert "inside False" in _run(code, env={"FRAD_MALLOC_TUNE": "off"})


def test_light_stages_do_not_import_heavy_libraries():
    """Start-up is paid by every stage of every category: no stage imports scikit-learn (image AUROC uses frad's
    exact rank statistic) or the compiler stack; loading params.yaml imports no torch (the comparison methods'
    settings, frad/<method>/__init__.py, are torch-free), so download, prepare and the report start without it."""
    code = (
        "import sys, importlib\n"
        "for m in sys.argv[1:]: importlib.import_module(m)\n"
        "print(sorted(x for x in ('sklearn', 'torch', 'frad.model', 'frad.train') if x in sys.modules))"
    )
    assert _run(code, "pipeline.prepare", "pipeline.download", "pipeline.params").strip() == "[]"
    assert "sklearn" not in _run(code, "pipeline.score", "pipeline.train", "pipeline.compare")
