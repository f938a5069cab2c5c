"""One scored test set, summarised once: the single pass over a method's maps from which every metric (exact),
every curve (:mod:`frad.evaluation.curves`) and the per-image statistics of the bootstrap
(:mod:`frad.evaluation.bootstrap`) are derived. :mod:`frad.evaluation.metrics` is the readable reference each
derived metric is tested against.

The pass: validate the inputs, sort the normal pixels (globally, in parallel parts, and per image), take the
defect pixels with their image and their 8-connected region. The metrics then count, for each distinct defect
score, the normal pixels below and at it (``searchsorted``): pixel AUROC, AP and F1-max from the same counts,
AU-PRO from the same sorted arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import metrics

METRICS = ("image_auroc", "pixel_auroc", "pro", "image_ap", "image_f1max", "pixel_ap", "pixel_f1max")
"""Every metric of a scored test set: the paper's three, then average precision and F1-max (image, pixel)."""
THRESHOLDS = {"image_f1max": "image_f1max_threshold", "pixel_f1max": "pixel_f1max_threshold"}
"""The score at which each F1-max is reached (the lowest of equal maxima)."""
NO_MASKS = metrics.NO_MASKS


@dataclass(frozen=True)
class Pixels:
    """The pixels of a test set with both classes: sorted once."""

    shape: tuple[int, int, int]  # (N, H, W)
    normal_parts: list[np.ndarray]  # ascending normal scores, in parts (their union is every normal pixel)
    normal_by_image: list[np.ndarray]  # ascending normal scores of each image
    defect: np.ndarray  # defect scores in flat (image, row, column) order
    defect_image: np.ndarray  # image of each defect pixel
    region: np.ndarray  # 8-connected region (1..R over the set) of each defect pixel
    n_regions: int
    order: np.ndarray  # argsort of ``defect`` (ascending)

    @property
    def n_normal(self) -> int:
        return sum(p.size for p in self.normal_parts)


@dataclass(frozen=True)
class ScoreSet:
    """(N,) image scores and labels; ``pixels`` None when pixel metrics are undefined (``pixel_reason`` says why)."""

    image_scores: np.ndarray
    labels: np.ndarray
    pixels: Pixels | None
    pixel_reason: str | None

    def metrics(self, pro_limit: float = 0.3) -> dict[str, Any]:
        """Every metric of :data:`METRICS` (a fraction, or None with its reason under ``"undefined"``) and the
        F1-max thresholds (:data:`THRESHOLDS`), exactly as :mod:`frad.evaluation.metrics` computes them."""
        out: dict[str, Any] = {"undefined": {}}

        def put(names: tuple[str, ...], compute) -> None:
            try:
                values = compute()
            except metrics.UndefinedMetricError as err:
                values = (None,) * len(names)
                for name in names:
                    if name in METRICS:
                        out["undefined"][name] = str(err)
            out.update(zip(names, (None if v is None else float(v) for v in values)))

        put(("image_auroc",), lambda: (metrics.image_auroc(self.image_scores, self.labels),))
        put(
            ("image_ap", "image_f1max", "image_f1max_threshold"),
            lambda: metrics.ap_and_f1max(*metrics._image_counts(self.image_scores, self.labels)),
        )
        pixel = ("pixel_auroc", "pixel_ap", "pixel_f1max", "pixel_f1max_threshold", "pro")
        if self.pixels is None:
            out.update(dict.fromkeys(pixel))
            out["undefined"].update(dict.fromkeys(("pixel_auroc", "pixel_ap", "pixel_f1max", "pro"), self.pixel_reason))
        else:
            put(pixel, lambda: self._pixel_metrics(float(pro_limit)))
        return out

    def _pixel_metrics(self, limit: float) -> tuple[float, ...]:
        px = self.pixels
        assert px is not None
        if not 0.0 < limit <= 1.0:
            raise ValueError(f"fpr_limit must be in (0, 1], got {limit!r}")
        ordered = px.defect[px.order]
        starts, run = metrics._ties_grouped(ordered)
        values = ordered[starts]
        parts = px.normal_parts
        below = metrics._count_below(parts, values)
        at_or_below = sum(np.searchsorted(p, values, side="right").astype(np.int64) for p in parts)
        n_pos, n_neg = ordered.size, px.n_normal
        twice = below + at_or_below  # 2·#(normal < v) + #(normal = v)
        auroc = int(np.dot(run, twice)) / (2 * n_pos * n_neg)
        ap, f1, threshold = metrics.ap_and_f1max(values, n_pos - starts.astype(np.int64), n_neg - below)
        pro = metrics.au_pro_sorted(parts, ordered, px.region[px.order], px.n_regions, n_neg, limit)
        return auroc, ap, f1, threshold, pro


def score_set(anomaly_maps: Any, masks: Any, image_scores: Any, labels: Any) -> ScoreSet:
    """The one pass over (N, H, W) maps and masks (None: a category without masks) and (N,) image scores and 0/1
    labels."""
    s = metrics._as_scores(image_scores, "image_scores")
    y = metrics._as_binary(labels, "labels")
    if masks is None:
        maps = metrics._as_scores(anomaly_maps, "anomaly_maps")
        defect = None
    else:
        maps, defect = metrics._check_maps_masks(anomaly_maps, masks)
    n = maps.shape[0]
    if maps.ndim != 3 or s.shape != (n,) or y.shape != (n,):
        raise ValueError(f"image_scores {s.shape} and labels {y.shape} must have shape ({n},), one per map")
    if defect is None:
        return ScoreSet(s, y, None, NO_MASKS)
    n_pixels = defect.size
    n_def = int(np.count_nonzero(defect))
    if n_def == 0 or n_def == n_pixels:
        what = "defect" if n_def == 0 else "normal"
        return ScoreSet(s, y, None, f"the masks contain no {what} pixels: pixel metrics are undefined")
    flat, defect_flat = maps.ravel(), defect.ravel()
    slices = metrics._part_slices(flat.size)
    parts = metrics._run_all(
        [metrics._sorted_normal_task(flat, defect_flat, part, None) for part in slices], parallel=len(slices) > 1
    )
    per_image = maps.reshape(n, -1)
    per_defect = defect.reshape(n, -1)
    by_image = [np.sort(per_image[i][~per_defect[i]]) for i in range(n)]
    def_idx = np.flatnonzero(defect_flat)
    scores = flat[def_idx]
    region, n_regions = metrics._label_regions(defect, def_idx)
    pixels = Pixels(
        shape=maps.shape,  # type: ignore[arg-type]
        normal_parts=parts,
        normal_by_image=by_image,
        defect=scores,
        defect_image=def_idx // per_image.shape[1],
        region=region,
        n_regions=n_regions,
        order=np.argsort(scores, kind="stable"),
    )
    return ScoreSet(s, y, pixels, None)
