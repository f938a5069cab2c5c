"""Scalar checks shared by the comparison methods' configs; torch-free. Each raises one
:class:`frad.errors.ConfigError` naming the params key."""

from __future__ import annotations

import math

from .errors import ConfigError


def check_seed(seed: int, key: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{key} must be a non-negative integer, got {seed!r}")
    return seed


def check_positive_int(value: int, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")
    return value


def check_positive(value: float, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{key} must be a positive number, got {value!r}")
    return float(value)
