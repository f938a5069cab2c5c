"""Recompute a run's metrics with scikit-learn from the maps its score stages stored, and compare.

    python scripts/check_metrics.py [WORKSPACE] [--tol 1e-6]

For every score item of the workspace (``data/scores/<category>/<method>/seed<s>_maps.npz`` beside its
``seed<s>.json``): image and pixel AUROC (``roc_auc_score``), AP (``average_precision_score``) and F1-max (the best
F1 over ``precision_recall_curve``) from the stored float32 maps, masks, labels and image scores, against the score
file; then ``reports/metrics.json`` against the mean over categories and seeds of the score files. Prints the
largest difference per metric; exits 1 when one exceeds ``--tol``. Independent of frad's own metrics code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

METRICS = ("image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_ap", "pixel_f1max")


def f1_max(y: np.ndarray, s: np.ndarray) -> float:
    precision, recall, _ = precision_recall_curve(y, s)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros_like(precision), where=precision + recall > 0
    )
    return float(f1.max())


def sklearn_metrics(path: Path) -> dict[str, float | None]:
    with np.load(path) as z:
        maps, masks, labels, scores = z["maps"], z["masks"], z["labels"].astype(bool), z["image_scores"]
        has_masks = bool(z["has_masks"])
    out: dict[str, float | None] = dict.fromkeys(METRICS)
    if 0 < labels.sum() < labels.size:
        out.update(
            image_auroc=roc_auc_score(labels, scores),
            image_ap=average_precision_score(labels, scores),
            image_f1max=f1_max(labels, scores),
        )
    if has_masks and 0 < masks.sum() < masks.size:
        y, s = masks.ravel(), maps.ravel()
        out.update(pixel_auroc=roc_auc_score(y, s), pixel_ap=average_precision_score(y, s), pixel_f1max=f1_max(y, s))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workspace", nargs="?", type=Path, default=Path("."))
    ap.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args(argv)
    worst: dict[str, float] = defaultdict(float)
    per_method: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    items = sorted((args.workspace / "data" / "scores").glob("*/*/seed*_maps.npz"))
    for maps in items:
        record = json.loads(maps.with_name(maps.name.replace("_maps.npz", ".json")).read_text())
        ref = sklearn_metrics(maps)
        for m in METRICS:
            if (ref[m] is None) != (record[m] is None):
                print(f"{maps}: {m} defined in one only (ours {record[m]}, sklearn {ref[m]})")
                worst[m] = float("inf")
            elif ref[m] is not None:
                worst[m] = max(worst[m], abs(ref[m] - record[m]))
                per_method[record["method"]][m].append(record[m])
    print(f"{len(items)} score items of {args.workspace}; largest |ours - scikit-learn| per metric:")
    for m in METRICS:
        print(f"  {m:12s} {worst[m]:.2e}")
    summary = args.workspace / "reports" / "metrics.json"
    if summary.is_file():
        data = json.loads(summary.read_text())
        for method, values in per_method.items():
            shown = data if method == "full" else data.get("methods", {}).get(method)
            if shown is None:
                continue
            for m, vs in values.items():
                worst[f"metrics.json {m}"] = max(worst[f"metrics.json {m}"], abs(shown[m] - float(np.mean(vs))))
        print(
            f"  metrics.json against the mean of the score files: {max(v for k, v in worst.items() if k.startswith('metrics.json')):.2e}"
        )
    return 1 if max(worst.values(), default=0.0) > args.tol else 0


if __name__ == "__main__":
    sys.exit(main())
