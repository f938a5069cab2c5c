"""A new comparison method is one package and one registry line (docs/new-method.md): in a copy of
the project, a toy method ``frad/toy/`` (settings in ``__init__.py``, code in ``method.py``) plus its line in
``frad.methods.METHODS`` is validated at load, staged by the ``compare`` family with exact code deps, reported in
Tables 1-2 and metrics.json, and plotted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from pipeline_utils import TINY, env, repro, status

from pipeline.workspace import make_workspace

pytestmark = pytest.mark.slow

TOY_SETTINGS = '''"""Toy comparison method (tests/test_new_method.py): its settings."""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import check_positive


@dataclass(frozen=True)
class ToyConfig:
    scale: float = 1.0  # multiplies the distance
    seed: int = 0
    layers: tuple[int, ...] = (3,)

    def __post_init__(self) -> None:
        check_positive(self.scale, "compare.toy.scale")
'''
TOY_CODE = '''"""Toy comparison method: distance of each layer-3 position to the train mean."""

from __future__ import annotations

from ..harness import MethodResult, check_maps
from ..evaluation.postprocess import to_image_maps


def fit_and_score(train, test, config, *, image_size, sigma, batch_size=32, device="cpu"):
    check_maps(train, config.layers, "train")
    check_maps(test, config.layers, "test")
    mean = train[3].float().mean(0)
    maps = to_image_maps(config.scale * (test[3].float() - mean).norm(dim=1), image_size, sigma)
    return MethodResult(maps=maps, image_scores=maps.flatten(1).amax(1).numpy(), info={"toy": True})
'''
IMPORT = "from .toy import ToyConfig\n"
LINE = '        Method("toy", "Toy", ToyConfig, "tests/test_new_method.py"),\n'


def python(ws, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=ws, env=env(), capture_output=True, text=True)
    assert not check or proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def set_toy(ws, settings: dict) -> None:
    path = ws / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["compare"]["methods"] = ["padim", "toy"]
    params["compare"]["toy"] = settings
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_toy_method_is_validated_staged_reported_and_plotted(tmp_path):
    ws = make_workspace(tmp_path / "ws", {**TINY, "ablation.layers": []})
    (ws / "frad" / "toy").mkdir()
    (ws / "frad" / "toy" / "__init__.py").write_text(TOY_SETTINGS)
    (ws / "frad" / "toy" / "method.py").write_text(TOY_CODE)
    registry = ws / "frad" / "methods.py"
    text = registry.read_text()
    text = text.replace("from .rd import RDConfig\n", "from .rd import RDConfig\n" + IMPORT)
    anchor = text.index('        Method("rd"')
    registry.write_text(text[:anchor] + LINE + text[anchor:])

    # validated at load, from the config: an unknown key, then a range its __post_init__ rejects
    set_toy(ws, {"scale": 2.0, "shift": 1})
    bad = python(ws, "-m", "pipeline.compare", "toy", "tile", "0", check=False)
    assert bad.returncode == 2 and "unknown key compare.toy.shift" in bad.stderr
    set_toy(ws, {"scale": -1.0})
    bad = python(ws, "-m", "pipeline.compare", "toy", "tile", "0", check=False)
    assert bad.returncode == 2 and "compare.toy.scale must be a positive number, got -1.0" in bad.stderr
    set_toy(ws, {"scale": 2.0})

    # staged: every stage validates its settings (the deps command adds frad/toy/__init__.py to each), and the
    # compare family's generated code deps already cover its code (frad/${item.method}/method.py)
    assert python(ws, "-m", "pipeline.deps", "--check", check=False).returncode == 1
    python(ws, "-m", "pipeline.deps")
    assert "frad/toy/__init__.py" in (ws / "dvc.yaml").read_text()
    assert "frad/toy/method.py" not in (ws / "dvc.yaml").read_text()
    ran = repro(ws)
    assert {"compare@tile-toy-0", "compare@tile-padim-0", "report"} <= ran
    assert status(ws) == set()

    # reported and plotted
    score = json.loads((ws / "data/scores/tile/toy/seed0.json").read_text())
    assert score["config"] == {"scale": 2.0, "seed": 0, "layers": [3]} and 0 <= score["image_auroc"] <= 1
    tables = (ws / "reports/tables.md").read_text()
    assert "Toy image / pixel" in tables and "PaDiM image / pixel" in tables  # synthetic data: no paper column
    metrics = json.loads((ws / "reports/metrics.json").read_text())
    assert set(metrics["methods"]) == {"padim", "toy"}
    assert metrics["methods"]["toy"]["image_auroc"] == pytest.approx(score["image_auroc"])
    roc = json.loads((ws / "reports/plots/image_roc/tile.json").read_text())
    assert {"full", "padim", "toy"} <= {row["method"] for row in roc}
    page = (ws / "reports/gallery/tile/index.html").read_text()
    assert 'data-method="toy"' in page and (ws / "reports/gallery/tile/images/0000_toy.jpg").is_file()

    # one method's settings rerun that method's items and the reports only
    set_toy(ws, {"scale": 3.0})
    assert status(ws) == {"compare@tile-toy-0"}

    # and its code file only its own items
    set_toy(ws, {"scale": 2.0})
    assert status(ws) == set()
    with (ws / "frad" / "toy" / "method.py").open("a") as fh:
        fh.write("\n# changed\n")
    assert status(ws) == {"compare@tile-toy-0"}
