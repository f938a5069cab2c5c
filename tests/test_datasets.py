"""The dataset registry (frad.datasets.registry): its entries, category names checked against the selected
dataset before any stage runs, and VisA's converter to the validated layout."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from PIL import Image
from pipeline_utils import TINY, changed, env, run_cpu_timed
from visa_fixture import make_visa

from frad.datasets import visa
from frad.datasets.layout import index_category, read_mask
from frad.datasets.registry import DATASETS, get_dataset
from frad.errors import ConfigError, DataError
from pipeline.params import validate_params
from pipeline.workspace import make_workspace


def test_every_entry_names_its_categories_groups_citation_and_licence():
    for name, d in DATASETS.items():
        assert d.name == name and d.title and d.licence
        assert set(d.textures) <= set(d.categories)
        grouped = [c for _, cats in d.groups for c in cats]
        assert sorted(grouped) == sorted(d.categories) and len(grouped) == len(set(grouped)), name  # a partition
        if d.categories:
            assert d.citation and d.page and d.sha256
    assert len(DATASETS["visa"].categories) == 12 and not DATASETS["visa"].textures
    assert [d.name for d in DATASETS.values() if d.in_paper] == ["mvtec_ad"]  # the FRAD paper's tables


@pytest.mark.parametrize(
    "dataset, category, needles",
    [
        ("visa", "capsule", ("'capsule' is not a VisA category; did you mean capsules?",)),
        ("visa", "bottle", ("'bottle' is not a VisA category", "it is a MVTec AD category: data.dataset=mvtec_ad")),
        ("mvtec_ad", "capsules", ("'capsules' is not a MVTec AD category; did you mean capsule?", "data.dataset=visa")),
        ("mvtec_ad", "pcb9", ("'pcb9' is not a MVTec AD category", "MVTec AD has carpet, grid")),
    ],
)
def test_a_category_of_another_dataset_or_a_typo_names_the_closest(dataset, category, needles):
    with pytest.raises(ConfigError) as err:
        validate_params(changed(data__dataset=dataset, data__categories=[category]))
    assert "\n" not in str(err.value)
    for needle in needles:
        assert needle in str(err.value)


def test_custom_and_synthetic_data_take_any_category_name():
    assert validate_params(changed(data__dataset="custom", data__source="folder", data__categories=["widget"]))
    assert validate_params(changed(data__dataset="visa", data__source="synthetic", data__categories=["widget"]))
    with pytest.raises(ConfigError, match="data.dataset custom has no published archive; use data.source: folder"):
        validate_params(changed(data__dataset="custom", data__categories=["widget"]))
    with pytest.raises(ConfigError, match="unknown dataset 'visaa'.*did you mean visa"):
        get_dataset("visaa")
    with pytest.raises(ConfigError, match="data.dataset must be one of mvtec_ad, visa, custom; got 'Visa'"):
        validate_params(changed(data__dataset="Visa"))


def test_an_unknown_visa_category_stops_a_stage_before_reading_anything_naming_the_closest(tmp_path):
    ws = make_workspace(
        tmp_path / "ws",
        {**TINY, "data.dataset": "visa", "data.source": "folder", "data.categories": ["capsule"]},
        git=False,
    )
    proc, cpu = run_cpu_timed(
        [sys.executable, "-m", "pipeline.prepare", "capsule"], cwd=ws, env=env(), capture_output=True, text=True
    )
    assert cpu < 10  # ~1 s here: the name is checked before anything is read
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "did you mean capsules?" in proc.stderr and not (ws / "data").exists()


def test_visa_converts_to_the_validated_layout_with_links_and_binarised_masks(tmp_path):
    root = make_visa(tmp_path / "VisA", n_train=5, n_good=2, n_bad=3)
    dest = DATASETS["visa"].materialise(root, "capsules", tmp_path / "datasets" / "capsules")
    index = index_category(tmp_path / "datasets", "capsules")
    assert (len(index.train), len(index.test), int(index.test_labels.sum())) == (5, 5, 3)
    assert index.has_masks and index.defect_types == ("anomaly",)
    link = dest / "train" / "good" / "0000.JPG"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))  # relative: the repo can move
    assert link.resolve() == (root / "capsules/Data/Images/Normal/0000.JPG").resolve()
    for s in index.test:
        if s.mask_path is None:
            continue
        raw = np.asarray(Image.open(root / "capsules/Data/Masks/Anomaly" / f"{s.path.stem}.png"))
        assert {1, 2} <= set(np.unique(raw).tolist())  # two instances, 1 below half of the maximum
        np.testing.assert_array_equal(read_mask(s.mask_path), raw > 0)  # every non-zero value is a defect


def test_visa_converter_names_what_is_missing(tmp_path):
    root = make_visa(tmp_path / "VisA", n_train=2, n_good=1, n_bad=1)
    with pytest.raises(DataError, match="has no rows for 'candle' \\(its objects: capsules\\)"):
        visa.convert_category(root, "candle", tmp_path / "out" / "candle")
    (root / "capsules/Data/Images/Anomaly/000.JPG").unlink()
    with pytest.raises(DataError, match="000.JPG is listed in .*1cls.csv but does not exist"):
        visa.convert_category(root, "capsules", tmp_path / "out" / "capsules")
    assert not (tmp_path / "out" / "capsules").exists()  # nothing half-written
    (root / "split_csv/1cls.csv").unlink()
    with pytest.raises(DataError, match="1cls.csv not found: data.root must be VisA's released folder"):
        visa.convert_category(root, "capsules", tmp_path / "out" / "capsules")
