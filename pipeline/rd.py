"""Stage `baseline@<category>-rd-<seed>`: reverse distillation (Deng & Li, 2022) in the same harness as FRAD:
the cached backbone maps are the teacher, the OCBE + de-ResNet student is trained per seed."""
from __future__ import annotations

from frad.rd import RDConfig, fit_and_score

from . import baseline
from .common import stage_main


@stage_main
def main(argv: list[str]) -> None:
    params, category, seed = baseline.args(argv, "rd")
    p = params.baselines.rd
    config = RDConfig(epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, betas=p.betas, seed=seed, device=params.train.device)
    baseline.run(params, category, "rd", seed, fit_and_score, config)


if __name__ == "__main__":
    main()
