"""Stage `choice` (one per development category × ``choices.changes`` entry × seed): the study of the open
choices (docs/diagnosis.md). Trains the main FRAD model with one open choice changed, exactly as the `train`
stage would, scores the test set after every epoch (image AUROC: for the study's curves only, never used to
stop or select) and, after the last epoch, as the `score` stage does (image / pixel AUROC, AU-PRO), into
data/scores/<category>/choice-<name>/seed<seed>.json. With ``choices.enabled: false`` it writes a stub and trains
nothing, so the study costs nothing unless asked for."""

from __future__ import annotations

import logging

from frad.io import write_json

from .common import FEATURES, choice_path, seed_arg, stage_main, usage
from .params import Params, load_params

log = logging.getLogger("frad.choice")


def run(params: Params, category: str, name: str, seed: int) -> dict:
    out = choice_path(category, name, seed)
    head = {"category": category, "method": name, "seed": seed, "enabled": params.choices.enabled}
    p = params.with_choice(name)  # checks the name before anything is written
    if not params.choices.enabled:
        write_json(out, head)
        log.info("choice %s/%s seed %d: choices.enabled is false, nothing trained", category, name, seed)
        return head
    # Heavy imports only when the study is on.
    from frad.cache import FeatureCache
    from frad.evaluation import metrics
    from frad.evaluation.postprocess import image_scores
    from frad.evaluation.scoreset import score_set
    from frad.score import anomaly_maps
    from frad.train import train_model

    v, model_config, train_config = p.configs("full", seed)
    cache = FeatureCache(FEATURES / category)
    train_maps, test_maps = cache.layers("train", v.layers), cache.layers("test", v.layers)
    labels, masks = cache.test_labels(), cache.test_masks()
    sc, channels = p.score, p.features.channels
    epochs: list[dict] = []
    last: dict = {}

    def on_epoch(epoch: int, record: dict, model) -> None:
        maps = anomaly_maps(model, test_maps, channels, cache.image_size, sc.sigma, sc.batch_size).numpy()
        scores = image_scores(maps, sc.top_k)
        epochs.append({**record, "image_auroc": metrics.try_metric(metrics.image_auroc, scores, labels)[0]})
        last.update(maps=maps, scores=scores)

    train_model(train_maps, channels, model_config, train_config, progress=False, on_epoch=on_epoch)
    result = {
        **head,
        "choice": dict([params.choices.changes[name]]) if params.choices.changes[name] else {},
        "layers": list(v.layers),
        **score_set(last["maps"], masks, last["scores"], labels).metrics(sc.pro_limit),
        "epochs": epochs,
    }
    log.info(
        "choice %s/%s seed %d: image AUROC %s, pixel AUROC %s, PRO %s",
        category,
        name,
        seed,
        result["image_auroc"],
        result["pixel_auroc"],
        result["pro"],
    )
    write_json(out, result)
    return result


@stage_main
def main(args: list[str]) -> None:
    category, name, seed = usage(args, 3, "python -m pipeline.choice <category> <change> <seed>")
    run(load_params(), category, name, seed_arg(seed))


if __name__ == "__main__":
    main()
