"""Stage `features` (one per category): run the frozen backbone once over train and test images and
store the per-layer maps of features.cache_layers (fp16), reused by every variant (§1.1)."""

from __future__ import annotations

from frad.backbone import load_backbone
from frad.cache import build_feature_cache
from frad.datasets.layout import index_category
from frad.datasets.preprocess import Resize
from frad.device import resolve_device

from .common import DATASETS, FEATURES, stage_main, usage
from .params import Params, load_params


def run(params: Params, category: str) -> None:
    b, f = params.backbone, params.features
    device = resolve_device(params.train.device)  # fails early if CUDA is asked for but absent
    index = index_category(DATASETS, category)
    backbone = load_backbone(
        b.name, b.weights, layers=f.cache_layers, channels_last=b.channels_last, precision=b.precision
    )
    build_feature_cache(
        index,
        backbone,
        FEATURES / category,
        resize=Resize(params.data.image_size, params.data.crop, params.data.resize),
        weights=b.weights,
        device=device,
        batch_size=f.batch_size,
    )


@stage_main
def main(args: list[str]) -> None:
    (category,) = usage(args, 1, "python -m pipeline.features <category>")
    run(load_params(), category)


if __name__ == "__main__":
    main()
