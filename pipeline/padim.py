"""Stage `baseline@<category>-padim-<seed>`: PaDiM (Defard et al., 2021) in the same harness as FRAD."""
from __future__ import annotations

from frad.padim import PadimConfig, fit_and_score

from . import baseline
from .common import stage_main

@stage_main
def main(argv: list[str]) -> None:
    params, category, seed = baseline.args(argv, "padim")
    p = params.baselines.padim
    baseline.run(params, category, "padim", seed, fit_and_score, PadimConfig(d=p.d, eps=p.eps, seed=seed))

if __name__ == "__main__":
    main()
