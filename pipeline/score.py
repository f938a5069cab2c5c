"""Stage `score` (one per category × FRAD variant × seed): anomaly maps of the test set (§1.5) and image
scores, then :func:`pipeline.evaluate.evaluate`, shared with the compare stages so every method is measured the
same way."""

from __future__ import annotations

from frad.cache import FeatureCache
from frad.device import resolve_device
from frad.evaluation.postprocess import image_scores
from frad.score import anomaly_maps
from frad.train import load_model

from .common import FEATURES, model_path, seed_arg, stage_main, usage
from .evaluate import evaluate
from .params import Params, load_params


def run(params: Params, category: str, variant: str, seed: int) -> dict:
    device = resolve_device(params.train.device)
    model, payload = load_model(model_path(category, variant, seed), device)
    cache = FeatureCache(FEATURES / category)
    maps = anomaly_maps(
        model,
        cache.layers("test", payload["layers"]),
        payload["channels"],
        cache.image_size,
        params.score.sigma,
        params.score.batch_size,
    ).numpy()
    info = {"layers": payload["layers"], "gfe": payload["model_config"]["gfe"], "ssl": payload["train_config"]["ssl"]}
    return evaluate(params, category, variant, seed, maps, image_scores(maps, params.score.top_k), cache, info)


@stage_main
def main(args: list[str]) -> None:
    category, variant, seed = usage(args, 3, "python -m pipeline.score <category> <variant> <seed>")
    run(load_params(), category, variant, seed_arg(seed))


if __name__ == "__main__":
    main()
