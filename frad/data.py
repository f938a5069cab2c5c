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
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from frad.errors import ConfigError, DataError
from frad.mvtec import MVTEC_CATEGORIES, MVTEC_OBJECTS, MVTEC_TEXTURES  # noqa: F401  (re-exported for readers)

if TYPE_CHECKING:
    import torch


IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")  # compared lower-cased
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

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


def _check_size(image_size: int) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ConfigError(f"image_size must be a positive integer, got {image_size!r}")
    return int(image_size)


def _check_crop(crop: float) -> float:
    if isinstance(crop, bool) or not isinstance(crop, (int, float)) or not 0.0 < crop <= 1.0:
        raise ConfigError(f"data.crop must be a fraction in (0, 1], got {crop!r}")
    return float(crop)


def crop_box(image_size: int, crop: float) -> tuple[int, int]:
    """§2.3 "resized and cropped to S×S": the side R the image is resized to (S / crop, rounded) and the offset
    of the centred S×S crop. crop = 1: R = S, no crop."""
    size = _check_size(image_size)
    resized = max(size, round(size / _check_crop(crop)))
    return resized, (resized - size) // 2


def to_tensor(
    image: np.ndarray, image_size: int, mean: Sequence[float], std: Sequence[float], crop: float = 1.0
) -> torch.Tensor:
    """uint8 ``H×W×3`` → float32 ``(3,S,S)``: bilinear antialiased resize to R (:func:`crop_box`), centre crop to
    S, then ``(x/255 - mean) / std``."""
    import torch
    import torch.nn.functional as F

    size = _check_size(image_size)
    resized, top = crop_box(size, crop)
    if len(mean) != 3 or len(std) != 3:
        raise ConfigError(f"mean and std need 3 values (one per RGB channel), got {list(mean)} and {list(std)}")
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).to(torch.float32).div_(255.0)
    # What torchvision's TF.resize(..., BILINEAR, antialias=True) does on tensors, without importing torchvision.
    t = F.interpolate(t[None], size=(resized, resized), mode="bilinear", align_corners=False, antialias=True)[0]
    t = t[:, top : top + size, top : top + size]
    m = torch.tensor([float(v) for v in mean]).view(3, 1, 1)
    s = torch.tensor([float(v) for v in std]).view(3, 1, 1)
    return (t - m) / s


def load_image(
    path: str | Path, image_size: int, mean: Sequence[float], std: Sequence[float], crop: float = 1.0
) -> torch.Tensor:
    """Read ``path`` and return the normalised float32 ``(3,S,S)`` tensor (see :func:`to_tensor`)."""
    return to_tensor(read_image(path), image_size, mean, std, crop)


def load_mask(
    mask_path: str | Path | None,
    image_hw: tuple[int, int],
    image_size: int,
    *,
    image_path: str | Path | None = None,
    crop: float = 1.0,
) -> np.ndarray:
    """Bool ``(S,S)`` mask: binarised at > 0.5 × max, nearest-neighbour resized to R and centre-cropped like its
    image (:func:`crop_box`); all False when ``mask_path`` is None.

    ``image_hw`` is the (height, width) of the mask's image; a mask of another size is a DataError
    (``image_path``, when given, is named in the message).
    """
    size = _check_size(image_size)
    resized, top = crop_box(size, crop)
    if mask_path is None:
        return np.zeros((size, size), dtype=bool)
    mask = read_mask(mask_path)
    hw = (int(image_hw[0]), int(image_hw[1]))
    if mask.shape != hw:
        img = f"image {image_path}" if image_path is not None else "its image"
        raise DataError(
            f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} px but {img} is {hw[1]}x{hw[0]} px (WxH): "
            f"regenerate the mask at the image's size"
        )
    if mask.shape != (resized, resized):
        pil = Image.fromarray(mask.astype(np.uint8) * 255)  # uint8 → mode "L"
        mask = np.asarray(pil.resize((resized, resized), Image.Resampling.NEAREST)) > 127
    return np.ascontiguousarray(mask[top : top + size, top : top + size])


class ImageDataset:
    """Samples → ``dict(image=(3,S,S) float32, mask=(S,S) bool, label=int, index=int)``.

    A map-style dataset (``__len__`` + ``__getitem__``), which is all ``torch.utils.data.DataLoader`` needs."""

    def __init__(
        self,
        samples: Sequence[Sample],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        crop: float = 1.0,
    ) -> None:
        self.samples = tuple(samples)
        self.image_size = _check_size(image_size)
        self.crop = _check_crop(crop)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        import torch

        sample = self.samples[index]
        image = read_image(sample.path)
        mask = load_mask(sample.mask_path, image.shape[:2], self.image_size, image_path=sample.path, crop=self.crop)
        return {
            "image": to_tensor(image, self.image_size, self.mean, self.std, self.crop),
            "mask": torch.from_numpy(mask),
            "label": int(sample.label),
            "index": int(index),
        }


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
