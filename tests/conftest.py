"""Shared test setup: no network for timm/HF, fixed threads, paths to the real data in ../shared, and the `e2e`
marker on every `slow` test.

Two kinds of tests (markers in pyproject.toml): `e2e` runs the pipeline end to end, its stages in a temporary
project (`dvc repro`/`dvc status`, `python -m pipeline.run`, a stage module) or a real training run; everything
else is a fast unit test. Whole modules are marked with `pytestmark`, single tests with `@pytest.mark.e2e`, and a
`slow` test (a real training run or an end-to-end DVC run) is always `e2e`. `pytest -m "not e2e"` (`make
test-fast`) runs the unit tests; `make test` runs everything.
"""

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


@pytest.fixture(scope="session")
def bottle_features(tmp_path_factory) -> Path:
    """The real MVTec AD bottle through EfficientNet-Lite0 (ImageNet weights, layers 1-3, 256²): one feature cache
    per test process for the tests on real data (conftest groups them on one worker: SHARED_BUILDS)."""
    if not (SHARED_MVTEC / "bottle" / "train" / "good").is_dir():
        pytest.skip(f"real MVTec AD bottle data not found at {SHARED_MVTEC}/bottle (../shared is absent)")
    from frad.backbone import load_backbone
    from frad.cache import build_feature_cache
    from frad.datasets.layout import index_category
    from frad.datasets.preprocess import Resize

    backbone = load_backbone("tf_efficientnet_lite0", "imagenet", layers=[1, 2, 3])
    out = tmp_path_factory.mktemp("bottle") / "features"
    build_feature_cache(
        index_category(SHARED_MVTEC, "bottle"), backbone, out, resize=Resize(256), weights="imagenet", progress=False
    )
    return out


@pytest.fixture(scope="session")
def tiny_built(tmp_path_factory) -> tuple[Path, set[str]]:
    """The tiny synthetic pipeline (pipeline_utils.TINY) after one clean `dvc repro`, and the stages that ran:
    built once per test process (each xdist worker that needs it) and only ever copied
    (pipeline_utils.copy_workspace), so every end-to-end test that starts from a finished run pays for none."""
    from pipeline_utils import TINY, repro

    from pipeline.workspace import make_workspace

    ws = make_workspace(tmp_path_factory.mktemp("tiny") / "ws", TINY)
    return ws, repro(ws)


SHARED_BUILDS = {"tiny_built": "tiny", "bottle_features": "bottle"}
"""Session fixtures worth building once: their tests run on one xdist worker (`--dist loadgroup`)."""


def _shared_builds(item: pytest.Item) -> set[str]:
    """The groups of what ``item`` shares with other tests: a session fixture of SHARED_BUILDS, or any fixture of its
    own test module with module scope (built once per worker that runs one of the module's tests: one worker)."""
    groups = set()
    for name, defs in item._fixtureinfo.name2fixturedefs.items():
        if name in SHARED_BUILDS:
            groups.add(SHARED_BUILDS[name])
        elif defs[-1].scope == "module" and getattr(defs[-1].func, "__module__", None) == item.module.__name__:
            groups.add(item.module.__name__)
    return groups


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects and before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") is not None and item.get_closest_marker("e2e") is None:
            item.add_marker(pytest.mark.e2e)
        groups = _shared_builds(item) if isinstance(item, pytest.Function) else set()
        if groups and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group("_".join(sorted(groups))))


def pytest_configure(config: pytest.Config) -> None:
    """Say it in one line, before any worker starts, where the collection guard below would only crash a worker."""
    major_minor = tuple(int(p) for p in pytest.__version__.split(".")[:2])
    if not hasattr(config, "workerinput") and config.getoption("dist", "no") == "loadgroup" and major_minor >= (9, 2):
        raise pytest.UsageError(
            f"pytest {pytest.__version__} silently breaks xdist's --dist loadgroup (pytest-xdist#1386): "
            "install the pytest pinned in pyproject.toml (make setup)"
        )


@pytest.hookimpl(trylast=True)  # after xdist has named each item's group
def pytest_collection_finish(session: pytest.Session) -> None:
    """Under `--dist loadgroup` a grouped test's id ends in @group; if not, the groups were silently ignored (pytest
    9.2 with xdist 3.8: pytest-xdist#1386) and every worker would build every shared fixture."""
    if not getattr(session.config.option, "loadgroup", False):  # set on xdist workers only
        return
    lost = [i.nodeid for i in session.items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid]
    if lost:
        raise pytest.UsageError(
            f"--dist loadgroup did not group {lost[0]} (and {len(lost) - 1} more): pytest-xdist ignores xdist_group "
            "with this pytest; install the pytest pinned in pyproject.toml"
        )
