"""The FRAD paper's published results ("Ours" columns), transcribed from Tables 1–4 — values in %.

Source: Lu, Li, Wang, Yang, "Unsupervised industrial anomaly detection based on feature reconstruction"
(full text: shared/paper/frad-paper.txt). Category names are the MVTec AD folder names; the paper's
typos "capsure" (= capsule) and "hazel_nut" (= hazelnut) are corrected.

* Table 1: image (sample-level) and pixel AUROC per category, with texture / object / total averages.
* Table 2: PRO per category, with the same averages.
* Table 3: module ablation, averages over the 15 categories. The paper's two checkmark columns are
  unlabelled; the text fixes their order: the row with only the first mark gains image AUROC (GFE
  "mainly strengthens global features"), the row with only the second gains 0.4 pixel AUROC and
  0.3 PRO at a small image-AUROC cost (feature recombination, i.e. the shuffle loss). So the first
  column is GFE, the second the shuffle loss.
* Table 4: layer ablation of the full model (GFE + shuffle), averages over the 15 categories; the
  row L = {2, 3} is the paper's standard configuration (equal to Table 3's full row).

The published averages agree with the means of the per-category values to within rounding (tested).
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

METRICS: tuple[str, ...] = ("image_auroc", "pixel_auroc", "pro")
"""Metric keys, as in the score files (data/scores/<category>/<variant>.json)."""

TEXTURES: tuple[str, ...] = ("carpet", "grid", "leather", "tile", "wood")
OBJECTS: tuple[str, ...] = (
    "bottle", "cable", "capsule", "hazelnut", "metal_nut", "pill", "screw", "toothbrush", "transistor", "zipper",
)
CATEGORIES: tuple[str, ...] = TEXTURES + OBJECTS
GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType({"texture": TEXTURES, "object": OBJECTS, "total": CATEGORIES})
"""The categories behind each published average row."""

# ------------------------------------------------------------------------------------------------
# Table 1 — AUROC on MVTec AD, "Ours" column: (image AUROC, pixel AUROC) in %.
# ------------------------------------------------------------------------------------------------
TABLE1: Mapping[str, tuple[float, float]] = MappingProxyType({
    "carpet": (100.0, 99.2),
    "grid": (100.0, 99.3),
    "leather": (100.0, 99.4),
    "tile": (99.2, 95.5),
    "wood": (99.0, 95.4),
    "bottle": (100.0, 98.9),
    "cable": (99.2, 98.3),
    "capsule": (96.1, 98.5),
    "hazelnut": (100.0, 99.2),
    "metal_nut": (100.0, 97.1),
    "pill": (98.0, 97.7),
    "screw": (96.7, 99.5),
    "toothbrush": (93.3, 99.1),
    "transistor": (100.0, 98.3),
    "zipper": (98.5, 98.4),
})
TABLE1_AVERAGES: Mapping[str, tuple[float, float]] = MappingProxyType({
    "texture": (99.6, 97.8),
    "object": (98.2, 98.5),
    "total": (98.7, 98.3),
})

# ------------------------------------------------------------------------------------------------
# Table 2 — PRO on MVTec AD, "Ours" column, in %.
# ------------------------------------------------------------------------------------------------
TABLE2: Mapping[str, float] = MappingProxyType({
    "carpet": 97.5,
    "grid": 97.6,
    "leather": 99.1,
    "tile": 90.2,
    "wood": 92.5,
    "bottle": 96.8,
    "cable": 93.5,
    "capsule": 96.2,
    "hazelnut": 95.7,
    "metal_nut": 88.0,
    "pill": 95.9,
    "screw": 97.7,
    "toothbrush": 94.2,
    "transistor": 87.8,
    "zipper": 95.7,
})
TABLE2_AVERAGES: Mapping[str, float] = MappingProxyType({"texture": 95.4, "object": 94.2, "total": 94.6})

# ------------------------------------------------------------------------------------------------
# Table 3 — module ablation: (GFE, shuffle loss) -> (image AUROC, pixel AUROC, PRO) in %.
# ------------------------------------------------------------------------------------------------
TABLE3: Mapping[tuple[bool, bool], tuple[float, float, float]] = MappingProxyType({
    (False, False): (97.9, 97.6, 93.8),  # baseline
    (True, False): (98.1, 97.7, 93.9),  # GFE only
    (False, True): (97.6, 98.0, 94.1),  # shuffle (feature recombination) only
    (True, True): (98.7, 98.3, 94.6),  # full model
})
TABLE3_VARIANTS: Mapping[str, tuple[bool, bool]] = MappingProxyType({
    "baseline": (False, False),
    "gfe": (True, False),
    "shuffle": (False, True),
    "full": (True, True),
})
"""Score-file variant name -> its (GFE, shuffle) modules in the paper's sense."""

# ------------------------------------------------------------------------------------------------
# Table 4 — layer ablation of the full model: layer set -> (image AUROC, pixel AUROC, PRO) in %.
# ------------------------------------------------------------------------------------------------
TABLE4: Mapping[tuple[int, ...], tuple[float, float, float]] = MappingProxyType({
    (1,): (88.1, 95.7, 89.1),
    (2,): (98.4, 97.9, 93.6),
    (3,): (97.6, 97.2, 90.7),
    (2, 3): (98.7, 98.3, 94.6),  # the paper's standard configuration
    (1, 2, 3): (95.2, 97.4, 92.8),
})


def category_value(category: str, metric: str) -> float | None:
    """The paper's per-category value of ``metric`` (Tables 1–2) in %, or None if the paper lacks it."""
    if metric == "pro":
        return TABLE2.get(category)
    row = TABLE1.get(category)
    if row is None:
        return None
    return row[("image_auroc", "pixel_auroc").index(metric)]


def average_value(group: str, metric: str) -> float:
    """The paper's published average of ``metric`` over ``group`` ("texture", "object" or "total") in %."""
    if metric == "pro":
        return TABLE2_AVERAGES[group]
    return TABLE1_AVERAGES[group][("image_auroc", "pixel_auroc").index(metric)]


def module_ablation(gfe: bool, ssl: bool) -> dict[str, float]:
    """Table 3 row of the model with the given modules: {metric: value in %}."""
    return dict(zip(METRICS, TABLE3[(bool(gfe), bool(ssl))]))


def layer_ablation(layers: tuple[int, ...] | list[int]) -> dict[str, float] | None:
    """Table 4 row of the full model on ``layers`` ({metric: value in %}), None if the paper has no such row."""
    row = TABLE4.get(tuple(sorted(layers)))
    return None if row is None else dict(zip(METRICS, row))
