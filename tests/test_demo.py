"""Tests for the quick demo's settings (``pipeline.demo.DEMO_PARAMS``): valid, one texture and one object
category, and (slow) every demo category reaching the image AUROC the demo promises, through the library."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from frad.backbone import load_backbone
from frad.cache import FeatureCache, build_feature_cache
from frad.datasets import synthetic, synthetic_render
from frad.datasets.layout import index_category
from frad.datasets.preprocess import Resize
from frad.evaluation import metrics
from frad.evaluation.postprocess import image_scores
from frad.score import anomaly_maps
from frad.train import train_model
from pipeline.demo import DEMO_PARAMS, MIN_IMAGE_AUROC
from pipeline.params import validate_params
from pipeline.workspace import PROJECT, set_key


@pytest.fixture(scope="module")
def demo_params():
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    for key, value in DEMO_PARAMS.items():
        set_key(params, key, copy.deepcopy(value))
    return validate_params(params)


def test_demo_params_are_valid_and_offline(demo_params):
    assert demo_params.data.source == "synthetic"
    assert demo_params.backbone.name == "tf_efficientnet_lite0"  # weights ship with a pip package
    assert demo_params.backbone.weights == "imagenet"
    assert demo_params.train.device == "cpu"


def test_demo_has_a_texture_and_an_object_category(demo_params):
    styles = {synthetic_render.category_style(c) for c in demo_params.data.categories}
    assert styles == {synthetic_render.TEXTURE, synthetic_render.OBJECT}
    assert demo_params.data.texture_categories and demo_params.data.object_categories  # as the report groups them


@pytest.mark.slow
@pytest.mark.parametrize("category", DEMO_PARAMS["data.categories"])
def test_demo_category_reaches_the_promised_image_auroc(tmp_path, demo_params, category):
    """The demo's data, backbone, model and training settings, run through the library (no DVC): the full
    model separates the synthetic defects from the good test images (Table 1 row of the demo)."""
    d, s = demo_params.data, demo_params.data.synthetic
    synthetic.generate_category(
        tmp_path / "data",
        category,
        s.seed,
        n_train=s.n_train,
        n_test_good=s.n_test_good,
        n_test_defect_per_type=s.n_test_defect,
        size=s.size,
    )
    b, f = demo_params.backbone, demo_params.features
    backbone = load_backbone(b.name, b.weights, layers=f.cache_layers, channels_last=b.channels_last)
    build_feature_cache(
        index_category(tmp_path / "data", category),
        backbone,
        tmp_path / "features",
        resize=Resize(d.image_size),
        weights=b.weights,
        progress=False,
    )
    cache = FeatureCache(tmp_path / "features")
    variant, model_config, train_config = demo_params.configs("full", demo_params.train.seeds[0])
    channels = demo_params.features.channels
    result = train_model(cache.layers("train", variant.layers), channels, model_config, train_config, progress=False)
    maps = anomaly_maps(
        result.model, cache.layers("test", variant.layers), channels, d.image_size, demo_params.score.sigma
    ).numpy()
    labels = cache.test_labels()
    assert labels.min() == 0 and labels.max() == 1
    auroc = metrics.image_auroc(image_scores(maps), labels)
    assert np.isfinite(auroc) and auroc >= MIN_IMAGE_AUROC, f"{category}: image AUROC {auroc:.3f} < {MIN_IMAGE_AUROC}"
