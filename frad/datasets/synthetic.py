"""Seeded synthetic categories in MVTec AD layout, for fast tests and an offline demo.

Each image is drawn by :mod:`frad.datasets.synthetic_render` (a ``texture`` or ``object`` style per category, two or
three defect types) with its own RNG seeded from ``(seed, category, split, defect, index)``, so the same seed
gives byte-identical files, adding a category changes no other, and changing ``n_train`` leaves the test set
unchanged. Masks (0/255 PNG) cover exactly the pixels the defect painted over.

Defaults (per category): ``size=256`` px, ``n_train=32`` good training images, ``n_test_good=8`` good
test images and ``n_test_defect_per_type=6`` images per defect type (12 for textures, 18 for objects) —
enough for a small reconstruction model to learn a category in minutes on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from frad.datasets.layout import GOOD, MASK_SUFFIX
from frad.datasets.synthetic_render import DEFAULT_SIZE, category_style, defect_types, render_sample
from frad.errors import ConfigError, DataError
from frad.io import atomic_path

DEFAULT_N_TRAIN = 32
DEFAULT_N_TEST_GOOD = 8
DEFAULT_N_TEST_DEFECT_PER_TYPE = 6

MARKER = ".frad_synthetic.json"  # marks a folder this module wrote (and may therefore replace)
_FORMAT_VERSION = 2


def _check_category_name(category: str) -> None:
    if (
        not isinstance(category, str)
        or not category
        or category != category.strip()
        or category.startswith(".")
        or any(ch in category for ch in "/\\\0")
    ):
        raise ConfigError(
            f"category name {category!r} is not a plain folder name: use letters, digits, '_' or '-' (no '/', no leading '.')"
        )


def _save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG", optimize=False, compress_level=6)


def generate_category(
    root: str | Path,
    category: str,
    seed: int = 0,
    *,
    n_train: int = DEFAULT_N_TRAIN,
    n_test_good: int = DEFAULT_N_TEST_GOOD,
    n_test_defect_per_type: int = DEFAULT_N_TEST_DEFECT_PER_TYPE,
    size: int = DEFAULT_SIZE,
) -> Path:
    """Write ``<root>/<category>`` in MVTec AD layout and return that path.

    Files are written into a hidden temporary sibling folder and renamed into place when complete.
    An existing ``<root>/<category>`` written by this module is replaced; any other existing folder is
    left alone and raises DataError (so real data is never overwritten).
    """
    _check_category_name(category)
    counts = {
        "n_train": n_train,
        "n_test_good": n_test_good,
        "n_test_defect_per_type": n_test_defect_per_type,
        "size": size,
    }
    for key, val in counts.items():
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 0:
            raise ConfigError(f"{key} must be a non-negative integer, got {val!r}")
    if n_train < 1:
        raise ConfigError(f"n_train must be at least 1, got {n_train}")
    if not 32 <= size <= 4096:
        raise ConfigError(f"size must be between 32 and 4096 px, got {size}")
    kinds = defect_types(category)
    if n_test_good + n_test_defect_per_type * len(kinds) < 1:
        raise ConfigError("n_test_good and n_test_defect_per_type are both 0: the test set would be empty")

    root = Path(root)
    target = root / category
    if target.exists() and not (target / MARKER).is_file():
        raise DataError(
            f"{target} already exists and was not written by frad.datasets.synthetic: choose another root or delete it yourself"
        )
    with atomic_path(target, is_dir=True) as tmp:  # a killed run leaves no half-written category
        width = max(3, len(str(max(n_train, n_test_good, n_test_defect_per_type))))
        for i in range(n_train):
            _save_png(
                render_sample(category, GOOD, i, seed, split="train", size=size).image,
                tmp / "train" / GOOD / f"{i:0{width}d}.png",
            )
        (tmp / "test" / GOOD).mkdir(parents=True, exist_ok=True)
        for i in range(n_test_good):
            _save_png(
                render_sample(category, GOOD, i, seed, size=size).image, tmp / "test" / GOOD / f"{i:0{width}d}.png"
            )
        for defect in kinds:
            for i in range(n_test_defect_per_type):
                r = render_sample(category, defect, i, seed, size=size)
                _save_png(r.image, tmp / "test" / defect / f"{i:0{width}d}.png")
                _save_png(r.mask.astype(np.uint8) * 255, tmp / "ground_truth" / defect / f"{i:0{width}d}{MASK_SUFFIX}")
        meta = {
            "generator": "frad.datasets.synthetic",
            "version": _FORMAT_VERSION,
            "category": category,
            "seed": seed,
            "style": category_style(category),
            "defect_types": list(kinds),
            **counts,
        }
        (tmp / MARKER).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    return target


def generate_dataset(root: str | Path, categories: Iterable[str] | str, seed: int = 0, **kw: int) -> Path:
    """Generate every category of ``categories`` under ``root`` (see :func:`generate_category`); return ``root``."""
    names = [categories] if isinstance(categories, str) else list(categories)
    if not names:
        raise ConfigError("categories is empty: name at least one category to generate")
    for name in names:
        generate_category(root, name, seed, **kw)
    return Path(root)
