"""The report's DVC plot files ``plots/<curve>/<category>.json``: ROC, precision-recall and PRO curves of every
method (first seed), and the interval rows. The pictures of the test images are the gallery's (pipeline.gallery)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

from frad.errors import DataError
from frad.evaluation.curves import CURVES, plot_rows
from frad.io import atomic_path

from ..params import Params

log = logging.getLogger("frad.report")

CURVES_DIR = Path("data/curves")


def load_curves(curves_dir: Path, p: Params) -> dict[str, dict[str, Any]]:
    """{category: {method: curves}} of the first seed, as the score stages wrote them (``frad.evaluation.curves``)."""
    seed = p.train.seeds[0]
    curves: dict[str, dict[str, Any]] = {}
    for c in p.data.categories:
        curves[c] = {}
        for m in p.methods:
            path = curves_dir / c / m / f"seed{seed}.json"
            try:
                curves[c][m] = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise DataError(f"{path} is not a readable curves file ({err}); rerun `dvc repro`") from None
            if not isinstance(curves[c][m], dict):
                raise DataError(f"{path} is not a curves file (expected a JSON object); rerun `dvc repro`")
    return curves


def write_plots(
    curves: Mapping[str, Mapping[str, Any]],
    p: Params,
    plots_dir: Path,
    more: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """``plots_dir/<curve>/<category>.json``: every method's curve (first seed), one DVC plot each; ``more``:
    other plot folders {folder: {file stem: rows}} (the intervals)."""
    with atomic_path(plots_dir, is_dir=True) as tmp:
        for name in CURVES:
            (tmp / name).mkdir()
            for c in p.data.categories:
                (tmp / name / f"{c}.json").write_text(json.dumps(plot_rows(curves[c], name)) + "\n")
        for folder, files in (more or {}).items():
            (tmp / folder).mkdir()
            for stem, rows in files.items():
                (tmp / folder / f"{stem}.json").write_text(json.dumps(rows) + "\n")
