"""What every scoring stage shares (FRAD's `score`, the comparison methods' `compare`): :func:`evaluate` measures one
method's test maps and image scores the same way, from one pass over them (``frad.evaluation.scoreset``): every
metric (image and pixel AUROC, AU-PRO, image and pixel AP and F1-max with their thresholds) into
data/scores/<category>/<method>/seed<seed>.json, per-image statistics for the report's bootstrap intervals
(``frad.evaluation.bootstrap``) next to it (``seed<seed>_boot.npz``), ROC/PR/PRO curves into data/curves/…, and every
test image's map (``seed<seed>_maps.npz``, float32: what the gallery draws and what anyone may recompute a metric
from). Knows no model: the comparison methods' stages do not depend on FRAD's network or training. Writes no clock
value: the same inputs give the same bytes."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from frad.cache import FeatureCache
from frad.evaluation import bootstrap
from frad.evaluation.curves import curves
from frad.evaluation.scoreset import METRICS, score_set
from frad.io import atomic_path, write_json

from .common import boot_path, curves_path, maps_path, score_path
from .params import Params

log = logging.getLogger("frad.evaluate")


def evaluate(
    params: Params,
    category: str,
    method: str,
    seed: int,
    maps: np.ndarray,
    scores: np.ndarray,
    cache: FeatureCache,
    info: dict[str, Any],
) -> dict:
    """Metrics, curves, bootstrap statistics and maps of one method's (N, S, S) test maps and (N,) image scores;
    every file atomic."""
    limit = params.score.pro_limit
    labels, masks = cache.test_labels(), cache.test_masks()
    scored = score_set(maps, masks, scores, labels)
    result: dict = {
        "category": category,
        "method": method,
        "seed": seed,
        **info,
        "n_test": int(len(labels)),
        "n_defect": int(labels.sum()),
        **scored.metrics(limit),
        "names": cache.test_names,
        "labels": labels.tolist(),
        "image_scores": [float(s) for s in scores],
    }
    shown = ", ".join(f"{m} {'n/a' if result[m] is None else f'{100 * result[m]:.1f}'}" for m in METRICS)
    log.info("%s/%s seed %d: %s", category, method, seed, shown)
    with atomic_path(maps_path(category, method, seed)) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                names=np.array(cache.test_names),
                maps=np.asarray(maps, dtype=np.float32),
                masks=masks if masks is not None else np.zeros(np.shape(maps), bool),
                has_masks=masks is not None,
                labels=labels,
                image_scores=np.asarray(scores, dtype=np.float64),
            )
    with atomic_path(boot_path(category, method, seed)) as tmp:
        bootstrap.statistics(scored, limit).save(tmp)
    write_json(curves_path(category, method, seed), curves(scored, limit))
    write_json(score_path(category, method, seed), result)
    return result
