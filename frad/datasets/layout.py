"""MVTec AD layout reader: index a category, read images/masks, build a (map-style) torch dataset.

Expected layout (any root, any category name)::

    <root>/<category>/train/good/*.png
    <root>/<category>/test/good/*.png
    <root>/<category>/test/<defect>/*.png
    <root>/<category>/ground_truth/<defect>/<stem>_mask.png

``ground_truth/`` is optional: a category without it (OK / NG folders only, common in industry) has image labels
but no masks, and its pixel metrics are undefined. Where ``ground_truth/`` exists, every defect image needs its mask.

Every user-fixable problem (missing folder, missing mask, unreadable file, ...) raises
:class:`~frad.errors.DataError` with one line naming the file and the fix.

torch is imported only by the functions that make tensors: indexing and checking a category (the
``prepare`` stage) then starts in a fraction of a second instead of ~2 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from frad.errors import DataError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")  # compared lower-cased

GOOD = "good"
MASK_SUFFIX = "_mask.png"
_IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini"})  # OS litter; dotfiles are ignored too

# What PIL raises on unreadable/corrupt/truncated files (SyntaxError/ValueError come from some decoders).
_PIL_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError)


@dataclass(frozen=True)
class Sample:
    """One image: ``label`` is 0 for good, 1 for defect; ``mask_path`` is None for good images."""

    path: Path
    label: int
    defect: str
    mask_path: Path | None


@dataclass(frozen=True)
class CategoryIndex:
    """All samples of one category, in deterministic (sorted) order; ``has_masks`` is False for a category
    without ``ground_truth/`` (image labels only)."""

    root: Path
    category: str
    train: tuple[Sample, ...]
    test: tuple[Sample, ...]
    has_masks: bool = True

    @property
    def test_labels(self) -> np.ndarray:
        """int64 array of test labels (0 good, 1 defect)."""
        return np.array([s.label for s in self.test], dtype=np.int64)

    @property
    def test_defects(self) -> tuple[str, ...]:
        """Defect type of each test sample (``"good"`` for normal ones)."""
        return tuple(s.defect for s in self.test)

    @property
    def defect_types(self) -> tuple[str, ...]:
        """Sorted defect types present in the test set (``"good"`` excluded)."""
        return tuple(sorted({s.defect for s in self.test} - {GOOD}))

    @property
    def category_dir(self) -> Path:
        """``<root>/<category>``."""
        return self.root / self.category


def _is_ignored(path: Path) -> bool:
    """Hidden files and OS litter that may sit in any folder."""
    return path.name.startswith(".") or path.name.lower() in _IGNORED_NAMES


def _list_images(folder: Path) -> list[Path]:
    """Sorted image files of ``folder``; anything else that is not ignorable is an error."""
    images: list[Path] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if _is_ignored(entry):
            continue
        if not entry.is_file() or entry.suffix.lower() not in IMAGE_EXTENSIONS:
            kind = "folder" if entry.is_dir() else "non-image file"
            raise DataError(
                f"unexpected {kind} {entry} in image folder {folder}: "
                f"only {', '.join(IMAGE_EXTENSIONS)} images belong there, move or delete it"
            )
        images.append(entry)
    # Masks are matched by stem, so two images sharing a stem would share a mask.
    stems = [p.stem for p in images]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise DataError(f"several images named '{dupes[0]}.*' in {folder}: keep one file per stem")
    return images


def _check_category(root: Path, category: str) -> Path:
    """Resolve ``<root>/<category>`` or explain what is there instead."""
    if not root.is_dir():
        raise DataError(f"dataset root {root} does not exist: download MVTec AD there or pass the right root")
    cat_dir = root / category
    if not category or not cat_dir.is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir() and not _is_ignored(p))
        listing = ", ".join(present) if present else "none"
        raise DataError(
            f"category '{category}' not found: {cat_dir} does not exist "
            f"(categories under {root}: {listing}); fix the category name or the root"
        )
    return cat_dir


def index_category(root: str | Path, category: str) -> CategoryIndex:
    """Index ``<root>/<category>`` (MVTec AD layout), validating it.

    Train samples come from ``train/good``; test samples from every ``test/<defect>`` folder
    (``good`` first, then defect types alphabetically; files sorted by name). A defect image
    ``test/<d>/<stem>.<ext>`` needs ``ground_truth/<d>/<stem>_mask.png``; a good image must not have one. Without
    a ``ground_truth/`` folder the category has no masks at all (``has_masks`` False).
    """
    root = Path(root)
    cat_dir = _check_category(root, category)

    train_dir = cat_dir / "train" / GOOD
    if not train_dir.is_dir():
        raise DataError(f"missing folder {train_dir}: put the defect-free training images there")
    train = tuple(Sample(p, 0, GOOD, None) for p in _list_images(train_dir))
    if not train:
        raise DataError(f"no training images in {train_dir}: add defect-free .png/.jpg/.bmp images")

    test_dir = cat_dir / "test"
    if not test_dir.is_dir():
        raise DataError(f"missing folder {test_dir}: put test images in {test_dir}/good and {test_dir}/<defect>")
    defect_dirs: list[Path] = []
    for entry in sorted(test_dir.iterdir(), key=lambda p: p.name):
        if _is_ignored(entry):
            continue
        if not entry.is_dir():
            raise DataError(
                f"unexpected file {entry} directly in {test_dir}: move it into {test_dir}/good or {test_dir}/<defect>"
            )
        defect_dirs.append(entry)
    defect_dirs.sort(key=lambda p: (p.name != GOOD, p.name))  # good first

    gt_dir = cat_dir / "ground_truth"
    # No ground_truth/ while defect folders exist: image labels only. (Good images only: nothing to mask.)
    has_masks = gt_dir.is_dir() or all(d.name == GOOD for d in defect_dirs)
    test: list[Sample] = []
    for ddir in defect_dirs:
        defect = ddir.name
        for img in _list_images(ddir):
            mask = gt_dir / defect / f"{img.stem}{MASK_SUFFIX}"
            if defect == GOOD:
                if mask.exists():
                    raise DataError(
                        f"mask {mask} exists for good image {img}: good images have no defect, delete the mask "
                        f"or move the image to a defect folder"
                    )
                test.append(Sample(img, 0, GOOD, None))
            elif not has_masks:
                test.append(Sample(img, 1, defect, None))
            else:
                if not mask.is_file():
                    raise DataError(f"defect image {img} has no mask: expected {mask}; add it or remove the image")
                test.append(Sample(img, 1, defect, mask))
    if not test:
        raise DataError(f"no test images under {test_dir}: add images to {test_dir}/good and {test_dir}/<defect>")
    return CategoryIndex(root=root, category=category, train=train, test=tuple(test), has_masks=has_masks)


def _open_decoded(path: Path) -> Image.Image:
    """Open and fully decode ``path`` so corrupt or truncated files fail here, naming the file."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()  # decodes all pixel data; raises on truncation (unless LOAD_TRUNCATED_IMAGES is set)
            return im.copy()
    except FileNotFoundError:
        raise DataError(f"image file {path} does not exist: check the dataset or re-index it") from None
    except _PIL_ERRORS as err:
        raise DataError(f"cannot decode image {path} ({err}): the file is corrupt or truncated, replace it") from None


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as uint8 ``H×W×3`` RGB (grayscale, palette, RGBA and 16-bit gray are converted)."""
    im = _open_decoded(Path(path))
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # PIL's convert("RGB") clips 16-bit values; rescale to 8 bits instead.
        gray = np.asarray(im, dtype=np.float64)
        scale = 255.0 / 65535.0
        g8 = np.clip(np.rint(gray * scale), 0, 255).astype(np.uint8)
        return np.repeat(g8[:, :, None], 3, axis=2)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy()


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask as bool ``H×W``, True where the value is > 0.5 × the mask's max (all-zero → all False)."""
    im = _open_decoded(Path(path))
    if im.mode not in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
        im = im.convert("L")  # RGB/palette/LA masks: luminance
    values = np.asarray(im, dtype=np.float64)
    return values > 0.5 * values.max()  # strict, so an all-zero mask stays all False


def _header_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header only (cheap); unreadable files raise DataError naming them."""
    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except _PIL_ERRORS as err:
        raise DataError(f"cannot read image {path} ({err}): the file is corrupt or not an image, replace it") from None


def check_files(index: CategoryIndex) -> None:
    """Cheap up-front check of every file header: readable images, masks the size of their image.

    Full decoding (which also catches truncated pixel data) happens when the images are loaded.
    """
    for sample in index.train + index.test:
        hw = _header_size(sample.path)
        if sample.mask_path is not None:
            mhw = _header_size(sample.mask_path)
            if mhw != hw:
                raise DataError(
                    f"mask {sample.mask_path} is {mhw[1]}x{mhw[0]} but its image {sample.path} is {hw[1]}x{hw[0]}; "
                    "masks must have the size of their image"
                )
