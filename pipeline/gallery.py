"""Stage `gallery` (one per category): reports/gallery/<category>/index.html, a static page of every test image with,
per method (FRAD and each comparison method, first seed), its anomaly-map overlay, the ground-truth contour, the
regions predicted at the method's pixel F1-max threshold (false positives and missed defects marked) and its image
score; thumbnails (JPEG) in reports/gallery/<category>/images, DVC outputs and image plots, never committed.

Reads the maps the score stages keep (``seed<s>_maps.npz``), the score files (image scores, F1-max thresholds) and
the test images (data/datasets/<category>, made S×S exactly as the backbone saw them: ``frad.datasets.preprocess``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from frad.datasets.layout import index_category, read_image
from frad.datasets.preprocess import Resize
from frad.errors import DataError
from frad.io import atomic_path
from frad.methods import METHODS

from .common import DATASETS, REPORTS, maps_path, score_path, stage_main, usage
from .gallery_page import page
from .params import Params, load_params

THUMB = 160  # px: a 160-image category with 4 methods is 800 JPEGs of ~10 KB
GALLERY = REPORTS / "gallery"
EIGHT = np.ones((3, 3), bool)
COLOURS = {  # contour colours (RGB), as the page's legend names them
    "truth": (40, 220, 40),  # a defect region the prediction overlaps
    "missed": (255, 0, 255),  # a defect region no predicted pixel touches
    "hit": (255, 230, 0),  # a predicted region touching a defect
    "false": (255, 40, 40),  # a predicted region touching no defect: a false positive
}


def _shrink(a: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a label or mask image to ``size``²."""
    idx = (np.arange(size) * a.shape[0] // size).clip(0, a.shape[0] - 1)
    jdx = (np.arange(size) * a.shape[1] // size).clip(0, a.shape[1] - 1)
    return a[np.ix_(idx, jdx)]


def _edge(mask: np.ndarray) -> np.ndarray:
    """A 2-px contour of a bool mask."""
    inner = ndimage.binary_erosion(mask, iterations=2, border_value=0)
    return mask & ~inner


def regions(pred: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """The four kinds of region of one map at a threshold (8-connected, as the metrics count regions): defect
    regions hit or missed by the prediction, predicted regions touching a defect or none (false positives)."""
    out = {}
    for name, (a, b) in (("truth", (truth, pred)), ("hit", (pred, truth))):
        lab, n = ndimage.label(a, structure=EIGHT)
        touched = np.unique(lab[b & (lab > 0)])
        out[name] = np.isin(lab, touched[touched > 0])
        out["missed" if name == "truth" else "false"] = (lab > 0) & ~out[name]
    return out


def overlay(image: np.ndarray, heat: np.ndarray, pred: np.ndarray, truth: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """The thumbnail of one method on one image: the map in colour over the image, and the region contours."""
    level = np.clip(heat * 255, 0, 255).astype(np.uint8)
    out = (0.55 * image + 0.45 * lut[_shrink(level, THUMB)]).astype(np.uint8)
    for name, mask in regions(pred, truth).items():
        edge = _edge(_shrink(mask, THUMB))
        out[edge] = COLOURS[name]
    return out


def _save(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="JPEG", quality=85, optimize=True)


def _load_method(category: str, method: str, seed: int) -> tuple[dict, dict]:
    score, maps = score_path(category, method, seed), maps_path(category, method, seed)
    try:
        record = json.loads(score.read_text())
        with np.load(maps, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("names", "maps", "masks", "has_masks")}
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"cannot read {score} or {maps} ({err}); rerun `dvc repro`") from None
    if list(arrays["names"]) != record["names"]:
        raise DataError(f"{maps} and {score} list other test images; rerun `dvc repro`")
    return record, arrays


def run(params: Params, category: str) -> Path:
    import matplotlib

    seed = params.train.seeds[0]
    methods = ["full", *params.compare.methods]
    loaded = {m: _load_method(category, m, seed) for m in methods}
    first_record, first = loaded["full"]
    names = first_record["names"]
    index = index_category(DATASETS, category)
    by_name = {f"{s.defect}/{s.path.name}": s for s in index.test}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise DataError(f"test image {missing[0]} of the scores is not in {DATASETS / category}; rerun `dvc repro`")
    d = params.data
    resize = Resize(d.image_size, d.crop, d.resize)
    lut = (np.asarray(matplotlib.colormaps["jet"](np.linspace(0, 1, 256)))[:, :3] * 255).astype(np.uint8)
    labels = np.asarray(first_record["labels"], bool)
    truth_all = first["masks"] if bool(first["has_masks"]) else np.zeros_like(first["maps"], bool)
    out = GALLERY / category
    with atomic_path(out / "images", is_dir=True) as tmp:  # two outputs: images/ (an image plot), index.html
        info = []
        for m in methods:
            record, arrays = loaded[m]
            maps = arrays["maps"]
            good = maps[~labels] if (~labels).any() else maps
            lo, hi = float(np.percentile(good, 1)), float(np.percentile(maps, 99.9))
            thr = record.get("pixel_f1max_threshold")
            info.append(
                {
                    "name": m,
                    "label": "FRAD" if m == "full" else METHODS[m].label,
                    "image_threshold": record.get("image_f1max_threshold"),
                    "pixel_threshold": thr,
                    "scale": [lo, hi],
                    **{k: record.get(k) for k in ("image_auroc", "image_f1max", "pixel_auroc", "pixel_f1max", "pro")},
                }
            )
        images = []
        for i, name in enumerate(names):
            base = _shrink(resize.thumbnail(read_image(by_name[name].path)), THUMB)
            _save(base, tmp / f"{i:04d}_image.jpg")  # no all-digit name: dvc plots sorts digit names apart
            entry = {"name": name, "defect": name.split("/")[0], "label": int(labels[i]), "scores": {}, "verdicts": {}}
            for m, meta in zip(methods, info):
                record, arrays = loaded[m]
                lo, hi = meta["scale"]
                heat = (arrays["maps"][i] - lo) / max(hi - lo, 1e-12)
                thr = meta["pixel_threshold"]
                pred = arrays["maps"][i] >= thr if thr is not None else np.zeros_like(truth_all[i])
                _save(overlay(base, heat, pred, truth_all[i], lut), tmp / f"{i:04d}_{m}.jpg")
                score = float(record["image_scores"][i])
                entry["scores"][m] = score
                t = meta["image_threshold"]
                said = None if t is None else bool(score >= t)
                entry["verdicts"][m] = (
                    None if said is None else ("T" if said == bool(labels[i]) else "F") + ("P" if said else "N")
                )
            images.append(entry)
    with atomic_path(out / "index.html") as tmp:
        tmp.write_text(page(d, category, seed, info, images, COLOURS))
    return out


@stage_main
def main(args: list[str]) -> None:
    (category,) = usage(args, 1, "python -m pipeline.gallery <category>")
    run(load_params(), category)


if __name__ == "__main__":
    main()
