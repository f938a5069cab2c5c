"""Tests for ``frad.datasets.layout`` (MVTec layout reader), ``frad.datasets.preprocess``, ``frad.datasets.synthetic`` (seeded generator) and ``frad.datasets.synthetic_render``
(the drawing)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from frad.datasets import synthetic, synthetic_render
from frad.datasets.layout import index_category, read_image, read_mask
from frad.datasets.mvtec_ad import MVTEC_CATEGORIES
from frad.datasets.preprocess import IMAGENET_MEAN, IMAGENET_STD, ImageDataset, Resize, load_image, load_mask
from frad.errors import DataError

BOTTLE_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "mvtec_ad"
SMALL = {"n_train": 3, "n_test_good": 2, "n_test_defect_per_type": 2, "size": 64}


def _files(folder: Path) -> dict[str, bytes]:
    """Relative path → bytes of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _png(path: Path, hw: tuple[int, int] = (16, 16), value: int = 128, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": (3,), "L": ()}[mode]
    Image.fromarray(np.full(hw + channels, value, dtype=np.uint8)).save(path)
    return path


def _tiny_category(root: Path, category: str = "thing") -> Path:
    """Hand-made valid category: 2 train, 1 good test, 1 'crack' test with mask."""
    cat = root / category
    _png(cat / "train" / "good" / "000.png")
    _png(cat / "train" / "good" / "001.png")
    _png(cat / "test" / "good" / "000.png")
    _png(cat / "test" / "crack" / "000.png")
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[4:8, 4:8] = 255
    (cat / "ground_truth" / "crack").mkdir(parents=True)
    Image.fromarray(mask).save(cat / "ground_truth" / "crack" / "000_mask.png")
    return cat


def _raises_one_line(match: str, fn, *args):
    with pytest.raises(DataError, match=match) as info:
        fn(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synthetic.generate_dataset(root, ["carpet", "bottle"], seed=0, **SMALL)
    return root


# ------------------------------------------------------------------------------------ synthetic data


@pytest.mark.parametrize("category", ["carpet", "bottle"])
def test_synthetic_category_indexes_with_counts_labels_and_masks(synth_root, category):
    idx = index_category(synth_root, category)
    kinds = synthetic_render.defect_types(category)
    assert len(idx.train) == 3 and all(s.label == 0 and s.mask_path is None for s in idx.train)
    assert len(idx.test) == 2 + 2 * len(kinds)
    assert idx.defect_types == kinds
    assert idx.test_labels.tolist() == [0, 0] + [1] * (2 * len(kinds))
    for s in idx.test:
        if s.label == 0:
            assert s.defect == "good" and s.mask_path is None
        else:
            mask = read_mask(s.mask_path)
            assert mask.shape == (64, 64) and 0 < mask.mean() < 0.1  # present, not the whole image
            assert s.mask_path.name == f"{s.path.stem}_mask.png"


def test_synthetic_styles_follow_mvtec_names():
    assert synthetic_render.defect_types("carpet") == ("color", "scratch")
    assert synthetic_render.defect_types("bottle") == ("contamination", "crack", "missing")
    assert all(synthetic_render.category_style(c) in ("texture", "object") for c in MVTEC_CATEGORIES)


@pytest.mark.parametrize("category", ["carpet", "bottle", "cat13"])
def test_synthetic_mask_covers_exactly_the_painted_defect(category):
    for defect in synthetic_render.defect_types(category):
        r = synthetic_render.render_sample(category, defect, index=1, size=96)
        changed = (r.image != r.clean).any(axis=2)
        assert not (changed & ~r.mask).any(), "pixels changed outside the mask"
        assert changed[r.mask].mean() > 0.95, "mask covers pixels the defect did not paint"
        # visible: mean colour inside the mask moves clearly
        shift = np.abs(r.image[r.mask].astype(float) - r.clean[r.mask].astype(float)).mean()
        assert shift > 25, f"{category}/{defect} defect too faint ({shift:.1f} grey levels)"


def test_synthetic_object_pose_jitter_is_bounded_and_used():
    """Normal object poses stay inside fixed bounds (so test goods lie within what the train images span),
    and fill them: over 300 renders the extremes come close to the bounds on every axis."""
    size, j = 64, synthetic_render.OBJECT_POSE_JITTER
    p = synthetic_render._object_params(synthetic_render._rng(0, "bottle", "params"))
    scenes = [
        synthetic_render._render_object(p, synthetic_render._rng(0, "bottle", "test", "good", i, size), size)
        for i in range(300)
    ]
    shift = np.array([s["center"] for s in scenes]) / size - 0.5
    scale = np.array([s["radius"] for s in scenes]) / (p["radius"] * size) - 1.0
    rotation = np.array([s["rotation"] for s in scenes]) - p["rotation"]
    for name, values in (("shift", shift), ("scale", scale), ("rotation", rotation)):
        assert np.abs(values).max() <= j[name] + 1e-12, f"{name} jitter exceeds its bound"
        assert values.min() < -0.9 * j[name] and values.max() > 0.9 * j[name], f"{name} jitter does not fill its range"


def test_generator_same_seed_gives_identical_bytes(tmp_path, synth_root):
    synthetic.generate_category(tmp_path, "bottle", seed=0, **SMALL)
    assert _files(tmp_path / "bottle") == _files(synth_root / "bottle")


def test_generator_different_seed_gives_different_images(tmp_path, synth_root):
    synthetic.generate_category(tmp_path, "carpet", seed=1, **SMALL)
    a, b = _files(tmp_path / "carpet"), _files(synth_root / "carpet")
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if k.startswith("train/"))


def test_generator_adding_a_category_leaves_others_unchanged(tmp_path, synth_root):
    synthetic.generate_dataset(tmp_path, ["zipper", "carpet"], seed=0, **SMALL)
    assert _files(tmp_path / "carpet") == _files(synth_root / "carpet")


def test_generator_arbitrary_category_names(tmp_path):
    names = ["my_widget", "Part-7", "cat13"]
    synthetic.generate_dataset(tmp_path, names, seed=3, **SMALL)
    styles = {synthetic_render.category_style(n) for n in names}
    assert styles == {"texture", "object"}  # hash picks both styles among these names
    for name in names:
        idx = index_category(tmp_path, name)
        assert len(idx.train) == 3 and idx.defect_types == synthetic_render.defect_types(name)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folder left behind"


def test_generator_replaces_its_own_output_but_never_foreign_data(tmp_path):
    synthetic.generate_category(tmp_path, "tile", **SMALL)
    synthetic.generate_category(tmp_path, "tile", **{**SMALL, "n_train": 4})  # rerun replaces
    assert len(index_category(tmp_path, "tile").train) == 4
    _tiny_category(tmp_path, "bottle")
    with pytest.raises(DataError, match="not written by frad.datasets.synthetic"):
        synthetic.generate_category(tmp_path, "bottle", **SMALL)
    assert len(index_category(tmp_path, "bottle").train) == 2


def test_image_dataset_items(synth_root):
    idx = index_category(synth_root, "bottle")
    ds = ImageDataset(idx.test, Resize(32), IMAGENET_MEAN, IMAGENET_STD)
    item = ds[len(ds) - 1]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (32, 32) and item["mask"].dtype == torch.bool and item["mask"].any()
    assert item["label"] == 1 and item["index"] == len(ds) - 1
    assert not ds[0]["mask"].any() and ds[0]["label"] == 0


# ------------------------------------------------------------------------------------ real MVTec bottle


@pytest.fixture(scope="module")
def bottle():
    if not (BOTTLE_ROOT / "bottle" / "train" / "good").is_dir():
        pytest.skip(f"real MVTec AD bottle not found at {BOTTLE_ROOT / 'bottle'}")
    return index_category(BOTTLE_ROOT, "bottle")


def test_real_bottle_index_counts(bottle):
    assert len(bottle.train) == 209
    assert len(bottle.test) == 83
    assert int(bottle.test_labels.sum()) == 63
    assert sum(s.mask_path is not None for s in bottle.test) == 63
    assert bottle.defect_types == ("broken_large", "broken_small", "contamination")


def test_real_bottle_image_and_mask_loading(bottle):
    sample = next(s for s in bottle.test if s.label == 1)
    img = read_image(sample.path)
    assert img.shape == (900, 900, 3) and img.dtype == np.uint8
    tensor = load_image(sample.path, Resize(256), IMAGENET_MEAN, IMAGENET_STD)
    assert tensor.shape == (3, 256, 256) and tensor.dtype == torch.float32
    assert -2.2 < float(tensor.min()) and float(tensor.max()) < 2.7  # ImageNet-normalised range
    full = read_mask(sample.mask_path)
    mask = load_mask(sample.mask_path, img.shape[:2], Resize(256))
    assert mask.shape == (256, 256) and mask.dtype == bool
    assert abs(mask.mean() - full.mean()) < 0.01 and mask.any()


# ------------------------------------------------------------------------------------ error cases


def test_error_root_missing(tmp_path):
    _raises_one_line("does not exist", index_category, tmp_path / "nowhere", "bottle")


def test_error_unknown_category(tmp_path):
    _tiny_category(tmp_path, "thing")
    msg = _raises_one_line("category 'bottel' not found", index_category, tmp_path, "bottel")
    assert "thing" in msg  # lists what is there


def test_error_missing_train_good(tmp_path):
    cat = _tiny_category(tmp_path)
    (cat / "train" / "good").rename(cat / "train" / "ok")
    _raises_one_line(r"missing folder .*train/good", index_category, tmp_path, "thing")


def test_error_empty_train_set(tmp_path):
    cat = _tiny_category(tmp_path)
    for p in (cat / "train" / "good").iterdir():
        p.unlink()
    (cat / "train" / "good" / ".DS_Store").write_bytes(b"x")  # ignored, still empty
    _raises_one_line(r"no training images in .*train/good", index_category, tmp_path, "thing")


def test_error_missing_test_dir(tmp_path):
    cat = _tiny_category(tmp_path)
    (cat / "test").rename(cat / "tests")
    _raises_one_line(r"missing folder .*thing/test", index_category, tmp_path, "thing")


def test_error_defect_image_without_mask(tmp_path):
    cat = _tiny_category(tmp_path)
    _png(cat / "test" / "crack" / "001.png")
    msg = _raises_one_line(r"defect image .*crack/001\.png has no mask", index_category, tmp_path, "thing")
    assert str(cat / "ground_truth" / "crack" / "001_mask.png") in msg


def test_category_without_ground_truth_has_labels_but_no_masks(tmp_path):
    """OK / NG folders only: the defect images load with label 1 and an all-False mask; pixel truth is unknown."""
    cat = _tiny_category(tmp_path)
    _png(cat / "test" / "crack" / "001.png")
    with pytest.raises(DataError, match="001.png has no mask"):  # ground_truth/ present: every mask is required
        index_category(tmp_path, "thing")
    shutil.rmtree(cat / "ground_truth")
    index = index_category(tmp_path, "thing")
    assert index.has_masks is False
    assert [(s.label, s.defect, s.mask_path) for s in index.test] == [
        (0, "good", None),
        (1, "crack", None),
        (1, "crack", None),
    ]
    item = ImageDataset(index.test, Resize(16), IMAGENET_MEAN, IMAGENET_STD)[1]
    assert item["label"] == 1 and not item["mask"].any()


def test_good_only_category_without_ground_truth_keeps_its_masks(tmp_path):
    """No defect image, so nothing lacks a mask: the all-False masks are the ground truth (pixel metrics undefined
    because no defect pixel exists, not because masks are missing)."""
    cat = _tiny_category(tmp_path)
    shutil.rmtree(cat / "ground_truth")
    shutil.rmtree(cat / "test" / "crack")
    assert index_category(tmp_path, "thing").has_masks is True


def test_error_mask_size_differs_from_image(tmp_path):
    cat = _tiny_category(tmp_path)
    _png(cat / "ground_truth" / "crack" / "000_mask.png", hw=(8, 8), value=255, mode="L")
    ds = ImageDataset(index_category(tmp_path, "thing").test, 16, IMAGENET_MEAN, IMAGENET_STD)
    msg = _raises_one_line(r"000_mask\.png is 8x8 px but image .*crack/000\.png is 16x16 px", ds.__getitem__, 1)
    assert "regenerate" in msg


def test_error_mask_on_good_image(tmp_path):
    cat = _tiny_category(tmp_path)
    _png(cat / "ground_truth" / "good" / "000_mask.png", mode="L")
    _raises_one_line(r"mask .*good/000_mask\.png exists for good image", index_category, tmp_path, "thing")


def test_error_corrupt_png(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"this is not a png at all" * 10)
    _raises_one_line(r"cannot decode image .*bad\.png", read_image, bad)


def test_error_truncated_png(tmp_path):
    full = tmp_path / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full)
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    _raises_one_line(r"cannot decode image .*cut\.png .*corrupt or truncated", read_image, cut)
    _raises_one_line(r"cannot decode image .*cut\.png", read_mask, cut)


def test_error_non_image_file_in_folder(tmp_path):
    cat = _tiny_category(tmp_path)
    (cat / "test" / "crack" / "notes.txt").write_text("hello")
    _raises_one_line(r"non-image file .*crack/notes\.txt", index_category, tmp_path, "thing")


# ------------------------------------------------------------------------------------ formats & values


def test_hidden_files_and_thumbs_db_are_ignored(tmp_path):
    cat = _tiny_category(tmp_path)
    (cat / "train" / "good" / "Thumbs.db").write_bytes(b"x")
    (cat / "train" / "good" / ".DS_Store").write_bytes(b"x")
    (cat / "test" / ".ipynb_checkpoints").mkdir()
    assert len(index_category(tmp_path, "thing").train) == 2


def test_grayscale_palette_and_rgba_images_give_rgb(tmp_path):
    gray = _png(tmp_path / "gray.png", value=77, mode="L")
    out = read_image(gray)
    assert out.shape == (16, 16, 3) and (out == 77).all()
    Image.new("P", (8, 8), 0).save(tmp_path / "pal.png")
    Image.new("RGBA", (8, 8), (10, 20, 30, 0)).save(tmp_path / "rgba.png")
    assert read_image(tmp_path / "pal.png").shape == (8, 8, 3)
    assert read_image(tmp_path / "rgba.png")[0, 0].tolist() == [10, 20, 30]
    assert load_image(gray, Resize(8), IMAGENET_MEAN, IMAGENET_STD).shape == (3, 8, 8)


def test_jpg_and_bmp_accepted(tmp_path):
    cat = _tiny_category(tmp_path)
    img = Image.fromarray(np.full((16, 16, 3), 200, dtype=np.uint8))
    img.save(cat / "train" / "good" / "002.jpg")
    img.save(cat / "train" / "good" / "003.JPEG")
    img.save(cat / "test" / "crack" / "001.bmp", format="BMP")
    _png(cat / "ground_truth" / "crack" / "001_mask.png", value=255, mode="L")
    idx = index_category(tmp_path, "thing")
    assert [p.path.name for p in idx.train] == ["000.png", "001.png", "002.jpg", "003.JPEG"]
    assert [s.path.name for s in idx.test] == ["000.png", "000.png", "001.bmp"]
    assert all(read_image(s.path).shape == (16, 16, 3) for s in idx.train + idx.test)


def test_read_mask_binarises_at_half_max(tmp_path):
    values = np.array([[0, 100, 101, 200]], dtype=np.uint8)
    Image.fromarray(values).save(tmp_path / "m.png")
    assert read_mask(tmp_path / "m.png").tolist() == [[False, False, True, True]]
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "z.png")
    assert not read_mask(tmp_path / "z.png").any()


def test_load_image_normalises_with_given_mean_std(tmp_path):
    path = _png(tmp_path / "c.png", value=51)  # 0.2
    t = load_image(path, Resize(8), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert torch.allclose(t, torch.full((3, 8, 8), (0.2 - 0.5) / 0.5), atol=1e-6)
    t = load_image(path, Resize(8), IMAGENET_MEAN, IMAGENET_STD)
    expected = (0.2 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(t[:, 3, 3], expected, atol=1e-5)


def test_crop_is_resize_to_s_over_crop_then_centre_crop_like_torchvision(tmp_path):
    """§2.3 "resized and cropped": crop 0.875 at S = 64 resizes to round(64 / 0.875) = 73 and keeps the centred
    64×64, exactly as torchvision's resize (antialiased bilinear) then center_crop; the mask is cut the same way."""
    import torchvision.transforms.functional as TF

    assert Resize(64).plan(64, 64) == (64, 64, 0, 0) and Resize(64, 0.875).plan(90, 120) == (73, 73, 4, 4)
    assert Resize(256, 0.875).plan(256, 256) == (293, 293, 18, 18)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    ours = Resize(64, 0.875).image(image, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    t = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    ref = TF.center_crop(TF.resize(t, [73, 73], antialias=True), [64, 64])
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)

    mask = np.zeros((90, 120), np.uint8)
    mask[40:50, 55:65] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    cropped = load_mask(tmp_path / "mask.png", (90, 120), Resize(64, 0.875))
    full = np.asarray(Image.fromarray(mask).resize((73, 73), Image.Resampling.NEAREST)) > 127
    np.testing.assert_array_equal(cropped, full[4:68, 4:68])
    assert cropped.shape == (64, 64) and cropped.any()
    with pytest.raises(Exception, match="data.crop must be a fraction"):
        Resize(64, 0.0)
    with pytest.raises(Exception, match="data.resize must be one of stretch, short_side"):
        Resize(64, 1.0, "fit")


def test_short_side_keeps_the_aspect_ratio_and_crops_the_centre_like_torchvision(tmp_path):
    """``short_side`` (for non-square images such as VisA's 3:2): the short side to S, the aspect ratio kept, the
    centred S×S kept (torchvision's resize(S) then center_crop(S)); the mask alike. On a square image it is
    ``stretch``."""
    import torchvision.transforms.functional as TF

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)  # 3:2, landscape
    short = Resize(32, 1.0, "short_side")
    assert short.plan(60, 90) == (32, 48, 0, 8) and short.plan(90, 60) == (48, 32, 8, 0)
    t = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    ref = TF.center_crop(TF.resize(t, 32, antialias=True), [32, 32])
    torch.testing.assert_close(short.image(image, (0.0,) * 3, (1.0,) * 3), ref, atol=1e-6, rtol=0)
    stretched = TF.resize(t, [32, 32], antialias=True)
    torch.testing.assert_close(Resize(32).image(image, (0.0,) * 3, (1.0,) * 3), stretched, atol=1e-6, rtol=0)
    mask = np.zeros((60, 90), bool)
    mask[:, :10] = True  # a defect at the left end: not seen after the short-side crop, seen when stretched
    assert not short.mask(mask).any() and Resize(32).mask(mask)[:, :3].all()
    assert short.thumbnail(image).shape == (32, 32, 3)
    square = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert torch.equal(short.image(square, (0.0,) * 3, (1.0,) * 3), Resize(32).image(square, (0.0,) * 3, (1.0,) * 3))


def test_load_mask_nearest_resize_and_zero_for_good(tmp_path):
    mask = np.zeros((16, 16), np.uint8)
    mask[:8, :8] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    out = load_mask(tmp_path / "m.png", (16, 16), Resize(4))
    assert out.tolist() == [[True, True, False, False]] * 2 + [[False] * 4] * 2
    assert not load_mask(None, (16, 16), Resize(4)).any() and load_mask(None, (16, 16), Resize(4)).shape == (4, 4)
