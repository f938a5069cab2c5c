"""What every scoring stage shares (FRAD's `score`, the comparison methods' `compare`): :func:`evaluate` measures one
method's test maps and image scores the same way — image AUROC, pixel AUROC, AU-PRO (``frad.evaluation.metrics``) into
data/scores/<category>/<method>/seed<seed>.json, per-image statistics for the report's bootstrap intervals
(``frad.evaluation.bootstrap``) next to it (``seed<seed>_boot.npz``), ROC/PRO curves into data/curves/…, and a few maps for the
report's figures. Knows no model: the comparison methods' stages do not depend on FRAD's network or training."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from frad.cache import FeatureCache
from frad.datasets.layout import index_category, read_image
from frad.evaluation import bootstrap, metrics
from frad.evaluation.curves import compute_curves
from frad.io import atomic_path, write_json

from .common import DATASETS, boot_path, curves_path, maps_path, score_path
from .params import Params

log = logging.getLogger("frad.evaluate")


def figure_indices(labels: np.ndarray, n: int) -> list[int]:
    """n test images for figures, spread evenly over the defect images (deterministic)."""
    defect = np.flatnonzero(labels == 1)
    pool = defect if len(defect) else np.arange(len(labels))
    if n <= 0 or len(pool) == 0:
        return []
    return sorted({int(pool[i]) for i in np.linspace(0, len(pool) - 1, min(n, len(pool))).round().astype(int)})


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
    """Metrics, curves and figure maps of one method's (N, S, S) test maps and (N,) image scores; every file atomic."""
    sc = params.score
    labels, masks = cache.test_labels(), cache.test_masks()
    result: dict = {
        "category": category,
        "method": method,
        "seed": seed,
        **info,
        "n_test": int(len(labels)),
        "n_defect": int(labels.sum()),
    }
    result.update(metrics.measure(maps, scores, labels, masks, sc.pro_limit))
    result.update(names=cache.test_names, labels=labels.tolist(), image_scores=[float(s) for s in scores])
    log.info(
        "%s/%s seed %d: image AUROC %s, pixel AUROC %s, PRO %s",
        category,
        method,
        seed,
        result["image_auroc"],
        result["pixel_auroc"],
        result["pro"],
    )

    keep = figure_indices(labels, sc.n_figures)
    index = index_category(DATASETS, category)
    size = cache.image_size
    images = (
        np.stack([cache.resize.thumbnail(read_image(index.test[i].path)) for i in keep])
        if keep
        else np.zeros((0, size, size, 3), np.uint8)
    )
    with atomic_path(maps_path(category, method, seed)) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                names=np.array([cache.test_names[i] for i in keep]),
                images=images,
                maps=maps[keep].astype(np.float16),
                masks=masks[keep] if masks is not None else np.zeros((len(keep), size, size), bool),
                has_masks=masks is not None,
            )
    with atomic_path(boot_path(category, method, seed)) as tmp:
        bootstrap.summarise(maps, masks, scores, labels, sc.pro_limit).save(tmp)
    write_json(curves_path(category, method, seed), compute_curves(maps, masks, scores, labels, sc.pro_limit))
    write_json(score_path(category, method, seed), result)
    return result
