"""``python -m bench``: run the speed benchmark, print its Markdown table and write it to ``--out``
(default for a run of every row group: ``reports/benchmark.md``, which the report stage appends to the tables;
an ``--only`` run is written only where ``--out`` says) and, with ``--json``, the raw numbers.
``python -m bench --help`` lists the options."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict

from frad.io import write_json, write_text

from .run import run_benchmark
from .settings import FULL_OUT, parse_args, resolve_settings
from .table import jsonable


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    settings = resolve_settings(parse_args(argv), argv)
    result = run_benchmark(settings, log=lambda m: print(m, file=sys.stderr, flush=True))
    if settings.out:
        write_text(settings.out, result.markdown)  # atomic: the report stage never reads a half-written table
    if settings.json_out:
        write_json(
            settings.json_out,
            jsonable(
                {
                    "settings": asdict(settings),
                    "header": result.header,
                    "notes": result.notes,
                    "fast_mode": result.fast_mode,
                    "rows": [asdict(r) for r in result.rows],
                }
            ),
        )
    print(result.markdown)
    print(
        f"written to {settings.out}"
        if settings.out
        else f"not written: --only ran part of the table; give --out to keep it ({FULL_OUT} holds the full run)",
        file=sys.stderr,
    )
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
