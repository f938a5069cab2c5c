"""What the report calls things: the metrics and their labels, the methods' labels, the rows of Table 3, and the
marks of special cells. The one place these names are defined; every table, section and the study's report
(``pipeline.choices_report``) look them up here."""

from __future__ import annotations

from typing import Mapping

from frad.methods import METHODS

from .. import paper

METRICS: tuple[str, ...] = paper.METRICS
METRIC_LABELS: Mapping[str, str] = {"image_auroc": "Image AUROC", "pixel_auroc": "Pixel AUROC", "pro": "PRO"}
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
