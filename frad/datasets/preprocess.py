"""Preprocessing every dataset goes through (§2.3): an image or mask is resized (and optionally centre-cropped)
to S×S, and an image is normalised with the ImageNet mean and std. torch is imported only where tensors are made."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image

from frad.datasets.layout import Sample, read_image, read_mask
from frad.errors import ConfigError, DataError

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


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
