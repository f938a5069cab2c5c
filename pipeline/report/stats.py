"""Numbers as the report shows them: a metric's mean ± sample std over seeds (:class:`Stat`), values in % with one
decimal, Δ to the paper's value, and the seed-noise rule of Tables 3–4 (also the study's rule,
``pipeline.choices_report``)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Mapping, Sequence

from .scores import Score


@dataclass(frozen=True)
class Stat:
    """A metric over seeds: mean, sample std (None with one seed), the categories used / undefined, and the
    distinct reasons recorded for the undefined ones."""

    mean: float | None
    std: float | None
    used: tuple[str, ...]
    undefined: tuple[str, ...]
    reasons: tuple[str, ...] = ()


def stat(by_category: Mapping[str, Sequence[Score]], categories: Sequence[str], metric: str) -> Stat:
    """Per seed the mean over the categories where the metric is defined, then mean ± std over seeds."""
    used = tuple(c for c in categories if by_category[c][0].values[metric] is not None)
    undefined = tuple(c for c in categories if c not in used)
    reasons = tuple(dict.fromkeys(by_category[c][0].reasons[metric] for c in undefined))
    if not used:
        return Stat(None, None, used, undefined, reasons)
    n_seeds = len(by_category[used[0]])
    per_seed = [math.fsum(by_category[c][i].values[metric] for c in used) / len(used) for i in range(n_seeds)]  # type: ignore[misc]
    std = statistics.stdev(per_seed) if n_seeds > 1 else None
    return Stat(math.fsum(per_seed) / n_seeds, std, used, undefined, reasons)


def pct(fraction: float) -> str:
    """A fraction as % with one decimal, like the paper."""
    return f"{100.0 * fraction:.1f}"


def shown(s: Stat) -> str:
    """ "97.8" or "97.8±0.3" (std over seeds); the caller handles undefined values."""
    assert s.mean is not None
    return pct(s.mean) + (f"±{100.0 * s.std:.1f}" if s.std is not None else "")


def delta(ours_shown: str, paper_value: float) -> str:
    """Signed Δ = ours − paper of the values as shown (one decimal each)."""
    d = round(float(ours_shown) - round(paper_value, 1), 1) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{d:+.1f}"


def within_noise(a: Stat, b: Stat) -> bool:
    """|a − b| at most the combined standard deviation √(σa² + σb²) of the two rows."""
    if a.mean is None or b.mean is None or a.std is None or b.std is None:
        return False
    return abs(a.mean - b.mean) <= math.hypot(a.std, b.std)
