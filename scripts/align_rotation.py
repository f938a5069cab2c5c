"""Rotation-normalised copy of an object category (docs/diagnosis.md, screw: "does the reconstruction fail because
the object lies at any angle?"): every image is rotated about the object's centroid so that the object's principal
axis is vertical, its heavier end (a screw's head) up, and the object is moved to the image centre; masks under
``ground_truth/`` get the same transform (nearest neighbour).

    python scripts/align_rotation.py <category folder> <output folder>

The object is the Otsu foreground (darker or brighter than the background, whichever is the minority of the
pixels); the axis is the first principal component of its pixel coordinates; the heavier end is the sign of the
third moment along that axis. Outside the image the background is mirrored (masks: 0). A diagnostic only: never a default (the
paper does not align), and the same transform is applied to good and defective images alike.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.filters import threshold_otsu
from skimage.transform import AffineTransform, warp


def object_pose(gray: np.ndarray) -> tuple[float, float, float]:
    """(row, column) of the object's centroid and the angle (radians) that turns its axis to point up."""
    t = threshold_otsu(gray)
    fg = gray < t if (gray < t).mean() < 0.5 else gray >= t
    rows, cols = np.nonzero(fg)
    pts = np.stack([cols - cols.mean(), rows - rows.mean()], axis=1).astype(np.float64)  # x right, y down
    _, vecs = np.linalg.eigh(pts.T @ pts)
    axis = vecs[:, -1]
    proj = pts @ axis
    if (proj**3).mean() > 0:  # the heavy end (wide head: long tail of the projection on its side) goes up
        axis = -axis
    angle = np.arctan2(axis[0], -axis[1])  # angle of the axis from "up" (0, -1), clockwise positive
    return float(rows.mean()), float(cols.mean()), float(angle)


def align(image: np.ndarray, pose: tuple[float, float, float], order: int) -> np.ndarray:
    r, c, angle = pose
    h, w = image.shape[:2]
    # output -> input: translate the centre to the origin, rotate by the object's angle, translate to its centroid
    to_origin = AffineTransform(translation=(-(w - 1) / 2, -(h - 1) / 2))
    turn = AffineTransform(rotation=angle)
    to_object = AffineTransform(translation=(c, r))
    inverse = AffineTransform(matrix=to_object.params @ turn.params @ to_origin.params)
    out = warp(image, inverse, order=order, mode="reflect" if order else "constant", preserve_range=True)
    return out.astype(image.dtype)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("category", type=Path)
    p.add_argument("out", type=Path)
    args = p.parse_args(argv)
    images = sorted((args.category / "train").rglob("*.png")) + sorted((args.category / "test").rglob("*.png"))
    if not images:
        print(f"{args.category}: no PNG images under train/ or test/", file=sys.stderr)
        return 2
    angles = []
    for path in images:
        rel = path.relative_to(args.category)
        image = np.asarray(Image.open(path))
        gray = image if image.ndim == 2 else image[..., :3].mean(-1)
        pose = object_pose(gray)
        angles.append(np.degrees(pose[2]))
        dest = args.out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(align(image, pose, 1)).save(dest)
        mask = args.category / "ground_truth" / rel.parent.name / f"{path.stem}_mask.png"
        if rel.parts[0] == "test" and mask.is_file():
            out = args.out / "ground_truth" / rel.parent.name / mask.name
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(align(np.asarray(Image.open(mask)), pose, 0)).save(out)
    a = np.abs(np.asarray(angles))
    print(f"{len(images)} images aligned into {args.out}; |rotation| median {np.median(a):.0f}°, max {a.max():.0f}°")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
