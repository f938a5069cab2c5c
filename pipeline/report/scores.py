"""The report's inputs: the score files ``data/scores/<category>/<method>/seed<s>.json``, read and checked (metrics
are fractions in [0, 1] or null with a reason; a file that names another category, method, seed, layer set or
module variant than its path is stale)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from frad.errors import DataError

from ..params import MODULE_VARIANTS, Params
from .labels import ALL_METRICS

SCORES_DIR = Path("data/scores")


@dataclass(frozen=True)
class Score:
    """One score file: metric values as fractions (None = undefined, with the reason)."""

    category: str
    method: str
    seed: int
    values: Mapping[str, float | None]
    reasons: Mapping[str, str]
    modules: tuple[bool, bool] | None
    """(GFE, shuffle loss) as recorded by a FRAD score file, None otherwise."""


def _stale(path: Path, what: str) -> DataError:
    return DataError(f"{path}: {what}; the score file is stale or misplaced, rerun `dvc repro`")


def load_score(path: Path, category: str, method: str, seed: int, layers: tuple[int, ...] | None) -> Score:
    """Read and check one score file (its metrics must be fractions in [0, 1] or null)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"missing score file {path}: run `dvc repro` to compute the scores") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path} is not a readable score file ({err}); rerun `dvc repro`") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} is not a score file (expected a JSON object); rerun `dvc repro`")
    for key, expected in (("category", category), ("method", method), ("seed", seed)):
        if key in data and data[key] != expected:
            raise _stale(path, f"it says {key} {data[key]!r}, expected {expected!r}")
    if layers is not None and "layers" in data:
        recorded = data["layers"]
        ok = isinstance(recorded, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in recorded)
        if not ok or tuple(sorted(recorded)) != layers:
            raise _stale(path, f"it was computed on layers {recorded!r}, expected {list(layers)}")
    modules = (
        (data["gfe"], data["ssl"]) if isinstance(data.get("gfe"), bool) and isinstance(data.get("ssl"), bool) else None
    )
    if modules is not None and method in MODULE_VARIANTS and modules != MODULE_VARIANTS[method]:
        raise _stale(path, f"it records gfe={modules[0]}, ssl={modules[1]}, which is not variant {method!r}")
    undefined = data.get("undefined") if isinstance(data.get("undefined"), dict) else {}
    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    for metric in ALL_METRICS:
        if metric not in data:
            raise DataError(f"{path} lacks the metric {metric!r}; rerun `dvc repro`")
        v = data[metric]
        if v is None:
            values[metric] = None
            reasons[metric] = " ".join(str(undefined.get(metric) or "no reason recorded").split())
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0.0 <= v <= 1.0:
            raise DataError(f"{path}: {metric} = {v!r} is not a fraction in [0, 1] or null; rerun `dvc repro`")
        values[metric] = float(v)
    return Score(category, method, seed, values, reasons, modules)


Scores = Mapping[str, Mapping[str, Sequence[Score]]]
"""{method: {category: [Score per seed]}}."""


def load_scores(scores_dir: Path, p: Params) -> dict[str, dict[str, list[Score]]]:
    """Every score file the params require. Missing files are all found first; the error names the first."""
    path = lambda c, m, s: scores_dir / c / m / f"seed{s}.json"  # noqa: E731  (= pipeline.common.score_path)
    missing = [
        path(c, m, s)
        for m in p.methods
        for c in p.data.categories
        for s in p.train.seeds
        if not path(c, m, s).is_file()
    ]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"missing score file {missing[0]}{more}: run `dvc repro` to compute the scores")
    layers = {m: p.variant(m).layers for m in p.frad_variants}
    return {
        m: {c: [load_score(path(c, m, s), c, m, s, layers.get(m)) for s in p.train.seeds] for c in p.data.categories}
        for m in p.methods
    }
