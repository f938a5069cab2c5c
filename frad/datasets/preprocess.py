"""The preprocessing every dataset goes through (§2.3 "resized and cropped to 256×256"), in one place: a
:class:`Resize` turns an image and its mask of any size into S×S, and an image is then normalised with the
backbone's mean and std. torch is imported only where tensors are made.

Non-square images (VisA's are 3:2) need a choice the paper, whose MVTec AD images are square, does not make:
``stretch`` (the default, the paper's rule read literally) resizes W×H to S×S and changes the aspect ratio;
``short_side`` resizes the short side to S, keeping the aspect ratio, and centre-crops S×S (the image's ends are
not seen, nor scored). Both are the same on square images."""

from __future__ import annotations

from dataclasses import dataclass
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


RESIZE_MODES: tuple[str, ...] = ("stretch", "short_side")


@dataclass(frozen=True)
class Resize:
    """How an image becomes S×S (``size``): resized to R = S / ``crop`` (§2.3; both sides for ``stretch``, the
    short side for ``short_side``), then centre-cropped to S×S. crop = 1 and a square image: resize only."""

    size: int
    crop: float = 1.0
    mode: str = "stretch"

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, (int, np.integer)) or self.size < 1:
            raise ConfigError(f"image_size must be a positive integer, got {self.size!r}")
        if isinstance(self.crop, bool) or not isinstance(self.crop, (int, float)) or not 0.0 < self.crop <= 1.0:
            raise ConfigError(f"data.crop must be a fraction in (0, 1], got {self.crop!r}")
        if self.mode not in RESIZE_MODES:
            raise ConfigError(f"data.resize must be one of {', '.join(RESIZE_MODES)}, got {self.mode!r}")
        object.__setattr__(self, "size", int(self.size))
        object.__setattr__(self, "crop", float(self.crop))

    def plan(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(resized height, resized width, top, left) for an image of ``height`` × ``width``: the S×S crop is
        ``[top : top + S, left : left + S]`` of the resized image."""
        side = max(self.size, round(self.size / self.crop))
        if self.mode == "stretch" or height == width:
            rh = rw = side
        else:
            short = min(height, width)
            rh, rw = max(side, round(height * side / short)), max(side, round(width * side / short))
        return rh, rw, (rh - self.size) // 2, (rw - self.size) // 2

    def image(self, image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
        """uint8 ``H×W×3`` → float32 ``(3,S,S)``: bilinear antialiased resize, centre crop, ``(x/255 - mean) / std``."""
        import torch
        import torch.nn.functional as F

        if len(mean) != 3 or len(std) != 3:
            raise ConfigError(f"mean and std need 3 values (one per RGB channel), got {list(mean)} and {list(std)}")
        rh, rw, top, left = self.plan(*image.shape[:2])
        t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).to(torch.float32).div_(255.0)
        # What torchvision's TF.resize(..., BILINEAR, antialias=True) does on tensors, without importing torchvision.
        t = F.interpolate(t[None], size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)[0]
        t = t[:, top : top + self.size, left : left + self.size]
        m = torch.tensor([float(v) for v in mean]).view(3, 1, 1)
        s = torch.tensor([float(v) for v in std]).view(3, 1, 1)
        return (t - m) / s

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """bool ``H×W`` → bool ``(S,S)``: nearest-neighbour resize and the same crop as its image."""
        rh, rw, top, left = self.plan(*mask.shape)
        if mask.shape != (rh, rw):
            pil = Image.fromarray(mask.astype(np.uint8) * 255)  # uint8 → mode "L"
            mask = np.asarray(pil.resize((rw, rh), Image.Resampling.NEAREST)) > 127
        return np.ascontiguousarray(mask[top : top + self.size, left : left + self.size])

    def thumbnail(self, image: np.ndarray) -> np.ndarray:
        """The uint8 image as the backbone saw it (resized and cropped, no normalisation), ``(S,S,3)``."""
        rh, rw, top, left = self.plan(*image.shape[:2])
        resized = np.asarray(Image.fromarray(image).resize((rw, rh), Image.Resampling.BILINEAR))
        return np.ascontiguousarray(resized[top : top + self.size, left : left + self.size])


def load_image(path: str | Path, resize: Resize, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Read ``path`` and return the normalised float32 ``(3,S,S)`` tensor (:meth:`Resize.image`)."""
    return resize.image(read_image(path), mean, std)


def load_mask(
    mask_path: str | Path | None, image_hw: tuple[int, int], resize: Resize, *, image_path: str | Path | None = None
) -> np.ndarray:
    """Bool ``(S,S)`` mask: binarised at > 0.5 × max (:func:`~frad.datasets.layout.read_mask`), resized and cropped
    like its image; all False when ``mask_path`` is None.

    ``image_hw`` is the (height, width) of the mask's image; a mask of another size is a DataError
    (``image_path``, when given, is named in the message).
    """
    if mask_path is None:
        return np.zeros((resize.size, resize.size), dtype=bool)
    mask = read_mask(mask_path)
    hw = (int(image_hw[0]), int(image_hw[1]))
    if mask.shape != hw:
        img = f"image {image_path}" if image_path is not None else "its image"
        raise DataError(
            f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} px but {img} is {hw[1]}x{hw[0]} px (WxH): "
            f"regenerate the mask at the image's size"
        )
    return resize.mask(mask)


class ImageDataset:
    """Samples → ``dict(image=(3,S,S) float32, mask=(S,S) bool, label=int, index=int)``.

    A map-style dataset (``__len__`` + ``__getitem__``), which is all ``torch.utils.data.DataLoader`` needs."""

    def __init__(self, samples: Sequence[Sample], resize: Resize, mean: Sequence[float], std: Sequence[float]) -> None:
        self.samples = tuple(samples)
        self.resize = resize
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        import torch

        sample = self.samples[index]
        image = read_image(sample.path)
        mask = load_mask(sample.mask_path, image.shape[:2], self.resize, image_path=sample.path)
        return {
            "image": self.resize.image(image, self.mean, self.std),
            "mask": torch.from_numpy(mask),
            "label": int(sample.label),
            "index": int(index),
        }
