"""Shared bits of the stage scripts: the error wrapper and the output paths."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

from frad.errors import FradError
from frad.runtime import tune_malloc

RAW = Path("data/raw")
DATASETS = Path("data/datasets")
FEATURES = Path("data/features")
MODELS = Path("data/models")
SCORES = Path("data/scores")
REPORTS = Path("reports")

CURVES = Path("data/curves")


def model_path(category: str, variant: str, seed: int) -> Path:
    return MODELS / category / variant / f"seed{seed}.pt"


def score_path(category: str, method: str, seed: int) -> Path:
    """Metrics and image scores of one method on one category with one seed."""
    return SCORES / category / method / f"seed{seed}.json"


def maps_path(category: str, method: str, seed: int) -> Path:
    """Every test image's anomaly map (float32), its mask, label and image score: what the gallery draws."""
    return SCORES / category / method / f"seed{seed}_maps.npz"


def boot_path(category: str, method: str, seed: int) -> Path:
    """Per-image statistics for the report's bootstrap intervals (``frad.evaluation.bootstrap.Summary``)."""
    return SCORES / category / method / f"seed{seed}_boot.npz"


def curves_path(category: str, method: str, seed: int) -> Path:
    """ROC and PRO curves (``frad.evaluation.curves``) of one score item."""
    return CURVES / category / method / f"seed{seed}.json"


def choice_path(category: str, name: str, seed: int) -> Path:
    """Result of one item of the open-choices study: final metrics and the per-epoch curve (under data/scores, so
    the study's report depends on one folder that always exists, with or without study items)."""
    return SCORES / category / f"choice-{name}" / f"seed{seed}.json"


def seed_arg(text: str) -> int:
    if not text.isdigit():
        raise FradError(f"seed must be a non-negative integer, got {text!r}")
    return int(text)


def _process_age() -> float | None:
    """Seconds since this process started (Linux /proc), i.e. including the interpreter and imports."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


PHASES: dict[str, float] = {}
"""Seconds of the phases of the running stage (a comparison method's fit, coreset, scoring): logged and kept in its
timing record, never in an output."""
TIMINGS = Path(".dvc/tmp/timings")  # one record per stage run, outside every DVC output (git-ignored with .dvc/tmp)


def _record_timing(name: str, started: float, startup: float | None, work: float) -> None:
    """``<TIMINGS>/<stage>.json`` (the DVC stage DVC runs, else the module and its arguments): wall-clock start and
    end of the command (epoch seconds), start-up, work and phases; ``FRAD_TIMINGS`` names another folder. Nothing is
    written outside a DVC workspace."""
    root = Path(os.environ.get("DVC_ROOT", "."))
    folder = Path(os.environ["FRAD_TIMINGS"]) if os.environ.get("FRAD_TIMINGS") else root / TIMINGS
    if not folder.parent.is_dir():
        return
    name = os.environ.get("DVC_STAGE") or name.replace(" ", "-")
    record = {
        "stage": name,
        "command_start": started - (startup or 0.0),
        "command_end": time.time(),
        "startup_s": startup,
        "work_s": work,
        "phases": PHASES,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")


def stage_main(fn: Callable[[list[str]], None]) -> Callable[[], None]:
    """Run a stage: a FradError becomes one line on stderr and exit status 2 (no traceback).
    The stage runs with :func:`frad.runtime.tune_malloc` (faster CPU work, same results; FRAD_MALLOC_TUNE=0
    turns it off). A finished stage logs its wall time (work, and start-up = interpreter + imports) and writes its
    timing record (:func:`_record_timing`): the clock stays out of the outputs, so they are a function of the inputs."""

    @functools.wraps(fn)
    def wrapper() -> None:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        warnings.simplefilter("default")
        startup, t0, started = _process_age(), time.perf_counter(), time.time()
        tune_malloc()
        try:
            fn(sys.argv[1:])
            spec = getattr(sys.modules.get("__main__"), "__spec__", None)  # run as python -m pipeline.<stage>
            module = (spec.name if spec else fn.__module__).removesuffix(".__main__")  # a package stage's __main__
            name = " ".join([module.rsplit(".", 1)[-1], *sys.argv[1:]])
            work = time.perf_counter() - t0
            extra = f" (+{startup:.1f} s start-up)" if startup is not None else ""
            phases = "".join(f", {k} {v:.1f} s" for k, v in PHASES.items())
            logging.getLogger("frad.stage").info("%s: done in %.1f s%s%s", name, work, extra, phases)
            _record_timing(name, started, startup, work)
        except FradError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("error: interrupted; outputs of this stage were not written, rerun `dvc repro`", file=sys.stderr)
            sys.exit(130)

    return wrapper


def usage(args: list[str], n: int, text: str) -> list[str]:
    if len(args) != n:
        raise FradError(f"usage: {text}")
    return args
