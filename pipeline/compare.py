"""Stage `compare@<category>-<method>-<seed>` (``python -m pipeline.compare <method> <category> <seed>``): one
comparison method of the registry (frad.methods.METHODS) in the same harness as FRAD: fit on the cached features
of the normal train images, score the test set through the same §1.5 upsampling and blur, and evaluate exactly as
FRAD's `score` stage does (:func:`pipeline.evaluate.evaluate`)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from frad.cache import FeatureCache
from frad.device import resolve_device
from frad.errors import ConfigError
from frad.methods import METHODS

from .common import FEATURES, PHASES, seed_arg, stage_main, usage
from .evaluate import evaluate
from .params import Params, load_params

log = logging.getLogger("frad.compare")


def run(params: Params, method: str, category: str, seed: int) -> dict:
    """Fit and score ``method`` (its ``compare.<method>`` settings, seeded) on one category; write its results."""
    if method not in METHODS:
        raise ConfigError(f"unknown comparison method {method!r}; frad.methods.METHODS has {', '.join(METHODS)}")
    config = params.compare.config(method, seed, params.train.device)
    cache = FeatureCache(FEATURES / category)
    log.info("%s on %s, seed %d: %s", method, category, seed, config)
    result = METHODS[method].fit_and_score(
        cache.layers("train", config.layers),
        cache.layers("test", config.layers),
        config,
        image_size=cache.image_size,
        sigma=params.score.sigma,
        batch_size=params.score.batch_size,
        device=resolve_device(params.train.device),
    )
    info = {"config": _jsonable(dataclasses.asdict(config)), **_jsonable(result.info)}
    PHASES.update(result.timings)  # the stage's log and timing record, not the score file
    return evaluate(params, category, method, seed, result.maps.numpy(), result.image_scores, cache, info)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    return obj if isinstance(obj, (str, int, float, bool)) or obj is None else str(obj)


@stage_main
def main(argv: list[str]) -> None:
    method, category, seed = usage(argv, 3, "python -m pipeline.compare <method> <category> <seed>")
    run(load_params(), method, category, seed_arg(seed))


if __name__ == "__main__":
    main()
