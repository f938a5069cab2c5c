"""Stage `train` (one per category × variant): fit the reconstruction network on the cached features of
the normal training images (§1.4) and save it to data/models/<category>/<variant>.pt."""
from __future__ import annotations

import json
import logging

from frad.cache import FeatureCache
from frad.model import ModelConfig
from frad.train import TrainConfig, save_model, train_model

from .common import FEATURES, MODELS, resolve_variant, stage_main, usage
from .params import load_params

log = logging.getLogger("frad.train")


def configs(params: dict, variant_name: str):
    """Model and training configs of a variant, built only from the params keys that variant uses
    (the DVC stage lists exactly those), so e.g. λ never enters a model trained without the shuffle loss."""
    v = resolve_variant(params, variant_name)
    m, s, t = params["model"], params["ssl"], params["train"]
    channels = params["features"]["channels"]
    model_config = ModelConfig(in_channels=channels, widths=tuple(m["widths"]), gfe=v.gfe, gfe_grid=m["grid"] if v.gfe else 1)
    train_config = TrainConfig(
        epochs=t["epochs"], batch_size=t["batch_size"], lr=t["lr"], betas=tuple(t["betas"]),
        ssl=v.ssl, ssl_lambda=s["lambda"] if v.ssl else 0.0, ssl_grid=s["grid"] if v.ssl else 1,
        seed=t["seed"], device=t["device"],
    )
    return v, channels, model_config, train_config


def run(params: dict, category: str, variant_name: str) -> None:
    v, channels, model_config, train_config = configs(params, variant_name)
    cache = FeatureCache(FEATURES / category)
    maps = cache.layers("train", v.layers)
    log.info("train %s/%s: layers %s, GFE %s, shuffle %s, %d images", category, v.name, v.layers, v.gfe, v.ssl,
             len(next(iter(maps.values()))))
    result = train_model(maps, channels, model_config, train_config)
    log.info("final epoch: %s", json.dumps(result.history[-1]))
    save_model(
        MODELS / category / f"{v.name}.pt", result, layers=v.layers, channels=channels, train_config=train_config,
        meta={"category": category, "variant": v.name},
    )


@stage_main
def main(args: list[str]) -> None:
    category, variant = usage(args, 2, "python -m pipeline.train <category> <variant>")
    run(load_params(), category, variant)


if __name__ == "__main__":
    main()
