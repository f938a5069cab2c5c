"""PaDiM, PatchCore and RD on cached backbone maps, each checked against independent references written here
(numpy / scipy / sklearn / brute-force loops) on small cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F
from pipeline_utils import THREADS, TINY
from sklearn.neighbors import NearestNeighbors

from frad.errors import ConfigError, TrainingError
from frad.evaluation.postprocess import to_image_maps
from frad.methods import METHODS as REGISTRY
from frad.padim import method as padim
from frad.patchcore import method as patchcore
from frad.rd import method as rd

torch.set_num_threads(THREADS)


def _maps(n: int, channels: dict[int, int], grid: int, seed: int, noise: float = 1.0) -> dict[int, torch.Tensor]:
    """Random per-layer maps {l: (n, C_l, grid/2^(l-1), grid/2^(l-1))} as the cache holds them (fp16)."""
    g = torch.Generator().manual_seed(seed)
    return {
        l: (noise * torch.randn(n, c, grid >> (l - 1), grid >> (l - 1), generator=g)).half()
        for l, c in channels.items()
    }


def _synthetic(channels: dict[int, int], grid: int = 16, n_train: int = 8, n_test: int = 3):
    """A fixed per-layer pattern plus small noise; the last test image has a strong off-pattern offset over the
    image region [1/4, 1/2)² (the same region at every layer). Returns train, test and the region's mask.

    Non-negative, like the post-ReLU stage outputs of the ResNets these methods were designed for: RD's student
    ends in a ReLU (as in their paper), so it cannot rebuild signed features and would learn nothing here."""
    g = torch.Generator().manual_seed(0)
    base = {l: torch.randn(c, grid >> (l - 1), grid >> (l - 1), generator=g).abs() for l, c in channels.items()}

    def draw(n):
        return {l: (b + 0.1 * torch.randn(n, *b.shape, generator=g)).clamp(min=0) for l, b in base.items()}

    train, test = draw(n_train), draw(n_test)
    for l, m in test.items():
        s = grid >> (l - 1)
        m[-1, :, s // 4 : s // 2, s // 4 : s // 2] += 4.0 * torch.randn(m.shape[1], 1, 1, generator=g).abs()
    return {l: m.half() for l, m in train.items()}, {l: m.half() for l, m in test.items()}


def _peak_in_region(maps: torch.Tensor, size: int) -> bool:
    y, x = np.unravel_index(int(maps[-1].argmax()), maps[-1].shape)
    return size // 4 - 2 <= y < size // 2 + 2 and size // 4 - 2 <= x < size // 2 + 2


# §1.5 post-processing shared by every method ------------------------------------------------------------------


def test_to_image_maps_is_bilinear_upsampling_then_scipy_gaussian():
    d = torch.rand(2, 5, 7, generator=torch.Generator().manual_seed(1))
    ours = to_image_maps(d, 20, 2.0).double().numpy()

    # bilinear, align_corners=False: sample at source coordinate (i + 0.5)·in/out − 0.5, clamped at the border
    def axis(n_in, n_out):
        c = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(c).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        w = np.zeros((n_out, n_in))
        w[np.arange(n_out), lo] += 1 - (c - lo)
        w[np.arange(n_out), hi] += c - lo
        return w

    wy, wx = axis(5, 20), axis(7, 20)
    ref = np.stack([ndi.gaussian_filter(wy @ m @ wx.T, 2.0, mode="reflect") for m in d.double().numpy()])
    np.testing.assert_allclose(ours, ref, atol=1e-5)


# PaDiM --------------------------------------------------------------------------------------------------------


def test_padim_mahalanobis_equals_numpy_reference():
    channels = {1: 3, 2: 4, 3: 5}
    train, test = _maps(20, channels, 8, seed=0), _maps(2, channels, 8, seed=1)
    cfg = padim.PadimConfig(d=7, eps=0.01, seed=3)
    res = padim.fit_and_score(train, test, cfg, image_size=8, sigma=0.0)  # grid = image size: maps = raw distances
    keep = padim.channel_subset(12, 7, 3).numpy()

    def embed(maps):  # nearest upsampling to the 8×8 layer-1 grid by repetition, concatenated channels
        return np.concatenate(
            [np.kron(maps[l].double().numpy(), np.ones((1, 1, 8 // s, 8 // s))) for l, s in ((1, 8), (2, 4), (3, 2))],
            axis=1,
        )[:, keep]

    x_train, x_test = embed(train), embed(test)
    for y, x in ((0, 0), (3, 5), (7, 7), (4, 1)):
        cov = np.cov(x_train[:, :, y, x].T) + 0.01 * np.eye(7)  # unbiased (N − 1), + ε·I
        inv = np.linalg.inv(cov)
        for i in range(2):
            diff = x_test[i, :, y, x] - x_train[:, :, y, x].mean(0)
            np.testing.assert_allclose(res.maps[i, y, x].item(), np.sqrt(diff @ inv @ diff), rtol=1e-5)
    np.testing.assert_array_equal(res.image_scores, res.maps.flatten(1).amax(1).numpy())


def test_padim_channel_subset_is_seeded():
    a, b = padim.channel_subset(176, 100, 0), padim.channel_subset(176, 100, 0)
    assert torch.equal(a, b) and len(set(a.tolist())) == 100 and int(a.max()) < 176
    assert not torch.equal(a, padim.channel_subset(176, 100, 1))
    with pytest.raises(ConfigError, match="compare.padim.d must be at most 176"):
        padim.channel_subset(176, 177, 0)


# PatchCore ----------------------------------------------------------------------------------------------------


def test_patchcore_aggregation_equals_explicit_neighbourhood_mean():
    x = torch.randn(2, 3, 5, 6, generator=torch.Generator().manual_seed(0))
    ref = np.zeros(x.shape)
    pad = np.pad(x.double().numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)))  # zero padding, counted in the mean
    for y in range(5):
        for xx in range(6):
            ref[:, :, y, xx] = pad[:, :, y : y + 3, xx : xx + 3].sum(axis=(2, 3)) / 9
    np.testing.assert_allclose(patchcore.aggregate(x, 3).numpy(), ref, atol=1e-6)


def test_patchcore_patch_features_reduce_each_layer_then_the_concatenation():
    maps = {2: torch.randn(1, 6, 4, 4), 3: torch.randn(1, 4, 2, 2)}
    cfg = patchcore.PatchcoreConfig(dims=4)
    feats, grid = patchcore.patch_features(maps, cfg)
    assert grid == (4, 4) and feats.shape == (16, 4)
    a2 = patchcore.aggregate(maps[2], 3)[0, :, 1, 2].double().numpy()
    a3 = F.interpolate(patchcore.aggregate(maps[3], 3), size=(4, 4), mode="bilinear")[0, :, 1, 2].double().numpy()
    # layer 2: 6 → 4 channels (adaptive bins [0,2) [1,3) [3,5) [4,6)), layer 3 already 4; then 8 → 4 (pairs)
    l2 = np.array([a2[0:2].mean(), a2[1:3].mean(), a2[3:5].mean(), a2[4:6].mean()])
    ref = np.concatenate([l2, a3]).reshape(4, 2).mean(1)
    np.testing.assert_allclose(feats[1 * 4 + 2].numpy(), ref, atol=1e-6)


def _farthest_points(z: np.ndarray, n: int, first: int) -> list[int]:
    chosen = [first]
    nearest = np.linalg.norm(z - z[first], axis=1)
    while len(chosen) < n:
        i = int(np.argmax(nearest))
        chosen.append(i)
        nearest = np.minimum(nearest, np.linalg.norm(z - z[i], axis=1))
    return chosen


def test_greedy_coreset_equals_brute_force_farthest_points():
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    # no projection (D <= projection): the seed only draws the first index
    first = int(torch.randint(300, (1,), generator=torch.Generator().manual_seed(5)))
    ours = patchcore.greedy_coreset(x, 40, projection=16, seed=5).tolist()
    assert ours == _farthest_points(x.double().numpy(), 40, first)
    # with projection: the seeded Gaussian (D, p)/sqrt(p) matrix, then the first index, from one generator
    g = torch.Generator().manual_seed(7)
    proj = (torch.randn(16, 4, generator=g) / 2.0).double().numpy()
    first = int(torch.randint(300, (1,), generator=g))
    ours = patchcore.greedy_coreset(x, 40, projection=4, seed=7).tolist()
    assert ours == _farthest_points(x.double().numpy() @ proj, 40, first)
    assert patchcore.greedy_coreset(x, 40, 4, 7).tolist() == ours
    assert patchcore.greedy_coreset(x, 40, 4, 8).tolist() != ours


def _blobs(n: int, d: int, seed: int) -> torch.Tensor:
    """Rows around a few centres (like aligned objects' patches: the pruning skips most rows), some duplicated."""
    g = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(12, d, generator=g)
    x = centres[torch.randint(12, (n,), generator=g)] + torch.randn(n, d, generator=g) * torch.rand(n, 1, generator=g)
    x[: n // 20] = x[n // 20 : n // 10]  # exact duplicates: distance 0 ties
    return x


@pytest.mark.parametrize(
    "data",
    [lambda s: torch.randn(3000, 160, generator=torch.Generator().manual_seed(s)), lambda s: _blobs(3000, 160, s)],
    ids=["gaussian", "blobs"],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_pruned_greedy_coreset_selects_exactly_what_the_dense_one_does(data, seed):
    """The CPU path skips rows by the triangle inequality; the dense loop (Alg. 1 as written: today's and the GPU
    path) updates every row each step. Same rows in the same order, up to the whole bank (ties at distance 0)."""
    x = data(seed)
    gen = torch.Generator().manual_seed(seed)
    z = x @ (torch.randn(160, 128, generator=gen) / math.sqrt(128))
    first = int(torch.randint(len(z), (1,), generator=gen))
    for n in (300, len(z)):
        assert torch.equal(patchcore._greedy_pruned(z, n, first, False), patchcore._greedy_dense(z, n, first, False))
    assert (
        patchcore.greedy_coreset(x, 300, 128, seed).tolist() == patchcore._greedy_dense(z, 300, first, False).tolist()
    )


def test_greedy_coreset_prunes_on_the_cpu(monkeypatch):
    monkeypatch.setattr(patchcore, "_greedy_dense", lambda *a: pytest.fail("dense loop used on the CPU"))
    assert len(patchcore.greedy_coreset(torch.randn(50, 8), 10, 4, 0)) == 10


def test_nearest_neighbours_equal_sklearn():
    g = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(500, 12, generator=g), torch.randn(2 * patchcore.CHUNK + 7, 12, generator=g)
    d, i = patchcore.nearest_neighbours(queries, bank, k=3)
    ref_d, ref_i = NearestNeighbors(n_neighbors=3).fit(bank.double().numpy()).kneighbors(queries.double().numpy())
    np.testing.assert_array_equal(i.numpy(), ref_i)
    np.testing.assert_allclose(d.numpy(), ref_d, rtol=1e-5)


def test_reweighting_equals_eq7():
    g = torch.Generator().manual_seed(0)
    bank, patches = torch.randn(50, 6, generator=g), torch.randn(2, 10, 6, generator=g)
    d, nn = patchcore.nearest_neighbours(patches.reshape(-1, 6), bank)
    d, nn = d.view(2, 10), nn.view(2, 10)
    ours = patchcore.reweight(patches, d, nn, bank, k=4).numpy()
    b, p = bank.double().numpy(), patches.double().numpy()
    for j in range(2):
        dist = np.linalg.norm(p[j][:, None] - b[None], axis=2)  # (10, 50)
        star = int(dist.min(1).argmax())  # the image's highest-scoring patch
        m_star = int(dist[star].argmin())
        support = np.argsort(np.linalg.norm(b - b[m_star], axis=1))[:4]  # N_b(m*), m* included
        s_star = dist[star, m_star]
        ref = (1 - np.exp(s_star) / np.exp(dist[star, support]).sum()) * s_star
        np.testing.assert_allclose(ours[j], ref, rtol=1e-5)


# RD -----------------------------------------------------------------------------------------------------------


def test_rd_loss_equals_explicit_normalised_dot_products():
    g = torch.Generator().manual_seed(0)
    teacher = [torch.randn(2, c, s, s, generator=g) for c, s in ((3, 4), (5, 2))]
    student = [torch.randn(t.shape, generator=g) for t in teacher]
    ref = 0.0
    for t, s in zip(teacher, student):
        t, s = t.double().numpy(), s.double().numpy()
        cos = [
            t[b, :, y, x] @ s[b, :, y, x] / np.linalg.norm(t[b, :, y, x]) / np.linalg.norm(s[b, :, y, x])
            for b in range(t.shape[0])
            for y in range(t.shape[2])
            for x in range(t.shape[3])
        ]
        ref += np.mean(1 - np.array(cos))
    np.testing.assert_allclose(rd.rd_loss(teacher, student).item(), ref, rtol=1e-5)


@pytest.mark.parametrize("channels", [(8, 12, 16), (24, 40, 112)])
def test_rd_student_returns_the_teacher_shapes(channels):
    teacher = [torch.randn(2, c, 32 >> i, 32 >> i) for i, c in enumerate(channels)]
    out = rd.Student(channels).eval()(teacher)
    assert [tuple(o.shape) for o in out] == [tuple(t.shape) for t in teacher]
    two = rd.Student(channels[1:]).eval()(teacher[1:])  # layers (2, 3)
    assert [tuple(o.shape) for o in two] == [tuple(t.shape) for t in teacher[1:]]


def test_rd_training_is_bitwise_reproducible_and_divergence_is_reported():
    train = _maps(5, {1: 4, 2: 6, 3: 8}, 16, seed=0)
    cfg = rd.RDConfig(epochs=2, batch_size=2, seed=1)
    (m1, h1), (m2, h2) = rd.train_rd(train, cfg), rd.train_rd(train, cfg)
    assert h1 == h2 and len(h1) == 2
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    _, h3 = rd.train_rd(train, rd.RDConfig(epochs=2, batch_size=2, seed=2))
    assert h3 != h1
    train[2][3, 0, 0, 0] = float("nan")
    with pytest.raises(TrainingError, match="epoch 1.*compare.rd.lr"):
        rd.train_rd(train, cfg)


def test_rd_linear_student_output_matches_a_signed_teacher():
    """Their decoder stages end in a ReLU (default), which cannot rebuild signed teacher maps (EfficientNet-Lite0's
    linear stage outputs): the best non-negative s has cos(t, s) = ||t⁺|| / ||t||, so every epoch's loss stays at or
    above that floor, by construction. ``student_output: linear`` can go below it (0.58-0.74 against a floor of
    0.86 over seeds 0-2, AVX2 and default kernels)."""
    train, test = _synthetic({1: 8, 2: 12, 3: 16}, n_train=16)
    shifted = [{l: m.float() - 0.8 for l, m in maps.items()} for maps in (train, test)]
    floor = sum((1 - t.clamp(min=0).norm(dim=1) / t.norm(dim=1)).mean().item() for t in shifted[0].values())
    relu = rd.fit_and_score(*shifted, rd.RDConfig(epochs=30, batch_size=4, seed=0), image_size=32, sigma=1.0)
    cfg = rd.RDConfig(epochs=30, batch_size=4, seed=0, student_output="linear")
    res = rd.fit_and_score(*shifted, cfg, image_size=32, sigma=1.0)
    assert relu.info["student_output"] == "relu" and res.info["student_output"] == "linear"
    assert min(relu.info["history"]) >= floor - 1e-5
    assert res.info["final_loss"] < floor
    student = rd.Student((8, 12, 16), linear_output=True).eval()
    out = student([torch.randn(2, c, 16 >> i, 16 >> i) for i, c in enumerate((8, 12, 16))])
    assert all((o < 0).any() for o in out)


class _NormalStudent(torch.nn.Module):
    """A student with fixed weights: whatever its input, it outputs the train set's mean maps (a perfect
    reconstruction of the normal pattern), so the map is the cosine distance to the normal pattern."""

    linear_output = False

    def __init__(self, train: dict[int, torch.Tensor]):
        super().__init__()
        self.mean = [m.float().mean(0, keepdim=True) for _, m in sorted(train.items())]
        self.weight = torch.nn.Parameter(torch.zeros(1))  # anomaly_maps reads the device from the parameters

    def forward(self, teacher):
        return [m.expand(len(t), -1, -1, -1) for m, t in zip(self.mean, teacher)]


def test_rd_with_fixed_weights_finds_the_out_of_distribution_patch(monkeypatch):
    """RD's scoring (eq. 4) apart from its training: with a student that rebuilds the normal pattern, the patch
    is the peak of the last map and the image stands out, on every CPU (no optimisation involved)."""
    cfg = rd.RDConfig(epochs=1, batch_size=4, seed=0)
    train, test = _synthetic({1: 8, 2: 12, 3: 16}, n_train=16)
    monkeypatch.setattr(rd, "train_rd", lambda train, config, **kw: (_NormalStudent(train), [0.0]))
    res = rd.fit_and_score(train, test, cfg, image_size=32, sigma=1.0, batch_size=2)
    assert _peak_in_region(res.maps, 32)
    assert res.image_scores[-1] > 2.0 * res.image_scores[:-1].max()


def test_rd_training_lowers_its_loss():
    """Training, apart from what the trained student then scores: the loss falls well below where it starts
    (about 1.2 -> 0.2-0.27 over seeds 0-3, AVX2 and default kernels; asserted at half)."""
    train, _ = _synthetic({1: 8, 2: 12, 3: 16}, n_train=16)
    _, history = rd.train_rd(train, rd.RDConfig(epochs=30, batch_size=2, seed=0))
    assert history[-1] < 0.5 * history[0]


# fit_and_score of each method ---------------------------------------------------------------------------------

# Each registered method with the tests' small settings (tests/pipeline_utils.TINY), changed where this test needs
# it: a new method in frad.methods.METHODS is tested here without editing this file.
FIT_CASES = {
    **{name: (name, {}) for name in REGISTRY},
    "patchcore": ("patchcore", {"coreset": 0.25, "dims": 16}),
    "patchcore-reweight": ("patchcore", {"dims": 16, "reweight": True}),
}


def test_every_registered_method_has_small_test_settings():
    assert {f"compare.{name}" for name in REGISTRY} <= set(TINY)


def _fit_synthetic(case: str):
    """FIT_CASES[case] fitted on the synthetic maps and scored on their three test images (32², σ = 1)."""
    name, change = FIT_CASES[case]
    method = REGISTRY[name]
    cfg = method.make_config({**TINY[f"compare.{name}"], **change}, seed=0)
    train, test = _synthetic({1: 8, 2: 12, 3: 16}, n_train=16)
    train, test = {l: train[l] for l in cfg.layers}, {l: test[l] for l in cfg.layers}
    return method.fit_and_score(train, test, cfg, image_size=32, sigma=1.0, batch_size=2)


@pytest.mark.parametrize("case", sorted(FIT_CASES))
def test_fit_and_score_returns_one_deterministic_map_per_test_image(case):
    res, again = _fit_synthetic(case), _fit_synthetic(case)
    assert res.maps.shape == (3, 32, 32) and res.maps.dtype == torch.float32 and res.image_scores.shape == (3,)
    assert torch.isfinite(res.maps).all() and np.isfinite(res.image_scores).all()
    assert torch.equal(res.maps, again.maps) and np.array_equal(res.image_scores, again.image_scores)


@pytest.mark.parametrize("case", sorted(c for c, (name, _) in FIT_CASES.items() if not REGISTRY[name].trained))
def test_fit_and_score_finds_the_out_of_distribution_patch(case):
    """Methods without a trained network (a trained one is tested with fixed weights, as RD above): the patch is
    4x the noise off the normal pattern at every layer, so the peak and the margin hold by construction."""
    res = _fit_synthetic(case)
    assert _peak_in_region(res.maps, 32), case
    assert res.image_scores[-1] > 2.0 * res.image_scores[:-1].max(), case


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda: padim.PadimConfig(d=0), "compare.padim.d"),
        (lambda: padim.PadimConfig(eps=-1.0), "compare.padim.eps"),
        (lambda: padim.PadimConfig(layers=(1, 4)), "compare.padim.layers"),
        (lambda: patchcore.PatchcoreConfig(coreset=0.0), r"compare.patchcore.coreset must be in \(0, 1\]"),
        (lambda: patchcore.PatchcoreConfig(neighbourhood=2), "compare.patchcore.neighbourhood must be odd"),
        (lambda: patchcore.PatchcoreConfig(seed=-1), "compare.patchcore.seed"),
        (lambda: rd.RDConfig(betas=(0.5, 1.0)), "compare.rd.betas"),
        (lambda: rd.RDConfig(layers=(1, 3)), "compare.rd.layers must be consecutive"),
        (lambda: rd.RDConfig(device="gpu"), "compare.rd.device"),
        (lambda: rd.RDConfig(student_output="tanh"), "compare.rd.student_output"),
    ],
)
def test_configs_name_the_bad_key(make, key):
    with pytest.raises(ConfigError, match=key):
        make()


@pytest.mark.slow
def test_padim_and_patchcore_on_real_bottle(bottle_features):
    """Real MVTec AD bottle with EfficientNet-Lite0 ImageNet features (small settings, CPU)."""
    from frad.cache import FeatureCache
    from frad.evaluation import metrics

    cache = FeatureCache(bottle_features)
    for module, cfg, floor in (
        (padim, padim.PadimConfig(), 0.97),
        (patchcore, patchcore.PatchcoreConfig(coreset=0.01), 0.98),
    ):
        res = module.fit_and_score(
            cache.layers("train", cfg.layers), cache.layers("test", cfg.layers), cfg, image_size=256, sigma=4.0
        )
        assert metrics.image_auroc(res.image_scores, cache.test_labels()) >= floor, module.__name__
