"""What the report calls things: the metrics and their labels, the methods' labels, the rows of Table 3, and the
marks of special cells. The one place these names are defined; every table, section and the study's report
(``pipeline.choices_report``) look them up here."""

from __future__ import annotations

from typing import Mapping

from frad.evaluation.scoreset import METRICS as ALL_METRICS
from frad.methods import METHODS

from .. import paper

METRICS: tuple[str, ...] = paper.METRICS
"""The paper's three metrics: Tables 1–4 and the study."""
ALL_METRICS_ORDER: tuple[str, ...] = (
    "image_auroc",
    "image_ap",
    "image_f1max",
    "pixel_auroc",
    "pixel_ap",
    "pixel_f1max",
    "pro",
)
"""Every metric (``frad.evaluation.scoreset.METRICS``) in the all-metrics table's order: image, then pixel level."""
assert sorted(ALL_METRICS_ORDER) == sorted(ALL_METRICS)
METRIC_LABELS: Mapping[str, str] = {
    "image_auroc": "Image AUROC",
    "pixel_auroc": "Pixel AUROC",
    "pro": "PRO",
    "image_ap": "Image AP",
    "image_f1max": "Image F1-max",
    "pixel_ap": "Pixel AP",
    "pixel_f1max": "Pixel F1-max",
}
METHOD_LABELS: Mapping[str, str] = {"full": "FRAD", **{name: m.label for name, m in METHODS.items()}}
"""FRAD's main model, then every comparison method of the registry (frad.methods)."""
TABLE3_ROWS: tuple[tuple[str, str], ...] = (
    ("baseline", "baseline"),
    ("gfe", "GFE only"),
    ("shuffle", "shuffle only"),
    ("full", "full"),
)

CHECK = "✓"
DASH = "—"
NA = "n/a"
NOISE = "≈"
