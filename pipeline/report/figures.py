"""The report's pictures: ``figures/<category>.png`` (test image, anomaly map, ground truth of the full model,
first seed) and the DVC plot files ``plots/<curve>/<category>.json`` (ROC and PRO curves of every method, first
seed; plus the interval rows)."""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from frad.errors import DataError
from frad.evaluation.curves import CURVES, plot_rows
from frad.io import atomic_path

from ..params import Params

log = logging.getLogger("frad.report")

CURVES_DIR = Path("data/curves")
MAX_FIGURE_ROWS = 8


@dataclass(frozen=True)
class Maps:
    names: list[str]
    images: np.ndarray  # (k, S, S, 3) uint8
    maps: np.ndarray  # (k, S, S) float32
    masks: np.ndarray  # (k, S, S) bool
    has_masks: bool = True  # False: a category without ground truth (the mask column says so)


def load_maps(path: Path) -> Maps:
    """Read a ``seed<s>_maps.npz`` written by the score stage, checking shapes."""
    try:
        with np.load(path, allow_pickle=False) as z:
            names, images, maps, masks = (z[k] for k in ("names", "images", "maps", "masks"))
            has_masks = bool(z["has_masks"]) if "has_masks" in z.files else True
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise DataError(f"{path} is not a readable maps file ({err}); rerun `dvc repro`") from None
    k = len(names)
    if (
        names.ndim != 1
        or images.ndim != 4
        or images.shape[-1] != 3
        or maps.ndim != 3
        or masks.ndim != 3
        or not len(images) == len(maps) == len(masks) == k
    ):
        raise DataError(
            f"{path}: inconsistent shapes names {names.shape}, images {images.shape}, maps {maps.shape}, masks {masks.shape}; "
            "rerun `dvc repro`"
        )
    maps = np.nan_to_num(maps.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return Maps([str(n) for n in names], images.astype(np.uint8), maps, masks.astype(bool), has_masks)


def save_figure(category: str, data: Maps, path: Path) -> None:
    """A grid of (test image, anomaly-map overlay, ground truth) rows, one colour scale for the figure."""
    from matplotlib.figure import Figure  # the OO API: no pyplot state, renders with Agg

    k = min(len(data.names), MAX_FIGURE_ROWS)
    lo, hi = float(data.maps[:k].min()), float(data.maps[:k].max())
    hi = hi if hi > lo else lo + 1e-6
    fig = Figure(figsize=(6.0, 2.0 * k + 0.5), dpi=80)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.45 / (2.0 * k + 0.5), wspace=0.05, hspace=0.25)
    axes = fig.subplots(k, 3, squeeze=False)
    for i in range(k):
        image = data.images[i]
        h, w = image.shape[:2]
        extent = (-0.5, w - 0.5, h - 0.5, -0.5)  # maps and masks drawn over the image, whatever their size
        axes[i][0].imshow(image)
        axes[i][1].imshow(image)
        axes[i][1].imshow(
            data.maps[i], cmap="jet", alpha=0.5, vmin=lo, vmax=hi, extent=extent, interpolation="bilinear"
        )
        if data.has_masks:
            axes[i][2].imshow(data.masks[i], cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="nearest")
        else:
            axes[i][2].text(0.5, 0.5, "no mask", ha="center", va="center", fontsize=7, transform=axes[i][2].transAxes)
        axes[i][0].set_title(data.names[i], fontsize=7)
        for ax in axes[i]:
            ax.set_axis_off()
    axes[0][1].set_title("anomaly map", fontsize=7)
    axes[0][2].set_title("ground truth", fontsize=7)
    fig.suptitle(f"{category} (full model; map scale {lo:.3g} to {hi:.3g})", fontsize=8)
    fig.savefig(path, format="png", metadata={"Software": None})


def write_figures(scores_dir: Path, p: Params, figures_dir: Path) -> list[str]:
    """Replace ``figures_dir`` by one PNG per category that has full-model maps; returns the categories drawn."""
    drawn: list[str] = []
    with atomic_path(figures_dir, is_dir=True) as tmp:
        for c in p.data.categories:
            path = scores_dir / c / "full" / f"seed{p.train.seeds[0]}_maps.npz"
            if not path.is_file():
                log.warning("report: no %s, figure of %s skipped", path, c)
                continue
            data = load_maps(path)
            if not data.names:
                log.warning("report: %s holds no images, figure of %s skipped", path, c)
                continue
            save_figure(c, data, tmp / f"{c}.png")
            drawn.append(c)
    return drawn


def load_curves(curves_dir: Path, p: Params) -> dict[str, dict[str, Any]]:
    """{category: {method: curves}} of the first seed, as the score stages wrote them (``frad.evaluation.curves``)."""
    seed = p.train.seeds[0]
    curves: dict[str, dict[str, Any]] = {}
    for c in p.data.categories:
        curves[c] = {}
        for m in p.methods:
            path = curves_dir / c / m / f"seed{seed}.json"
            try:
                curves[c][m] = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise DataError(f"{path} is not a readable curves file ({err}); rerun `dvc repro`") from None
            if not isinstance(curves[c][m], dict):
                raise DataError(f"{path} is not a curves file (expected a JSON object); rerun `dvc repro`")
    return curves


def write_plots(
    curves: Mapping[str, Mapping[str, Any]],
    p: Params,
    plots_dir: Path,
    more: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """``plots_dir/<curve>/<category>.json``: every method's curve (first seed), one DVC plot each; ``more``:
    other plot folders {folder: {file stem: rows}} (the intervals)."""
    with atomic_path(plots_dir, is_dir=True) as tmp:
        for name in CURVES:
            (tmp / name).mkdir()
            for c in p.data.categories:
                (tmp / name / f"{c}.json").write_text(json.dumps(plot_rows(curves[c], name)) + "\n")
        for folder, files in (more or {}).items():
            (tmp / folder).mkdir()
            for stem, rows in files.items():
                (tmp / folder / f"{stem}.json").write_text(json.dumps(rows) + "\n")
