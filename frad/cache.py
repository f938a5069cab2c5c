"""Per-layer backbone feature cache: the backbone runs once per image, every model variant reuses it.

Layout of a cache folder (one per category):
  meta.json                    backbone, weights, precision, image size, layers, file list, labels
  train_l<k>.npy, test_l<k>.npy  float16 (N, C_k, H_k, W_k) for every cached layer k
  test_masks.npy               bool (N, S, S) ground truth at the image size S (absent: a category without masks)
  test_labels.npy              int8 (N,) 0 = good, 1 = defect
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np
import torch
from numpy.lib.format import open_memmap
from tqdm.auto import tqdm

from .datasets.layout import CategoryIndex, Sample
from .datasets.preprocess import ImageDataset, Resize
from .errors import DataError
from .io import atomic_path

if TYPE_CHECKING:  # the read side (training, scoring) never needs timm/torchvision
    from .backbone import Backbone

FORMAT_VERSION = 1


def _workers() -> int:
    """DataLoader workers: image decoding (900² PNGs) dominates on CPU; keep one core for the backbone."""
    env = os.environ.get("FRAD_WORKERS")
    if env is not None:
        return max(0, int(env))
    return min(8, max(0, (os.cpu_count() or 1) - 1))


@torch.inference_mode()
def _extract_split(
    backbone: "Backbone",
    samples: tuple[Sample, ...],
    resize: Resize,
    out_dir: Path,
    split: str,
    device: torch.device,
    batch_size: int,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    ds = ImageDataset(samples, resize, backbone.mean, backbone.std)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=False, num_workers=_workers(), pin_memory=device.type == "cuda"
    )
    n = len(ds)
    arrays: dict[int, np.ndarray] = {}
    masks = np.zeros((n, resize.size, resize.size), dtype=bool)
    labels = np.zeros(n, dtype=np.int8)
    for batch in tqdm(loader, desc=f"features {split}", unit="batch", disable=not progress, leave=False):
        idx = batch["index"].numpy()
        feats = backbone(batch["image"].to(device, non_blocking=True))
        for layer, f in feats.items():
            if layer not in arrays:
                arrays[layer] = open_memmap(
                    out_dir / f"{split}_l{layer}.npy", mode="w+", dtype=np.float16, shape=(n, *f.shape[1:])
                )
            arrays[layer][idx] = f.half().cpu().numpy()
        masks[idx] = batch["mask"].numpy()
        labels[idx] = batch["label"].numpy()
    for a in arrays.values():
        a.flush()
    return masks, labels


def build_feature_cache(
    index: CategoryIndex,
    backbone: "Backbone",
    out_dir: str | os.PathLike,
    *,
    resize: Resize,
    weights: str,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    progress: bool = True,
) -> Path:
    """Run ``backbone`` over the category's train and test images once (each made S×S by ``resize``) and write the
    cache atomically."""
    device = torch.device(device)
    backbone.to(device)
    out_dir = Path(out_dir)
    with atomic_path(out_dir, is_dir=True) as tmp:
        _extract_split(backbone, index.train, resize, tmp, "train", device, batch_size, progress)
        masks, labels = _extract_split(backbone, index.test, resize, tmp, "test", device, batch_size, progress)
        if index.has_masks:
            np.save(tmp / "test_masks.npy", masks)
        np.save(tmp / "test_labels.npy", labels)
        meta = {
            "format": FORMAT_VERSION,
            "category": index.category,
            "backbone": backbone.name,
            "weights": str(weights),
            "precision": backbone.precision,
            "image_size": resize.size,
            "crop": resize.crop,
            "resize": resize.mode,
            "layers": list(backbone.layers),
            "masks": index.has_masks,
            "channels": {str(k): v for k, v in backbone.channels.items()},
            "train": [s.path.name for s in index.train],
            "test": [f"{s.defect}/{s.path.name}" for s in index.test],
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir


class FeatureCache:
    """Read side: memory-maps the arrays; ``layers(split, L)`` returns torch tensors loaded once."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            raise DataError(
                f"feature cache {self.path} is missing or incomplete (no meta.json); rerun the features stage"
            )
        self.meta = json.loads(meta_file.read_text())
        self.image_size: int = int(self.meta["image_size"])
        # how the images became S×S (§2.3): the thumbnails of the report are made the same way
        self.resize = Resize(self.image_size, float(self.meta.get("crop", 1.0)), self.meta.get("resize", "stretch"))
        self.cached_layers: tuple[int, ...] = tuple(self.meta["layers"])

    def layers(self, split: str, layers: Iterable[int]) -> dict[int, torch.Tensor]:
        out = {}
        for layer in sorted(layers):
            if layer not in self.cached_layers:
                raise DataError(
                    f"feature cache {self.path} holds layers {list(self.cached_layers)}, not layer {layer}; "
                    "add it to features.cache_layers and rerun the features stage"
                )
            out[layer] = torch.from_numpy(np.load(self.path / f"{split}_l{layer}.npy"))
        return out

    @property
    def has_masks(self) -> bool:
        """False for a category without ground truth (``ground_truth/`` absent): image labels only."""
        return bool(self.meta.get("masks", True))

    def test_masks(self) -> np.ndarray | None:
        """Bool (N, S, S) ground truth, or None for a category without masks."""
        return np.load(self.path / "test_masks.npy") if self.has_masks else None

    def test_labels(self) -> np.ndarray:
        return np.load(self.path / "test_labels.npy").astype(np.int64)

    @property
    def test_names(self) -> list[str]:
        return list(self.meta["test"])
