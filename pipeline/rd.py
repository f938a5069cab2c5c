"""Stage `baseline@<category>-rd-<seed>`: reverse distillation (Deng & Li, 2022) in the same harness as FRAD:
the cached backbone maps are the teacher, the OCBE + de-ResNet student is trained per seed."""

from __future__ import annotations

from frad.rd import RDConfig, fit_and_score

from . import baseline
from .common import stage_main
from .params import Params


def run(params: Params, category: str, seed: int) -> dict:
    p = params.baselines.rd
    config = RDConfig(
        epochs=p.epochs,
        batch_size=p.batch_size,
        lr=p.lr,
        betas=p.betas,
        seed=seed,
        device=params.train.device,
        student_output=p.student_output,
    )
    return baseline.run(params, category, "rd", seed, fit_and_score, config)


@stage_main
def main(argv: list[str]) -> None:
    run(*baseline.args(argv, "rd"))


if __name__ == "__main__":
    main()
