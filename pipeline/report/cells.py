"""Cells and pipe tables shared by the report's tables (and the study's, ``pipeline.choices_report``): numbered
notes, our value with its notes, the paper / Δ cells next to it, and the note on comparing averages over another
set of categories than the paper's."""

from __future__ import annotations

from typing import Sequence

from tabulate import tabulate

from .. import paper
from ..params import Params
from .labels import DASH, METRIC_LABELS, NA
from .stats import Stat, delta, shown


class Notes:
    """Numbered notes of one table; identical texts share a number."""

    def __init__(self) -> None:
        self._texts: list[str] = []

    def mark(self, text: str) -> str:
        if text not in self._texts:
            self._texts.append(text)
        return f" [{self._texts.index(text) + 1}]"

    def render(self) -> list[str]:
        return [""] + [f"- [{i}] {t}" for i, t in enumerate(self._texts, 1)] if self._texts else []


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word[:-1] + 'ies' if word.endswith('y') else word + 's'}"


def ours_cell(s: Stat, metric: str, n: int, notes: Notes, what: str = "") -> str:
    """Our cell of a mean, with a note when it is undefined or skips categories."""
    name = METRIC_LABELS[metric]
    if s.mean is None:
        return NA + notes.mark(f"{what}{name} is undefined ({', '.join(s.undefined)}): {'; '.join(s.reasons)}.")
    text = shown(s)
    if s.undefined and n > 1:
        text += notes.mark(
            f"{name} averaged over the {len(s.used)} of {plural(n, 'category')} where it is defined "
            f"(undefined for {', '.join(s.undefined)})."
        )
    return text


def compare_cells(ours: str, paper_value: float | None, paper_mark: str = "") -> tuple[str, str]:
    """(paper, Δ) cells next to ``ours``."""
    if paper_value is None:
        return DASH, DASH
    return f"{paper_value:.1f}{paper_mark}", (
        DASH if ours.startswith(NA) else delta(ours.split("±")[0].split(" ")[0], paper_value)
    )


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], n_checks: int = 0) -> str:
    """A pipe table: the label column left, ``n_checks`` checkmark columns centred, numbers right."""
    align = ["left"] + ["center"] * n_checks + ["right"] * (len(headers) - 1 - n_checks)
    return tabulate(rows, headers=list(headers), tablefmt="pipe", disable_numparse=True, colalign=align)


def comparability_note(p: Params) -> str | None:
    if not p.data.paper_data or set(p.data.categories) == set(paper.CATEGORIES):
        return None
    return (
        f"The paper averages all {len(paper.CATEGORIES)} MVTec AD categories; ours average the "
        f"{len(p.data.categories)} categories in params.yaml, so Δ is not a like-for-like comparison."
    )
