"""Stage `train` (one per category × variant × seed): fit the reconstruction network on the cached features
of the normal training images (§1.4) and save it to data/models/<category>/<variant>/seed<seed>.pt."""

from __future__ import annotations

import json
import logging

from frad.cache import FeatureCache
from frad.train import save_model, train_model

from .common import FEATURES, model_path, seed_arg, stage_main, usage
from .params import Params, load_params

log = logging.getLogger("frad.train")


def run(params: Params, category: str, variant_name: str, seed: int) -> None:
    v, model_config, train_config = params.configs(variant_name, seed)
    maps = FeatureCache(FEATURES / category).layers("train", v.layers)
    log.info(
        "train %s/%s seed %d: layers %s, GFE %s, shuffle %s, %d images",
        category,
        v.name,
        seed,
        list(v.layers),
        v.gfe,
        v.ssl,
        len(next(iter(maps.values()))),
    )
    result = train_model(maps, params.features.channels, model_config, train_config)
    log.info("final epoch: %s", json.dumps(result.history[-1]))
    save_model(
        model_path(category, v.name, seed),
        result,
        layers=v.layers,
        channels=params.features.channels,
        train_config=train_config,
        meta={"category": category, "variant": v.name, "seed": seed},
    )


@stage_main
def main(args: list[str]) -> None:
    category, variant, seed = usage(args, 3, "python -m pipeline.train <category> <variant> <seed>")
    run(load_params(), category, variant, seed_arg(seed))


if __name__ == "__main__":
    main()
