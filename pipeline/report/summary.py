"""What the report summarises: reports/metrics.json (the full model's and each comparison method's averages) and the
"Speed" section of reports/tables.md (the headline rows of the latest ``python -m bench`` table)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from frad.errors import DataError

from ..params import Params
from . import uncertainty
from .labels import ALL_METRICS
from .scores import Scores
from .stats import stat

BENCHMARK_FILE = Path("reports") / "benchmark.md"  # written by `python -m bench` (its default --out)


def benchmark_section(path: Path | None) -> str:
    """The "Speed" section: the headline rows of the latest ``python -m bench`` run, with a link to the file."""
    lines = ["## Speed", ""]
    if path is None or not path.is_file():
        where = f" ({path} does not exist)" if path is not None else ""
        return "\n".join(
            [
                *lines,
                f"No benchmark run recorded{where}: run `python -m bench` (it writes "
                f"{BENCHMARK_FILE}), then `dvc repro report`.",
                "",
            ]
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(
            f"{path}: cannot read the benchmark table ({err}); rerun `python -m bench` to rewrite it"
        ) from err
    table = [line for line in text.splitlines() if line.startswith("|")]
    header, rows = (
        table[:2],
        [r for r in table[2:] if any(k in r for k in ("fast path", "training", "scoring", "compare", "AU-PRO +"))],
    )
    context = next((line for line in text.splitlines() if line.strip() and not line.startswith(("#", "|"))), "")
    return (
        "\n".join(
            [
                *lines,
                f"Headline rows of [`{path.name}`]({path.name}) (the full benchmark; {context.strip().lstrip('- ')})",
                "",
                *(_first_columns(line, 4) for line in [*header, *rows]),
            ]
        ).rstrip()
        + "\n"
    )


def _first_columns(row: str, n: int) -> str:
    """The first ``n`` cells of a Markdown table row (stage, variant, throughput, time: the headline)."""
    return "|" + "|".join(row.split("|")[1 : n + 1]) + "|"


def summary_metrics(scores: Scores, p: Params, boot: Any = None) -> dict[str, Any]:
    """reports/metrics.json: the full model's averages of every metric (fractions; None if undefined everywhere),
    their 95% intervals (``ci_low``, ``ci_high``) with ``boot``, and each comparison method's under ``methods``."""
    cats = list(p.data.categories)
    out: dict[str, Any] = {m: stat(scores["full"], cats, m).mean for m in ALL_METRICS}
    out.update(categories=len(cats), seeds=len(p.train.seeds))
    if len(p.train.seeds) > 1:
        out["std"] = {m: stat(scores["full"], cats, m).std for m in ALL_METRICS}
    out.update(uncertainty.metrics_fields(boot, "full", cats))
    if p.compare.methods:
        out["methods"] = {
            b: {**{m: stat(scores[b], cats, m).mean for m in ALL_METRICS}, **uncertainty.metrics_fields(boot, b, cats)}
            for b in p.compare.methods
        }
    return out
