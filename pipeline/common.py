"""Shared bits of the stage scripts: the error wrapper, paths, and the model variants of Tables 3–4."""
from __future__ import annotations

import functools
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from frad.errors import FradError

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


def stage_main(fn: Callable[[list[str]], None]) -> Callable[[], None]:
    """Run a stage: a FradError becomes one line on stderr and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper() -> None:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        warnings.simplefilter("default")
        try:
            fn(sys.argv[1:])
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
