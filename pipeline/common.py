"""Shared bits of the stage scripts: the error wrapper, paths, and the model variants of Tables 3–4."""
from __future__ import annotations

import functools
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from frad.errors import FradError
from frad.runtime import tune_malloc

from .params import layers_of

RAW = Path("data/raw")
DATASETS = Path("data/datasets")
FEATURES = Path("data/features")
MODELS = Path("data/models")
SCORES = Path("data/scores")
REPORTS = Path("reports")

MODULE_VARIANTS = ("baseline", "gfe", "shuffle")  # Table 3 rows besides the full model


@dataclass(frozen=True)
class Variant:
    """What a variant changes relative to the main model (Tables 3 and 4)."""

    name: str
    layers: list[int]
    gfe: bool
    ssl: bool


def resolve_variant(params: dict, name: str) -> Variant:
    """full = the main model (params as they are); baseline/gfe/shuffle switch the two modules (Table 3);
    L<digits> = the main model on another layer set (Table 4)."""
    main_layers = params["features"]["layers"]
    if name == "full":
        return Variant(name, main_layers, params["model"]["gfe"], params["ssl"]["enabled"])
    if name == "baseline":
        return Variant(name, main_layers, False, False)
    if name == "gfe":
        return Variant(name, main_layers, True, False)
    if name == "shuffle":
        return Variant(name, main_layers, False, True)
    if name.startswith("L"):
        return Variant(name, layers_of(name), params["model"]["gfe"], params["ssl"]["enabled"])
    raise FradError(f"unknown variant {name!r}: use full, baseline, gfe, shuffle or L<layers> such as L123")


def _process_age() -> float | None:
    """Seconds since this process started (Linux /proc), i.e. including the interpreter and imports."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def stage_main(fn: Callable[[list[str]], None]) -> Callable[[], None]:
    """Run a stage: a FradError becomes one line on stderr and exit status 2 (no traceback).
    The stage runs with :func:`frad.runtime.tune_malloc` (faster CPU work, same results; FRAD_MALLOC_TUNE=0
    turns it off). A finished stage logs its wall time (work, and start-up = interpreter + imports)."""

    @functools.wraps(fn)
    def wrapper() -> None:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        warnings.simplefilter("default")
        startup, t0 = _process_age(), time.perf_counter()
        tune_malloc()
        try:
            fn(sys.argv[1:])
            spec = getattr(sys.modules.get("__main__"), "__spec__", None)  # run as python -m pipeline.<stage>
            name = " ".join([(spec.name if spec else fn.__module__).rsplit(".", 1)[-1], *sys.argv[1:]])
            extra = f" (+{startup:.1f} s start-up)" if startup is not None else ""
            logging.getLogger("frad.stage").info("%s: done in %.1f s%s", name, time.perf_counter() - t0, extra)
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
