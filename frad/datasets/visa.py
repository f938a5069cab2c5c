"""VisA (Zou, Jeong, Pemula, Zhang, Dabeer: SPot-the-difference self-supervised pre-training for anomaly detection
and segmentation, ECCV 2022): its categories and archive, and the converter from its released layout to the
validated layout every dataset is read in (``frad.datasets.layout``).

Released layout (what VisA_20220922.tar unpacks to)::

    <root>/<category>/Data/Images/{Normal,Anomaly}/*.JPG     RGB, about 1500×1000 (not square)
    <root>/<category>/Data/Masks/Anomaly/*.png                mode L, 0 = normal, 1..k = defect instances
    <root>/split_csv/1cls.csv                                 the official one-class split: object, split, label,
                                                              image, mask (paths relative to <root>)

:func:`convert_category` writes ``<dest>/train/good``, ``<dest>/test/{good,anomaly}`` (links to the released
images, nothing copied) and ``<dest>/ground_truth/anomaly/<stem>_mask.png`` (any non-zero value is a defect: 0/255).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ..errors import DataError

CATEGORIES: tuple[str, ...] = (
    "candle",
    "capsules",
    "cashew",
    "chewinggum",
    "fryum",
    "macaroni1",
    "macaroni2",
    "pcb1",
    "pcb2",
    "pcb3",
    "pcb4",
    "pipe_fryum",
)
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (  # VisA's own grouping (their Table 1); every category is an object
    ("Complex structure", ("pcb1", "pcb2", "pcb3", "pcb4")),
    ("Multiple instances", ("candle", "capsules", "macaroni1", "macaroni2")),
    ("Single instance", ("cashew", "chewinggum", "fryum", "pipe_fryum")),
)
MIRRORS: tuple[str, ...] = ("https://amazon-visual-anomaly.s3.us-west-2.amazonaws.com/VisA_20220922.tar",)
FILENAME = "VisA_20220922.tar"
SHA256 = "2eb8690c803ab37de0324772964100169ec8ba1fa3f7e94291c9ca673f40f362"
PAGE = "https://github.com/amazon-science/spot-diff"
CITATION = (
    "Zou, Jeong, Pemula, Zhang, Dabeer: SPot-the-Difference self-supervised pre-training for anomaly detection and "
    "segmentation, ECCV 2022"
)
LICENCE = "CC BY 4.0 (the official repository's LICENSE-DATASET)"

SPLIT_CSV = Path("split_csv") / "1cls.csv"
COLUMNS = ("object", "split", "label", "image", "mask")
DEFECT = "anomaly"  # the one defect folder: the split names no defect types


def split_rows(root: Path, category: str) -> list[dict[str, str]]:
    """The official split's rows of ``category``; a missing or malformed CSV is a DataError naming it."""
    path = root / SPLIT_CSV
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path} lacks the column {missing[0]} (VisA's split has {', '.join(COLUMNS)})")
            rows = list(reader)
    except FileNotFoundError:
        raise DataError(
            f"{path} not found: data.root must be VisA's released folder (with split_csv/ and the category folders)"
        ) from None
    mine = [r for r in rows if r["object"] == category]
    if not mine:
        present = sorted({r["object"] for r in rows})
        raise DataError(f"{path} has no rows for {category!r} (its objects: {', '.join(present)})")
    for r in mine:
        if r["split"] not in ("train", "test") or r["label"] not in ("normal", "anomaly"):
            raise DataError(f"{path}: row {r['image']!r} has split {r['split']!r}, label {r['label']!r}")
        if r["label"] == "anomaly" and (r["split"] != "test" or not r["mask"]):
            raise DataError(f"{path}: anomalous image {r['image']!r} must be a test image with a mask")
    return mine


def convert_category(root: str | os.PathLike, category: str, dest: str | os.PathLike) -> Path:
    """Write ``category`` of VisA's released layout at ``root`` into the validated layout at ``dest`` (atomically):
    images linked (relative links), masks binarised. Returns ``dest``."""
    import numpy as np
    from PIL import Image

    from ..io import atomic_path
    from .layout import GOOD, MASK_SUFFIX

    root, dest = Path(root), Path(dest)
    rows = split_rows(root, category)
    with atomic_path(dest, is_dir=True) as tmp:  # tmp is dest's sibling: links relative to dest work from it
        for r in rows:
            image = root / r["image"]
            if not image.is_file():
                raise DataError(f"{image} is listed in {root / SPLIT_CSV} but does not exist; the copy is incomplete")
            folder = ("train" if r["split"] == "train" else "test") + "/" + (GOOD if r["label"] == "normal" else DEFECT)
            link = tmp / folder / image.name
            if link.exists() or link.is_symlink():
                raise DataError(f"{root / SPLIT_CSV} lists two {folder} images named {image.name} in {category}")
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(image.resolve(), (dest / folder).resolve()), link)
            if r["label"] == "anomaly":
                mask_path = root / r["mask"]
                try:
                    with Image.open(mask_path) as im:
                        values = np.asarray(im)
                except (OSError, ValueError) as err:
                    raise DataError(f"cannot read the VisA mask {mask_path} ({err}); the copy is incomplete") from None
                out = tmp / "ground_truth" / DEFECT / f"{image.stem}{MASK_SUFFIX}"
                out.parent.mkdir(parents=True, exist_ok=True)
                binary = (values.reshape(values.shape[:2] + (-1,)) != 0).any(axis=-1)  # any non-zero value: defect
                Image.fromarray(binary.astype(np.uint8) * 255).save(out, format="PNG", compress_level=6)
    return dest
