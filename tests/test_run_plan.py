"""pipeline.run_plan: the critical path and the list-schedule estimate of ``python -m pipeline.run --dry-run``."""

from __future__ import annotations

from pipeline.run_plan import critical_path, list_schedule


def test_schedule_estimate_bounds():
    up = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    secs = {"a": 1.0, "b": 4.0, "c": 2.0, "d": 1.0}
    assert critical_path(list(up), up, secs) == ["a", "b", "d"]
    assert list_schedule(list(up), up, secs, 1) == 8.0
    assert list_schedule(list(up), up, secs, 2) == 6.0
