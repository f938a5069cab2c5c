"""Study of the choices the paper leaves open (docs/diagnosis.md): why the reconstruction score trails a
nearest-neighbour score on the same cached features.

    python scripts/diagnose.py --features /work/runs/real/data/features/tire --experiment skips [--seeds 0 1 2]

prints one Markdown table per experiment. Every row trains FRAD on the cached train maps (L = {2, 3}) and scores
the cached test maps exactly as the pipeline does (§1.5: bilinear upsampling, Gaussian σ = 4, max of the map).
Columns: image AUROC, pixel AUROC, AU-PRO (mean ± sample std over seeds), and on the fused 32×32 grid the mean
cosine distance D_cos (eq. 8) at normal positions of good images, at defect positions (mask area ≥ 1/2) and their
ratio (≈ 1: the network reconstructs defects as well as normal features), and the per-image grid maximum of D_cos
averaged over the train images, the good test images and the defective test images; ``pasted/normal``: the copy
test (``pasted_ratio``) with the train features of ``--foreign``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from frad import metrics  # noqa: E402
from frad.cache import FeatureCache  # noqa: E402
from frad.features import cosine_distance, fuse_features  # noqa: E402
from frad.model import ModelConfig  # noqa: E402
from frad.patchcore import PatchcoreConfig, fit_and_score  # noqa: E402
from frad.postprocess import image_scores, to_image_maps  # noqa: E402
from frad.score import anomaly_maps  # noqa: E402
from frad.train import TrainConfig, channel_stats, train_model  # noqa: E402

LAYERS = (2, 3)
SIGMA = 4.0


@dataclasses.dataclass
class Data:
    train: dict[int, torch.Tensor]
    test: dict[int, torch.Tensor]
    masks: np.ndarray | None  # (N, S, S) bool; None: a category without masks (image metrics only)
    labels: np.ndarray
    image_size: int
    grid_defect: torch.Tensor | None  # (N, h, w) bool: defect area ≥ 1/2 of the grid cell
    grid_normal: torch.Tensor  # (N, h, w) bool: cells of good images
    foreign: dict[int, torch.Tensor] | None = None  # train maps of another category (the copy test)


def load(path: str, channels: int, foreign: str | None = None) -> Data:
    cache = FeatureCache(path)
    train, test = cache.layers("train", LAYERS), cache.layers("test", LAYERS)
    masks, labels = cache.test_masks(), cache.test_labels()
    h, w = fuse_features({l: m[:1] for l, m in test.items()}, channels).shape[-2:]
    defect = None
    if masks is not None:
        masks = masks.astype(bool)
        defect = F.adaptive_avg_pool2d(torch.from_numpy(masks).float()[:, None], (h, w))[:, 0] >= 0.5
    normal = torch.from_numpy(labels == 0)[:, None, None].expand(-1, h, w)
    other = FeatureCache(foreign).layers("train", LAYERS) if foreign else None
    return Data(train, test, masks, labels, cache.image_size, defect, normal.clone(), other)


@torch.inference_mode()
def pasted_ratio(model, data: Data, channels: int) -> float:
    """Copy test: the central (h/4)² block of each good test z replaced by the same block of another category's z;
    mean D_cos on the pasted block / mean D_cos of the unpasted good z. ≈ 1: foreign features are reconstructed
    (copied) as well as normal ones."""
    good = torch.from_numpy(data.labels == 0)
    z = fuse_features({l: m[good] for l, m in data.test.items()}, channels)
    n, _, h, w = z.shape
    f = fuse_features({l: m[:n] for l, m in data.foreign.items()}, channels)
    idx = torch.arange(n) % len(f)
    ys, xs = slice(h // 2 - h // 8, h // 2 + h // 8), slice(w // 2 - w // 8, w // 2 + w // 8)
    pasted = z.clone()
    pasted[:, :, ys, xs] = f[idx][:, :, ys, xs]
    d_clean = cosine_distance(model.normalize(z), model(model.normalize(z)))
    d_pasted = cosine_distance(model.normalize(pasted), model(model.normalize(pasted)))
    return float(d_pasted[:, ys, xs].mean() / d_clean.mean())


def fmt(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return f"{v[0]:.3f}"
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


@torch.inference_mode()
def grid_distances(model, maps: dict[int, torch.Tensor], channels: int) -> torch.Tensor:
    """D_cos per position of the fused grid (eq. 8) for every image of ``maps``: (N, h, w)."""
    out = []
    for s in range(0, len(next(iter(maps.values()))), 32):
        z = model.normalize(fuse_features({l: m[s : s + 32] for l, m in maps.items()}, channels))
        out.append(cosine_distance(z, model(z)))
    return torch.cat(out)


def evaluate(maps: torch.Tensor, d: torch.Tensor | None, data: Data, top_k: int = 1) -> dict[str, float]:
    m = maps.numpy()
    row = {"image": metrics.image_auroc(image_scores(maps, top_k), data.labels)}
    if data.masks is not None:
        row.update(pixel=metrics.pixel_auroc(m, data.masks), pro=metrics.au_pro(m, data.masks, 0.3))
    if d is not None:
        row["d_norm"] = float(d[data.grid_normal].mean())
        row["d_bad"] = float(d[torch.from_numpy(data.labels == 1)].mean())  # every position of defective images
        if data.grid_defect is not None:
            row["d_def"] = float(d[data.grid_defect].mean())
            row["ratio"] = row["d_def"] / row["d_norm"]
        row["mean_auroc"] = metrics.image_auroc(d.flatten(1).mean(1).numpy(), data.labels)
        peak = d.flatten(1).amax(1).numpy()  # unblurred grid maximum per image
        row["max_good"], row["max_bad"] = float(peak[data.labels == 0].mean()), float(peak[data.labels == 1].mean())
    return row


def base_model(args) -> dict:
    """The diagnosis's reference model: GFE after every encoder module, the reading these numbers were measured
    against (docs/diagnosis.md); the project default since the study is GFE at the bottleneck only."""
    return {"in_channels": args.channels, "widths": (args.width,) * 3, "gfe_modules": tuple(args.gfe_modules)}


def relu_maps(maps: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """The cached maps through a ReLU: non-negative like the post-ReLU ResNet stages of the paper's WRN50-2
    (EfficientNet-Lite0's stage outputs end in a linear projection: about half their energy is negative)."""
    return {l: m.clamp(min=0) for l, m in maps.items()}


def train_eval(data: Data, args, seed: int, on_model: Callable | None = None, **over) -> dict[str, float]:
    channels = over.pop("channels", args.channels)
    if over.pop("relu", False):
        data = dataclasses.replace(data, train=relu_maps(data.train), test=relu_maps(data.test), foreign=None)
    mc = {**base_model(args), "in_channels": channels, **over.pop("model", {})}
    tc = {"epochs": args.epochs, "seed": seed, "device": "cpu", **over.pop("train", {})}
    result = train_model(data.train, channels, ModelConfig(**mc), TrainConfig(**tc), progress=False)
    maps = anomaly_maps(result.model, data.test, channels, data.image_size, SIGMA)
    row = evaluate(maps, grid_distances(result.model, data.test, channels), data, over.pop("top_k", 1))
    row["loss"] = result.history[-1]["rec"]
    if data.foreign is not None and channels == args.channels:
        row["pasted"] = pasted_ratio(result.model, data, args.channels)
    row["max_train"] = float(grid_distances(result.model, data.train, channels).flatten(1).amax(1).mean())
    if on_model is not None:
        on_model(result.model, maps, row)
    return row


def table(title: str, rows: list[tuple[str, list[dict]]], cols: tuple[str, ...]) -> str:
    names = {
        "image": "image AUROC",
        "pixel": "pixel AUROC",
        "pro": "AU-PRO",
        "d_norm": "D_cos normal",
        "d_def": "D_cos defect",
        "d_bad": "D_cos defective images",
        "ratio": "defect/normal",
        "mean_auroc": "AUROC of mean D",
        "loss": "train L_rec",
        "max_train": "max D train",
        "pasted": "pasted/normal",
        "max_good": "max D good",
        "max_bad": "max D defective",
    }
    lines = [
        f"### {title}",
        "",
        "| setting | seeds | " + " | ".join(names.get(c, c.replace("_", " ")) for c in cols) + " |",
    ]
    lines.append("|---|---|" + "---|" * len(cols))
    for label, runs in rows:
        cells = [fmt([r[c] for r in runs]) if all(c in r for r in runs) else "—" for c in cols]
        lines.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


FULL = (
    "image",
    "pixel",
    "pro",
    "d_norm",
    "d_def",
    "d_bad",
    "ratio",
    "mean_auroc",
    "loss",
    "max_train",
    "max_good",
    "max_bad",
    "pasted",
)

# experiment name → [(row label, overrides)]; overrides: model=..., train=..., top_k=...
VARIANTS: dict[str, list[tuple[str, dict]]] = {
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


def run_variants(name: str, data: Data, args) -> str:
    rows = []
    variants = VARIANTS[name]
    for label, over in [variants[i] for i in args.rows] if args.rows else variants:
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
    from frad.data import index_category
    from pipeline.evaluate import thumbnail

    if not args.dataset:
        raise SystemExit("experiment maxima needs --dataset <root>/<category> (the images of the cache)")
    root = Path(args.dataset)
    index = index_category(root.parent, root.name)
    size, crop = data.image_size, FeatureCache(args.features).crop
    images = np.stack([thumbnail(s.path, size, crop) for s in index.test])  # as the backbone saw them
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
        maps = anomaly_maps(model, {l: data.test[l] for l in payload["layers"]}, payload["channels"], size, SIGMA)
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--features", required=True, help="feature cache directory (frad.cache.FeatureCache)")
    p.add_argument("--experiment", required=True, choices=sorted([*VARIANTS, *EXPERIMENTS]))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--every", type=int, default=5, help="epochs between evaluations (experiment epochs)")
    p.add_argument("--rows", type=int, nargs="*", help="run only these rows (0-based) of a variants experiment")
    p.add_argument("--with-nn", action="store_true", help="experiments score, nn: also the full-bank NN (slow)")
    p.add_argument("--foreign", help="feature cache of another category for the copy test (default: ../bottle)")
    p.add_argument("--channels", type=int, default=128, help="C")
    p.add_argument("--width", type=int, default=64, help="encoder module widths")
    p.add_argument("--gfe-modules", type=int, nargs="+", default=[1, 2, 3], help="GFE placement of the reference model")
    p.add_argument("--dataset", help="experiment maxima: <root>/<category>, the images the cache was computed on")
    p.add_argument("--figure", help="experiment maxima: write the maps figure (PNG) here")
    p.add_argument("--model", help="experiment maxima: score this trained model (a pipeline checkpoint) instead")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    foreign = args.foreign or Path(args.features).parent / "bottle"
    use = Path(foreign).resolve() != Path(args.features).resolve() and (Path(foreign) / "meta.json").is_file()
    data = load(args.features, args.channels, str(foreign) if use else None)
    print(
        f"<!-- {Path(args.features).name}: C={args.channels}, widths {args.width}, {args.epochs} epochs, "
        f"seeds {args.seeds} -->"
    )
    if args.experiment in VARIANTS:
        print(run_variants(args.experiment, data, args))
    else:
        print(EXPERIMENTS[args.experiment](data, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
