"""Targets given on the command line (``--target scoring_img_s=1500``): a benchmark prints met / NOT met
beside a measured number only for the targets it was given; none are built in."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class TargetKind:
    op: str  # ">=" (at least) or "<=" (at most)
    unit: str
    what: str


KINDS: dict[str, TargetKind] = {
    "backbone_speedup": TargetKind(">=", "×", "fast-path backbone img/s over the naive fp32 eager path"),
    "scoring_img_s": TargetKind(">=", "img/s", "scoring throughput"),
    "train_100ep_s": TargetKind("<=", "s", "100 training epochs of the benchmarked train set"),
    "metrics_s": TargetKind("<=", "s", "AU-PRO + pixel AUROC time"),
    "au_pro_s": TargetKind("<=", "s", "AU-PRO time"),
    "classic_speedup": TargetKind(">=", "×", "au_pro over the classic thresholded AU-PRO loop"),
    "ap_f1_s": TargetKind("<=", "s", "pixel AP + pixel F1-max time"),
    "intervals_s": TargetKind("<=", "s", "intervals of all seven metrics, one bottle-size category, 1,000 resamples"),
}


def target_arg(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, float]]:
    """argparse ``type`` for ``NAME=VALUE`` with NAME among ``allowed``."""

    def parse(text: str) -> tuple[str, float]:
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or name not in allowed:
            raise argparse.ArgumentTypeError(
                f"--target wants NAME=VALUE with NAME one of {', '.join(allowed)} (got {text!r})"
            )
        try:
            return name, float(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"--target {name} wants a number (got {value!r})") from err

    return parse


def add_target_option(parser: argparse.ArgumentParser, allowed: tuple[str, ...]) -> None:
    """``--target NAME=VALUE`` (repeatable) on a benchmark's command line."""
    parser.add_argument(
        "--target",
        dest="targets",
        action="append",
        type=target_arg(allowed),
        default=[],
        metavar="NAME=VALUE",
        help=target_help(allowed),
    )


def target_help(allowed: tuple[str, ...]) -> str:
    return "repeatable; NAME=VALUE, prints met/NOT met: " + "; ".join(
        f"{n} ({KINDS[n].op} {KINDS[n].unit}: {KINDS[n].what})" for n in allowed
    )


def verdict(targets: Mapping[str, float], name: str, measured: float) -> str:
    """'target ≥ 1500 img/s: met' when ``name`` was given, else ''."""
    if name not in targets:
        return ""
    kind, goal = KINDS[name], targets[name]
    met = measured >= goal if kind.op == ">=" else measured <= goal
    sign = "≥" if kind.op == ">=" else "≤"
    unit = kind.unit if kind.unit == "×" else f" {kind.unit}"
    return f"target {sign} {goal:g}{unit}: {'met' if met else 'NOT met'}"
