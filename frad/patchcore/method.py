"""PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022) on the cached
backbone maps.

§3.1 locally aware patch features: layers 2 and 3, each aggregated over a p×p neighbourhood (eq. 3, p = 3),
layer 3 resized to layer 2's grid, reduced to ``dims`` per position; memory bank M = all train patches.
§3.2 coreset: greedy k-center selection (Alg. 1) on a random projection to ``projection`` dims.
§3.3 anomaly detection: patch score = distance to the nearest bank patch (eq. 6), image score = the max patch
score, optionally reweighted (eq. 7); the patch scores go through the same upsampling + σ blur as FRAD.
"""

from __future__ import annotations

import math
import time
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..evaluation.postprocess import to_image_maps
from ..harness import MethodResult, as_device, check_maps, clock
from . import PatchcoreConfig

CHUNK = 2048  # test patches per nearest-neighbour chunk (bounds the (chunk, |M|) distance matrix)


def aggregate(x: torch.Tensor, p: int) -> torch.Tensor:
    """eq. 3 with f_agg = average over the p×p neighbourhood (stride 1, zero padding counted: their code unfolds
    zero-padded p×p patches and averages them) → same grid as x."""
    return F.avg_pool2d(x, p, stride=1, padding=p // 2, count_include_pad=True)


def _pool_channels(x: torch.Tensor, dims: int) -> torch.Tensor:
    """Adaptive average pooling of each row vector (M, C) → (M, dims) (their MeanMapper / Aggregator)."""
    return F.adaptive_avg_pool1d(x[:, None], dims)[:, 0]


def patch_features(maps: Mapping[int, torch.Tensor], config: PatchcoreConfig) -> tuple[torch.Tensor, tuple[int, int]]:
    """Locally aware patch features (§3.1): (B·H·W, dims) float32 rows in (image, y, x) order, and the grid (H, W).

    Per layer: p×p average (eq. 3), bilinear resize to the finest layer's grid (their code, align_corners=False;
    averaging commutes with the resize, so aggregating first equals their order), channels pooled to ``dims``;
    then the layers' vectors concatenated and pooled to ``dims`` (their code: each layer gets an equal share).
    Their code pools the flattened C×p×p patch instead of averaging the p×p positions first: the same when
    dims = C, while here positions are averaged exactly (eq. 3) and only channels are pooled.
    """
    layers = sorted(maps)
    grid = tuple(int(s) for s in maps[layers[0]].shape[-2:])
    per_layer = []
    for layer in layers:
        f = aggregate(maps[layer].float(), config.neighbourhood)
        if tuple(f.shape[-2:]) != grid:
            f = F.interpolate(f, size=grid, mode="bilinear", align_corners=False)
        per_layer.append(_pool_channels(f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]), config.dims))
    return _pool_channels(torch.cat(per_layer, dim=1), config.dims), grid


def greedy_coreset(x: torch.Tensor, n: int, projection: int, seed: int, progress: bool = False) -> torch.Tensor:
    """Greedy k-center coreset (PatchCore Alg. 1): n row indices of x (N, D), each the row farthest (Euclidean)
    from those chosen so far, computed on x·P with P a seeded Gaussian (D, projection) matrix (Johnson–Lindenstrauss;
    their code: a random linear layer; none when D <= projection). The first index is drawn from the same seeded
    generator after P (their exact greedy sampler starts from row 0; a random start avoids an order bias).

    On the CPU the rows that provably keep their distance are skipped (``_greedy_pruned``); on other devices every
    row is updated each step (``_greedy_dense``, no host sync per step). Both select the same rows (tested)."""
    num = len(x)
    if not 1 <= n <= num:
        raise ConfigError(f"coreset size must be in [1, {num}], got {n}")
    gen = torch.Generator().manual_seed(seed)
    z = x.float()
    if x.shape[1] > projection:
        z = z @ (torch.randn(x.shape[1], projection, generator=gen) / math.sqrt(projection)).to(x.device)
    first = int(torch.randint(num, (1,), generator=gen))
    greedy = _greedy_pruned if z.device.type == "cpu" else _greedy_dense
    return greedy(z, n, first, progress)


def _dist(rows: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Exact ‖r − c‖ for every row (no matmul expansion). The value of a row does not depend on the other rows
    passed, so a subset of rows gets bitwise the distances the whole bank gets."""
    return torch.cdist(rows, c.view(1, -1), compute_mode="donot_use_mm_for_euclid_dist")[:, 0]


def _greedy_dense(z: torch.Tensor, n: int, first: int, progress: bool) -> torch.Tensor:
    """Alg. 1 as written: each step updates the distance of every row to the coreset (reads the whole bank)."""
    chosen = torch.empty(n, dtype=torch.long, device=z.device)
    chosen[0] = first
    nearest = _dist(z, z[first])  # distance of every row to the coreset so far
    for step in tqdm(range(1, n), desc="coreset", disable=not progress, leave=False):
        nxt = torch.argmax(nearest)  # stays on the device: no sync per step
        chosen[step] = nxt
        torch.minimum(nearest, _dist(z, z[nxt]), out=nearest)
    return chosen


# A row j whose nearest chosen row is c_j can only move closer to the new row x if ‖x − c_j‖ < 2·‖z_j − c_j‖
# (triangle inequality). The factor's slack (1e-4) and the fp32 error bound on ‖x − c‖ below (dot products of
# length ≤ 1024: relative error ≤ ~6e-5 of ‖x‖² + ‖c‖², taken as 1e-3) keep rounding from ever skipping a row
# that would change.
_SKIP_FACTOR = 2.0002
_DOT_SLACK = 1e-3
DENSE_STEP = 2  # a step with more than half the rows as candidates updates every row (gathering costs ~1.6x per row)


def _greedy_pruned(z: torch.Tensor, n: int, first: int, progress: bool) -> torch.Tensor:
    """Alg. 1 with the same result as ``_greedy_dense``, computing exact distances only for the rows the triangle
    inequality cannot rule out (the classic acceleration of farthest-first traversal): each step reads the chosen
    rows once and the candidate rows, instead of the whole bank. On a bottle-size bank at coreset 0.1 that is ~1,000
    of 214,016 rows per step; on unstructured data (random maps) most rows stay candidates and a step updates every
    row, as the dense loop. Ties go to the lowest index, as ``torch.argmax``. Single-threaded: each step is a few
    small operations, for which thread hand-offs cost more than they save (and cost much more on a loaded host)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        chosen = np.empty(n, dtype=np.int64)
        chosen[0] = first
        nearest = _dist(z, z[first]).numpy()  # distance of every row to the coreset so far (exact, as dense)
        limit = nearest * _SKIP_FACTOR  # a row is a candidate while ‖x − c_j‖ < limit_j
        owner = np.zeros(len(z), dtype=np.int64)  # j -> step of the chosen row c_j at distance nearest[j]
        centres = torch.empty(n, z.shape[1])
        centres[0] = z[first]
        sq = torch.empty(n)  # ‖c‖² of the chosen rows
        sq[0] = centres[0] @ centres[0]
        for step in tqdm(range(1, n), desc="coreset", disable=not progress, leave=False):
            nxt = int(nearest.argmax())  # numpy's argmax, like torch's, returns the first maximum
            chosen[step] = nxt
            x = centres[step] = z[nxt]
            xx = sq[step] = x @ x
            # lower bound of ‖x − c‖ for every chosen row c: one pass over the chosen rows (matrix-vector product)
            d2 = torch.addmv(sq[:step] + xx, centres[:step], x, alpha=-2)
            lower = (d2 - _DOT_SLACK * (sq[:step] + xx)).clamp_(min=0).sqrt_().numpy()
            rows = np.flatnonzero(lower.take(owner) < limit)
            if len(rows) > len(z) // DENSE_STEP:  # most rows may move (unstructured data): every row, no gather
                d = _dist(z, x).numpy()
                closer = d < nearest
                np.copyto(nearest, d, where=closer)
                np.copyto(limit, d * _SKIP_FACTOR, where=closer)
                np.copyto(owner, step, where=closer)
                continue
            d = _dist(z[torch.from_numpy(rows)], x).numpy()
            closer = d < nearest[rows]
            rows, d = rows[closer], d[closer]
            nearest[rows] = d
            limit[rows] = d * _SKIP_FACTOR
            owner[rows] = step
        return torch.from_numpy(chosen)
    finally:
        torch.set_num_threads(threads)


def nearest_neighbours(queries: torch.Tensor, bank: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest bank rows of every query row: (distances (Q, k) ascending, indices (Q, k)).
    Candidates by the matmul form of ‖a − b‖² in chunks; the returned distances are recomputed directly from the
    differences, so they carry no cancellation error."""
    bank_sq = (bank * bank).sum(1)
    dists, idx = [], []
    for start in range(0, len(queries), CHUNK):
        q = queries[start : start + CHUNK]
        d2 = torch.addmm(bank_sq[None], q, bank.T, alpha=-2) + (q * q).sum(1, keepdim=True)
        i = d2.topk(k, dim=1, largest=False).indices
        d = (q[:, None] - bank[i]).norm(dim=2)
        order = d.argsort(dim=1, stable=True)  # re-sort by the exact distances
        dists.append(d.gather(1, order))
        idx.append(i.gather(1, order))
    return torch.cat(dists), torch.cat(idx)


def reweight(
    patches: torch.Tensor, scores: torch.Tensor, nn_index: torch.Tensor, bank: torch.Tensor, k: int
) -> torch.Tensor:
    """eq. 7 for each image: s = (1 − exp‖m_test,* − m*‖ / Σ_{m ∈ N_k(m*)} exp‖m_test,* − m‖) · s*, with m_test,*
    the image's highest-scoring patch, m* its nearest bank patch and N_k(m*) the k nearest bank patches of m*
    (m* itself included, as in anomalib). ``patches`` (B, P, D), ``scores`` and ``nn_index`` (B, P)."""
    s_star, where = scores.max(dim=1)
    rows = torch.arange(len(scores), device=scores.device)
    m_test = patches[rows, where]  # (B, D)
    m_star = bank[nn_index[rows, where]]
    _, support = nearest_neighbours(m_star, bank, min(k, len(bank)))  # (B, k)
    d = (m_test[:, None] - bank[support]).norm(dim=2)  # ‖m_test,* − m‖ for m ∈ N_k(m*)
    d_star = (m_test - m_star).norm(dim=1)
    return (1 - torch.exp(d_star - torch.logsumexp(d, dim=1))) * s_star


@torch.inference_mode()
def fit_and_score(
    train: Mapping[int, torch.Tensor],
    test: Mapping[int, torch.Tensor],
    config: PatchcoreConfig,
    *,
    image_size: int,
    sigma: float,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> MethodResult:
    """Memory bank of the train patches, greedy coreset, nearest-neighbour patch scores of ``test``:
    maps (N, S, S) and image scores (max patch score, or eq. 7 when ``config.reweight``)."""
    device = as_device(device)
    layers = config.layers
    t0 = time.perf_counter()
    n_train = check_maps(train, layers, "train")
    bank = torch.cat(
        [
            patch_features({l: train[l][s : s + batch_size].to(device) for l in layers}, config)[0]
            for s in range(0, n_train, batch_size)
        ]
    )
    t1 = clock(device)
    n_bank = len(bank)
    size = math.ceil(config.coreset * len(bank))
    if size < len(bank):
        bank = bank[greedy_coreset(bank, size, config.projection, config.seed, progress)]
    t2 = clock(device)
    n = check_maps(test, layers, "test")
    maps = torch.empty((n, image_size, image_size), dtype=torch.float32)
    scores = torch.empty(n, dtype=torch.float64)
    for s in tqdm(range(0, n, batch_size), desc="patchcore score", disable=not progress, leave=False):
        feats, grid = patch_features({l: test[l][s : s + batch_size].to(device) for l in layers}, config)
        d, nn = (t[:, 0] for t in nearest_neighbours(feats, bank))  # eq. 6: s = ‖m_test − m*‖
        b = len(feats) // (grid[0] * grid[1])
        d, nn = d.view(b, -1), nn.view(b, -1)
        img = reweight(feats.view(b, -1, feats.shape[1]), d, nn, bank, config.k) if config.reweight else d.amax(dim=1)
        scores[s : s + b] = img.double().cpu()
        maps[s : s + b] = to_image_maps(d.view(b, *grid), image_size, sigma).cpu()
    timings = {"bank_s": t1 - t0, "coreset_s": t2 - t1, "score_s": time.perf_counter() - t2}
    info = {
        "bank_patches": n_bank,
        "coreset_patches": int(len(bank)),
        "dims": config.dims,
    }
    return MethodResult(maps=maps, image_scores=scores.numpy(), info=info, timings=timings)
