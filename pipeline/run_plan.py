"""`python -m pipeline.run --dry-run [-j N] [--times FILE]`: what a parallel run would do, without running it: the
stale stages per family and, given seconds per stage family or stage-name glob, the critical path (the longest chain of dependent
stages: no number of workers finishes sooner) and an estimate of the wall time on N slots (list scheduling of the
stages in `dvc repro`'s order, the way Dask starts ready tasks; start-up and data movement not counted)."""

from __future__ import annotations

import heapq
from collections import Counter
from fnmatch import fnmatchcase
from pathlib import Path

import yaml

from frad.errors import ConfigError


def family(stage: str) -> str:
    return stage.split("@", 1)[0]


def stage_time(stage: str, times: dict[str, float]) -> float | None:
    """Seconds for ``stage``: the first key of ``times`` (in file order) that is its family or a glob matching it."""
    return next((v for k, v in times.items() if k == family(stage) or fnmatchcase(stage, k)), None)


def load_times(path: Path) -> dict[str, float]:
    times = yaml.safe_load(path.read_text()) or {}
    if not isinstance(times, dict) or not all(isinstance(v, (int, float)) for v in times.values()):
        raise ConfigError(f"{path}: expected a mapping of stage family to seconds")
    return {str(k): float(v) for k, v in times.items()}


def critical_path(stages: list[str], upstream: dict[str, list[str]], secs: dict[str, float]) -> list[str]:
    """The chain of stale stages with the largest total time (``stages`` in dependency order)."""
    best: dict[str, tuple[float, str | None]] = {}
    for s in stages:
        prev = max((u for u in upstream[s] if u in best), key=lambda u: best[u][0], default=None)
        best[s] = (secs[s] + (best[prev][0] if prev else 0.0), prev)
    path, s = [], max(best, key=lambda k: best[k][0]) if best else None
    while s:
        path.append(s)
        s = best[s][1]
    return path[::-1]


def list_schedule(stages: list[str], upstream: dict[str, list[str]], secs: dict[str, float], slots: int) -> float:
    """Wall time when each free slot takes the first ready stage in ``stages`` order."""
    pending = list(stages)
    finish: dict[str, float] = {}
    running: list[tuple[float, str]] = []
    now = 0.0
    while pending or running:
        ready = [s for s in pending if all(u in finish and finish[u] <= now for u in upstream[s] if u in stages)]
        while ready and len(running) < slots:
            s = ready.pop(0)
            pending.remove(s)
            heapq.heappush(running, (now + secs[s], s))
        now, s = heapq.heappop(running)
        finish[s] = now
    return now


def dry_run(p, slots: int, times_file: Path | None) -> int:
    counts = Counter(family(s) for s in p.stale)
    families = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"{len(p.stale)} of {len(p.order)} stages to run" + (f": {families}" if families else ""))
    if not times_file or not p.stale:
        return 0
    times = load_times(times_file)
    missing = [s for s in p.stale if stage_time(s, times) is None]
    if missing:
        raise SystemExit(f"error: {times_file} has no time for {', '.join(missing[:5])}{' …' if missing[5:] else ''}")
    secs = {s: stage_time(s, times) for s in p.stale}
    path = critical_path(p.stale, p.upstream, secs)
    total = sum(secs.values())
    print(f"critical path: {' -> '.join(path)} = {sum(secs[s] for s in path):.0f} s")
    print(f"total stage time {total:.0f} s; estimated wall time on {slots} slot(s): ", end="")
    print(f"{list_schedule(p.stale, p.upstream, secs, slots):.0f} s")
    return 0
