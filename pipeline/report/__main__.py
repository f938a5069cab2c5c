"""``python -m pipeline.report``: the DVC stage `report` (see the package's docstring)."""

from __future__ import annotations

from ..common import stage_main
from . import run

main = stage_main(run)

if __name__ == "__main__":
    main()
