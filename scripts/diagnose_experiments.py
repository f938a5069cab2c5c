"""The experiments of ``scripts/diagnose.py`` (docs/diagnosis.md): ``ROWS`` (rows of model/training
overrides, each trained and scored by ``diagnose_harness.train_eval``) and ``EXPERIMENTS`` (epochs, score, nn,
maxima: their own procedure on the same cached features). Each returns its Markdown table(s).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diagnose_harness import (
    FULL,
    LAYERS,
    SIGMA,
    Data,
    base_model,
    evaluate,
    grid_distances,
    table,
    train_eval,
)

from frad.cache import FeatureCache
from frad.config import ModelConfig, TrainConfig
from frad.evaluation import metrics
from frad.evaluation.postprocess import image_scores, to_image_maps
from frad.features import cosine_distance, fuse_features
from frad.patchcore.method import PatchcoreConfig, fit_and_score
from frad.score import anomaly_maps
from frad.train import channel_stats, train_model

# experiment name → [(row label, overrides)]; overrides: model=..., train=..., top_k=...
ROWS: dict[str, list[tuple[str, dict]]] = {
    "baseline": [("FRAD (reference)", {})],
    "modules": [
        ("full (GFE + shuffle)", {}),
        ("no GFE", {"model": {"gfe": False}}),
        ("GFE after module 3 only", {"model": {"gfe_modules": (3,)}}),
        ("no shuffle loss", {"train": {"ssl": False}}),
        ("neither", {"model": {"gfe": False}, "train": {"ssl": False}}),
    ],
    "skips": [
        ("skips 1,2,3 (paper)", {}),
        ("skips 2,3", {"model": {"skips": (2, 3)}}),
        ("skip 3", {"model": {"skips": (3,)}}),
        ("no skips", {"model": {"skips": ()}}),
        ("no skips, no GFE", {"model": {"skips": (), "gfe": False}}),
    ],
    "capacity": [
        ("widths 32", {"model": {"widths": (32, 32, 32)}}),
        ("widths 64", {}),
        ("widths 128", {"model": {"widths": (128, 128, 128)}}),
        ("widths 256 (the default of params.yaml)", {"model": {"widths": (256, 256, 256)}}),
    ],
    "strides": [
        ("strides 1,2,2 (32² → 8²)", {}),
        ("strides 2,2,2 (32² → 4²)", {"model": {"strides": (2, 2, 2)}}),
        ("strides 2,2,2, no skips", {"model": {"strides": (2, 2, 2), "skips": ()}}),
    ],
    "norm": [
        ("z as is (paper)", {}),
        ("z standardised per channel", {"model": {"input_norm": "channel"}}),
    ],
    "channels": [  # eq. 2–3 with Lite0's layers 2/3 of 40/112 channels: C above them duplicates channels
        ("C 128 (both layers pooled up)", {}),
        ("C 64", {"channels": 64}),
        ("C 40 (= layer 2's width)", {"channels": 40}),
    ],
    "signed": [
        ("cached maps as they are (Lite0: signed)", {}),
        ("ReLU of the cached maps (non-negative, as WRN50-2's stages)", {"relu": True}),
    ],
}


def run_rows(name: str, data: Data, args) -> str:
    rows = []
    rows_of = ROWS[name]
    for label, over in [rows_of[i] for i in args.rows] if args.rows else rows_of:
        runs = []
        for seed in args.seeds:
            t0 = time.perf_counter()
            runs.append(
                train_eval(data, args, seed, **{k: dict(v) if isinstance(v, dict) else v for k, v in over.items()})
            )
            print(
                f"  {label} seed {seed}: image {runs[-1]['image']:.3f} ({time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
            )
        rows.append((label, runs))
    return table(name, rows, FULL)


def run_epochs(data: Data, args) -> str:
    """One training (seed args.seeds[0]); every ``--every`` epochs the test set is scored."""
    rows = []

    def on_epoch(epoch: int, record: dict, model) -> None:
        if epoch % args.every and epoch != args.epochs:
            return
        maps = anomaly_maps(model, data.test, args.channels, data.image_size, SIGMA)
        row = evaluate(maps, grid_distances(model, data.test, args.channels), data)
        row["loss"] = record["rec"]
        rows.append((f"epoch {epoch}", [row]))

    train_model(
        data.train,
        args.channels,
        ModelConfig(**base_model(args)),
        TrainConfig(epochs=args.epochs, seed=args.seeds[0], device="cpu"),
        progress=False,
        on_epoch=on_epoch,
    )
    return table("D_cos on normal vs defect positions per epoch", rows, FULL)


def run_score(data: Data, args) -> str:
    """Image score max vs top-k mean on the same maps (FRAD per seed; the NN reference once)."""
    ks = (1, 10, 100, 1000, 5000)
    per_k: dict[int, list[dict]] = {k: [] for k in ks}

    def collect(model, maps, row):
        for k in ks:
            per_k[k].append({"image": metrics.image_auroc(image_scores(maps, k), data.labels)})

    full = [train_eval(data, args, seed, on_model=collect) for seed in args.seeds]
    rows = [(f"FRAD, {'max' if k == 1 else f'top-{k} mean'}", per_k[k]) for k in ks]
    if args.with_nn:
        nn = nn_reference(data, args)
        for k in ks:
            row = {"image": metrics.image_auroc(image_scores(nn.maps, k), data.labels)}
            rows.append((f"NN, {'max' if k == 1 else f'top-{k} mean'}", [row]))
    head = table("FRAD (reference)", [("FRAD (reference)", full)], FULL)
    return head + "\n\n" + table("image score: max of the blurred map vs top-k mean", rows, ("image",))


def nn_reference(data: Data, args):
    cfg = PatchcoreConfig(coreset=1.0, dims=args.channels, layers=LAYERS)
    return fit_and_score(data.train, data.test, cfg, image_size=data.image_size, sigma=SIGMA)


def run_nn(data: Data, args) -> str:
    """Training-free references on the same features: 3×3-mean nearest neighbour (same-harness PatchCore, full
    bank) and D_cos of each fused z to the mean train z (what a network that outputs the mean would score)."""
    rows = []
    if args.with_nn:
        rows.append(
            ("NN, 3×3 mean, full bank (PatchCore harness)", [evaluate(nn_reference(data, args).maps, None, data)])
        )
    mean, _ = channel_stats(data.train, args.channels)
    with torch.inference_mode():
        z = fuse_features(data.test, args.channels)
        d = cosine_distance(z, mean.view(1, -1, 1, 1).expand_as(z))
    rows.append(("D_cos(z, mean train z)", [evaluate(to_image_maps(d, data.image_size, SIGMA), d, data)]))
    for name in ("cosine", "euclidean"):
        d = nn_on_z(data, args.channels, name)
        rows.append(
            (
                f"NN on the fused z (eq. 3), {name}, bank of {NN_BANK} train positions",
                [evaluate(to_image_maps(d, data.image_size, SIGMA), d, data)],
            )
        )
    return table("training-free references", rows, ("image", "pixel", "pro", "d_norm", "d_def", "d_bad", "ratio"))


NN_BANK = 16384  # random train positions of the fused grid (of 320·32² on screw): the NN's cost stays minutes


@torch.inference_mode()
def nn_on_z(data: Data, channels: int, metric: str) -> torch.Tensor:
    """Distance of every test position of the fused z (what FRAD reconstructs) to its nearest neighbour among
    ``NN_BANK`` random train positions: (N, h, w). ``cosine``: D_cos (eq. 8); ``euclidean``: L2."""
    bank = fuse_features(data.train, channels).permute(0, 2, 3, 1).reshape(-1, channels)
    bank = bank[torch.randperm(len(bank), generator=torch.Generator().manual_seed(0))[:NN_BANK]]
    z = fuse_features(data.test, channels)
    n, _, h, w = z.shape
    q = z.permute(0, 2, 3, 1).reshape(-1, channels)
    if metric == "cosine":
        bank, q = F.normalize(bank, dim=1), F.normalize(q, dim=1)
    out = []
    for part in q.split(8192):
        d = 1 - part @ bank.T if metric == "cosine" else torch.cdist(part, bank)
        out.append(d.amin(1))
    return torch.cat(out).reshape(n, h, w)


BORDER = 16  # px of the S×S image counted as border (two cells of the 32×32 grid at S = 256)


def maxima_places(images: np.ndarray, maps: np.ndarray) -> list[str]:
    """Where each map has its maximum: ``border`` (within BORDER px of the image edge), ``object`` (on or within
    4 px of the Otsu foreground of the grey image, the side of the threshold holding fewer pixels) or
    ``background``."""
    from scipy.ndimage import binary_dilation
    from skimage.filters import threshold_otsu

    places = []
    for image, m in zip(images, maps):
        grey = image.mean(axis=2)
        fg = grey > threshold_otsu(grey)
        fg = fg if fg.mean() < 0.5 else ~fg
        fg = binary_dilation(fg, iterations=4)
        y, x = np.unravel_index(int(m.argmax()), m.shape)
        size = m.shape[0]
        edge = min(y, x, size - 1 - y, size - 1 - x) < BORDER
        places.append("border" if edge else "object" if fg[y, x] else "background")
    return places


def run_maxima(data: Data, args) -> str:
    """Where the image score (max of A_pix, §1.5) comes from, per seed: counts of the maximum's place in good and
    defective test images; with ``--figure``, the maps of a few good and defective images with the maximum marked."""
    from frad.datasets.layout import index_category, read_image

    if not args.dataset:
        raise SystemExit("experiment maxima needs --dataset <root>/<category> (the images of the cache)")
    root = Path(args.dataset)
    index = index_category(root.parent, root.name)
    resize = FeatureCache(args.features).resize
    images = np.stack([resize.thumbnail(read_image(s.path)) for s in index.test])  # as the backbone saw them
    rows, kept = [], {}

    def collect(model, maps, row):
        m = maps.numpy()
        places = maxima_places(images, m)
        for label, name in ((0, "good"), (1, "defective")):
            sel = [p for p, y in zip(places, data.labels) if y == label]
            for place in ("border", "object", "background"):
                row[f"{name}_{place}"] = sel.count(place) / len(sel)
        kept.setdefault("maps", m)

    if args.model:  # a model the pipeline trained (data/models/<c>/full/seed<s>.pt): no training here
        from frad.train import load_model

        model, payload = load_model(args.model)
        maps = anomaly_maps(
            model, {l: data.test[l] for l in payload["layers"]}, payload["channels"], resize.size, SIGMA
        )
        runs = [evaluate(maps, None, data)]
        collect(model, maps, runs[0])
    else:
        runs = [train_eval(data, args, seed, on_model=collect) for seed in args.seeds]
    cols = tuple(f"{n}_{p}" for n in ("good", "defective") for p in ("border", "object", "background"))
    rows.append(("FRAD (reference)", runs))
    if args.figure:
        save_maxima_figure(images, kept["maps"], data.labels, Path(args.figure))
    return table("place of the image score's maximum (fraction of images)", rows, ("image", *cols))


def save_maxima_figure(images: np.ndarray, maps: np.ndarray, labels: np.ndarray, path: Path, n: int = 4) -> None:
    """Rows of good then defective test images (the n lowest- and highest-scored of each): image + map, max ×."""
    from matplotlib.figure import Figure

    score = maps.reshape(len(maps), -1).max(1)
    picks = []
    for label in (0, 1):
        idx = np.flatnonzero(labels == label)
        order = idx[np.argsort(score[idx])]
        picks += [(i, label) for i in (*order[: n // 2], *order[-(n - n // 2) :])]
    lo, hi = float(maps.min()), float(maps.max())
    fig = Figure(figsize=(2.0 * len(picks) / 2, 4.4), dpi=90)
    axes = fig.subplots(2, len(picks) // 2, squeeze=False)
    for k, (i, label) in enumerate(picks):
        ax = axes[label][k % (len(picks) // 2)]
        ax.imshow(images[i])
        ax.imshow(maps[i], cmap="jet", alpha=0.5, vmin=lo, vmax=hi)
        y, x = np.unravel_index(int(maps[i].argmax()), maps[i].shape)
        ax.plot([x], [y], "wx", markersize=8, mew=2)
        ax.set_title(f"{'good' if label == 0 else 'defective'} {score[i]:.3f}", fontsize=7)
        ax.set_axis_off()
    fig.suptitle(f"A_pix (one scale {lo:.3g}–{hi:.3g}), × = image score's place; lowest and highest scored", fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})


EXPERIMENTS = {"epochs": run_epochs, "score": run_score, "nn": run_nn, "maxima": run_maxima}
