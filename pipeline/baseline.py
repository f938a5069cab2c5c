"""What the baseline stages (`python -m pipeline.padim|patchcore|rd <category> <seed>`) share: fit on the cached
features of the normal train images, score the test set through the same §1.5 upsampling and blur, and
evaluate exactly as the FRAD score stage does (:func:`pipeline.evaluate.evaluate`)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

from frad.cache import FeatureCache
from frad.device import resolve_device

from .common import FEATURES, seed_arg, usage
from .evaluate import evaluate
from .params import Params, load_params

log = logging.getLogger("frad.baseline")


def run(params: Params, category: str, method: str, seed: int, fit_and_score: Callable[..., Any], config: Any) -> dict:
    """Fit and score ``method`` (its ``fit_and_score`` and config, seeded) on one category; write its results."""
    cache = FeatureCache(FEATURES / category)
    log.info("%s on %s, seed %d: %s", method, category, seed, config)
    result = fit_and_score(
        cache.layers("train", config.layers),
        cache.layers("test", config.layers),
        config,
        image_size=cache.image_size,
        sigma=params.score.sigma,
        batch_size=params.score.batch_size,
        device=resolve_device(params.train.device),
    )
    info = {"config": _jsonable(dataclasses.asdict(config)), **_jsonable(result.info)}
    return evaluate(params, category, method, seed, result.maps.numpy(), result.image_scores, cache, info)


def args(argv: list[str], method: str) -> tuple[Params, str, int]:
    category, seed = usage(argv, 2, f"python -m pipeline.{method} <category> <seed>")
    return load_params(), category, seed_arg(seed)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    return obj if isinstance(obj, (str, int, float, bool)) or obj is None else str(obj)
