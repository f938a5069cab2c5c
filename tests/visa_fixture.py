"""A tiny folder in VisA's released layout (``<category>/Data/Images/{Normal,Anomaly}/*.JPG``, multi-valued masks
``<category>/Data/Masks/Anomaly/*.png``, the one-class split ``split_csv/1cls.csv``), drawn by the synthetic
generator: the real layout without the real data."""

from __future__ import annotations

import csv
import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from frad.datasets.synthetic_render import render_sample


def make_visa(root: Path, category: str = "capsules", n_train: int = 6, n_good: int = 2, n_bad: int = 2, size=(96, 64)):
    """Write ``root`` in VisA's layout (non-square ``size`` = (width, height) JPEGs) and return it. Anomalous
    masks hold values 1 and 2 (two defect instances), as VisA's do."""
    w, h = size
    images = root / category / "Data" / "Images"
    masks = root / category / "Data" / "Masks" / "Anomaly"
    rows = []
    for i in range(n_train + n_good):
        r = render_sample("bottle", "good", i, 0, split="train", size=h)
        name = f"{i:04d}.JPG"
        _save(np.asarray(Image.fromarray(r.image).resize((w, h))), images / "Normal" / name)
        split = "train" if i < n_train else "test"
        rows.append([category, split, "normal", f"{category}/Data/Images/Normal/{name}", ""])
    for i in range(n_bad):
        r = render_sample("bottle", "crack", i, 0, size=h)
        image = np.asarray(Image.fromarray(r.image).resize((w, h)))
        mask = np.asarray(Image.fromarray(r.mask.astype(np.uint8)).resize((w, h), Image.Resampling.NEAREST))
        mask = mask.astype(np.uint8).ravel()
        defect = np.flatnonzero(mask)
        mask[defect[: defect.size // 2]] = 2  # a second instance: values 1 and 2, as in VisA's masks
        mask = mask.reshape(h, w)
        name = f"{i:03d}"
        _save(image, images / "Anomaly" / f"{name}.JPG")
        masks.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask, mode="L").save(masks / f"{name}.png")
        rows.append(
            [
                category,
                "test",
                "anomaly",
                f"{category}/Data/Images/Anomaly/{name}.JPG",
                f"{category}/Data/Masks/Anomaly/{name}.png",
            ]
        )
    (root / "split_csv").mkdir(parents=True, exist_ok=True)
    with (root / "split_csv" / "1cls.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["object", "split", "label", "image", "mask"])
        writer.writerows(rows)
    return root


def _save(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=95)


def visa_tar(root: Path, dest: Path) -> Path:
    """Pack ``root`` as VisA's archive is packed: an uncompressed tar with the categories and split_csv/ at its root."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for entry in sorted(root.iterdir()):
            tar.add(entry, arcname=entry.name)
    dest.write_bytes(buf.getvalue())
    return dest
