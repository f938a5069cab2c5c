"""Stage `baseline@<category>-patchcore-<seed>`: PatchCore (Roth et al., 2022) in the same harness as FRAD."""

from __future__ import annotations

from frad.patchcore import PatchcoreConfig, fit_and_score

from . import baseline
from .common import stage_main
from .params import Params


def run(params: Params, category: str, seed: int) -> dict:
    p = params.baselines.patchcore
    config = PatchcoreConfig(
        coreset=p.coreset,
        dims=p.dims,
        projection=p.projection,
        neighbourhood=p.neighbourhood,
        reweight=p.reweight,
        k=p.k,
        seed=seed,
    )
    return baseline.run(params, category, "patchcore", seed, fit_and_score, config)


@stage_main
def main(argv: list[str]) -> None:
    run(*baseline.args(argv, "patchcore"))


if __name__ == "__main__":
    main()
