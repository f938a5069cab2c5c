"""Stage `baseline@<category>-padim-<seed>`: PaDiM (Defard et al., 2021) in the same harness as FRAD."""

from __future__ import annotations

from frad.padim import PadimConfig, fit_and_score

from . import baseline
from .common import stage_main
from .params import Params


def run(params: Params, category: str, seed: int) -> dict:
    p = params.baselines.padim
    return baseline.run(params, category, "padim", seed, fit_and_score, PadimConfig(d=p.d, eps=p.eps, seed=seed))


@stage_main
def main(argv: list[str]) -> None:
    run(*baseline.args(argv, "padim"))


if __name__ == "__main__":
    main()
