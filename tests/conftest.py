"""Shared test setup: no network for timm/HF, fixed threads, paths to the real data in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("FRAD_WORKERS", "0")

PROJECT = Path(__file__).resolve().parent.parent
SHARED_MVTEC = PROJECT.parent / "shared" / "data" / "mvtec_ad"


@pytest.fixture
def bottle_root() -> Path:
    """Root holding the real MVTec AD `bottle` category (CC BY-NC-SA, read in place, never copied)."""
    if not (SHARED_MVTEC / "bottle" / "train" / "good").is_dir():
        pytest.skip(f"real MVTec AD bottle data not found at {SHARED_MVTEC}/bottle (../shared is absent)")
    return SHARED_MVTEC
