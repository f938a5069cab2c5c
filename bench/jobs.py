"""The measured jobs of ``python -m bench``, each run in its own process (see ``bench.run``): the matmul
ceiling, one backbone variant, the fused-feature accuracy of every variant, training, scoring, the same-harness
baselines (PaDiM, PatchCore, RD) and the metrics. Each returns a dict of plain numbers. Warm-up before every
timing; ``torch.cuda.synchronize`` around it and ``cudnn.benchmark`` on CUDA."""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .measure import PeakMemory, memory_now, native_low_precision, sync, timed
from .settings import NAIVE, Settings, Variant


def _start(settings: Settings, malloc: bool = False) -> torch.device:
    """What every job does first in its process: silence the expected warnings (random weights, compile chatter),
    tune malloc when asked (``frad.runtime.tune_malloc``, as the pipeline stages run), set the thread count,
    and turn on cudnn.benchmark on CUDA. Returns the device."""
    warnings.simplefilter("ignore")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if malloc:
        from frad.runtime import tune_malloc

        if not tune_malloc():
            raise RuntimeError("frad.runtime.tune_malloc is not available here (not glibc, or FRAD_MALLOC_TUNE=0)")
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    dev = torch.device(settings.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return dev


def _images(n: int, size: int, mean: Sequence[float], std: Sequence[float], split: str = "train") -> torch.Tensor:
    """``n`` normalised synthetic MVTec-like renders (objects and textures) of ``size``², CPU float32.
    At most 8 distinct images are rendered; the rest repeat them (content does not change speed)."""
    from frad.synthetic import render_sample

    cats = ("bottle", "tile", "screw", "carpet")
    distinct = [render_sample(cats[i % len(cats)], index=i, split=split, size=size).image for i in range(min(n, 8))]
    x = torch.from_numpy(np.stack([distinct[i % len(distinct)] for i in range(n)]))
    x = x.permute(0, 3, 1, 2).float().div_(255)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous()


def _build_backbone(
    name: str, weights: str, layers: Sequence[int], variant: Variant, device: torch.device, seed: int
) -> tuple[Any, Callable[[torch.Tensor], dict[int, torch.Tensor]]]:
    """(Backbone module, callable running it): same weights for every variant (seeded when random)."""
    from frad.backbone import load_backbone

    torch.manual_seed(seed)
    backbone = load_backbone(
        name, weights, layers, channels_last=variant.channels_last, precision=variant.precision
    ).to(device)
    return backbone, _compiled(backbone, variant, device)


def _as_variant(backbone: Any, variant: Variant) -> Any:
    """A copy of ``backbone`` (same weights) run as ``variant`` (eager; compile separately)."""
    import copy

    out = copy.deepcopy(backbone)
    out.precision, out.channels_last = variant.precision, variant.channels_last
    return out.to(memory_format=torch.channels_last if variant.channels_last else torch.contiguous_format)


def _compiled(
    backbone: Any, variant: Variant, device: torch.device
) -> Callable[[torch.Tensor], dict[int, torch.Tensor]]:
    if not variant.compile:
        return backbone
    if device.type == "cpu":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # frozen weights: fold BN, prepack conv weights (oneDNN)
    return torch.compile(backbone)


def _fused_cosine(ref: dict[int, torch.Tensor], out: dict[int, torch.Tensor], channels: int) -> tuple[float, float]:
    """Mean and min over positions of cos(z_variant, z_fp32) of the fused features (eq. 1–3)."""
    from frad.features import fuse_features

    z0 = fuse_features({k: v.float().cpu() for k, v in ref.items()}, channels).double()
    z1 = fuse_features({k: v.float().cpu() for k, v in out.items()}, channels).double()
    cos = F.cosine_similarity(z1, z0, dim=1)
    return float(cos.mean()), float(cos.min())


def _backbone_flops(backbone: Any, size: int) -> float:
    """FLOPs (2 per multiply-add) of one image through the stages up to the deepest layer
    (counted on a weightless meta copy)."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    stages = copy.deepcopy(backbone.stages).to("meta")
    x = torch.empty(1, 3, size, size, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        for stage in stages:
            x = stage(x)
    return float(counter.get_total_flops())


def _recon_flops(channels: int, widths: tuple[int, int, int], side: int, train: bool, gfe_grid: int = 4) -> float:
    """FLOPs per sample through the reconstruction net (forward, or forward+backward when ``train``)."""
    from torch.utils.flop_counter import FlopCounterMode

    from frad.features import cosine_distance
    from frad.model import ModelConfig, ReconstructionNet

    with torch.device("meta"):
        model = ReconstructionNet(ModelConfig(in_channels=channels, widths=widths, gfe_grid=gfe_grid)).train(train)
        z = torch.empty(2, channels, side, side)
        with FlopCounterMode(display=False) as counter:
            if train:
                cosine_distance(z, model(z)).mean().backward()
            else:
                with torch.no_grad():
                    model(z)
    return float(counter.get_total_flops()) / 2


# --------------------------------------------------------------------------- jobs (one process each)


def job_backbone(settings: Settings, variant: Variant) -> dict[str, Any]:
    """Throughput of one backbone variant, plus its fused-feature cosine vs fp32 on the same net."""
    dev = _start(settings, variant.malloc)
    start = memory_now(dev)
    backbone, run = _build_backbone(settings.backbone, settings.weights, settings.layers, variant, dev, settings.seed)
    native = native_low_precision(dev, variant.precision)
    batch, reps = settings.infer_batch_size, settings.reps
    note = []
    if not native:
        # emulated bf16/fp16 on this CPU is several times slower: time a smaller batch, once
        batch, reps = min(batch, 1 if settings.quick else 4), 1
        note.append(
            f"{variant.precision} emulated (no native {variant.precision} on this CPU): timed 1 batch of {batch}"
        )
    x = _images(batch, settings.image_size, backbone.mean, backbone.std).to(dev)
    with torch.inference_mode():
        t0 = time.perf_counter()
        run(x[:1] if not native else x)  # warm-up (compiles when variant.compile)
        sync(dev)
        first_s = time.perf_counter() - t0
        if variant.compile:
            run(x)  # a second warm-up: compiled graphs may specialise on the batch size
        with PeakMemory(dev, start) as mem:
            t = timed(lambda: run(x), reps, dev)
    last = t.out
    out: dict[str, Any] = {
        "variant": asdict(variant),
        "label": variant.label,
        "native": native,
        "batch": batch,
        "reps": reps,
        "walls": t.walls,
        "cpus": t.cpus,
        "s_per_batch": t.wall,
        "cpu_s_per_batch": t.cpu,
        "img_s": batch / t.wall,
        "first_call_s": first_s,
        **mem.record(),
    }
    # fused-feature cosine vs naive fp32 on this very net: the accuracy number when its weights are real,
    # for information only when they are random
    if variant != NAIVE:
        random_weights = settings.weights == "random"
        if variant.compile:  # test renders in the timed batch size: another size would compile again
            xa = _images(batch, settings.image_size, backbone.mean, backbone.std, split="test").to(dev)
        elif random_weights and not native:
            xa = None  # emulated precision: reuse the timed batch rather than prepare kernels for a new size
        else:
            n_acc = min(settings.accuracy_images, 2) if random_weights else settings.accuracy_images
            xa = _images(n_acc, settings.image_size, backbone.mean, backbone.std, split="test").to(dev)
        if xa is None:
            xa, got = x, last
        else:
            with torch.inference_mode():
                got = run(xa)
        ref_bb = _as_variant(backbone, NAIVE)
        del backbone, run
        with torch.inference_mode():
            ref = ref_bb(xa)
        out["cos_own"] = _fused_cosine(ref, got, settings.channels)
        out["cos_own_images"] = len(xa)
    else:
        out["cos_own"] = (1.0, 1.0)
        out["cos_own_images"] = 0
        out["gflop_per_img"] = _backbone_flops(backbone, settings.image_size) / 1e9
    out["note"] = note
    return out


def job_accuracy(settings: Settings, name: str, weights: str, variants: Sequence[Variant]) -> dict[str, Any]:
    """Fused-feature cosine of every variant vs naive fp32 on ``name`` with ``weights``."""
    dev = _start(settings)
    ref_bb, _ = _build_backbone(name, weights, settings.layers, NAIVE, dev, settings.seed)
    x = _images(settings.accuracy_images, settings.image_size, ref_bb.mean, ref_bb.std, split="test").to(dev)
    with torch.inference_mode():
        ref = ref_bb(x)
    out: dict[str, Any] = {"net": name, "weights": weights, "images": settings.accuracy_images, "cos": {}}
    for v in variants:
        run = _compiled(_as_variant(ref_bb, v), v, dev)
        with torch.inference_mode():
            out["cos"][v.key] = _fused_cosine(ref, run(x), settings.channels)
    return out


def _random_maps(
    settings: Settings, n: int, generator: torch.Generator, layers: Sequence[int] | None = None
) -> dict[int, torch.Tensor]:
    """Per-layer maps of the cached shapes and dtype (fp16) for ``layers`` (default: the layer set L)."""
    from frad.backbone import BACKBONES

    spec = BACKBONES[settings.backbone]
    return {
        l: torch.randn(
            n,
            spec.channels[l],
            settings.image_size // spec.strides[l],
            settings.image_size // spec.strides[l],
            generator=generator,
        ).half()
        for l in (settings.layers if layers is None else layers)
    }


def grids(side: int, widths: Sequence[int] = (256, 256, 256)) -> tuple[int, int]:
    """(GFE K, shuffle K): the paper's K = 4 (§2.3) when the fused map allows it (GFE needs the side
    to be a multiple of 4·K and every width a multiple of K², the shuffle grid a divisor of the side),
    else the largest of 2, 1 that fits (only tiny --quick maps need that)."""
    gfe = next((k for k in (4, 2) if side % (4 * k) == 0 and all(w % (k * k) == 0 for w in widths)), 1)
    ssl = next(k for k in (4, 2, 1) if side % k == 0)
    return gfe, ssl


def job_train(settings: Settings, malloc: bool = False) -> dict[str, Any]:
    """s/epoch and samples/s of the full model (GFE + shuffle loss) on in-memory maps
    (``malloc``: with frad.runtime.tune_malloc, as the pipeline stages run)."""
    from frad.model import ModelConfig
    from frad.train import TrainConfig, train_model

    dev = _start(settings, malloc)
    start = memory_now(dev)
    gen = torch.Generator().manual_seed(settings.seed)
    n, bs = settings.train_images, settings.batch_size
    maps = _random_maps(settings, n, gen)
    side = settings.image_size // (2 ** (min(settings.layers) + 1))
    gfe_grid, ssl_grid = grids(side, settings.widths)
    model_config = ModelConfig(in_channels=settings.channels, widths=settings.widths, gfe_grid=gfe_grid)
    device = settings.device
    # warm-up: one step on one batch
    warm = {l: m[: min(bs, n)] for l, m in maps.items()}
    train_model(
        warm,
        settings.channels,
        model_config,
        TrainConfig(epochs=1, batch_size=bs, device=device, ssl_grid=ssl_grid),
        progress=False,
    )
    steps_per_epoch = math.ceil(n / bs)
    if settings.train_steps and settings.train_steps < steps_per_epoch:
        n_timed, epochs = settings.train_steps * bs, 1
        subset = {l: m[:n_timed] for l, m in maps.items()}
    else:
        n_timed, epochs = n, settings.epochs
        subset = maps
    marks: list[float] = []
    config = TrainConfig(epochs=epochs, batch_size=bs, device=device, seed=settings.seed, ssl_grid=ssl_grid)
    with PeakMemory(dev, start) as mem:
        t0 = time.perf_counter()
        t = timed(
            lambda: train_model(
                subset,
                settings.channels,
                model_config,
                config,
                progress=False,
                on_epoch=lambda e, r, m: marks.append(time.perf_counter()),
            ),
            1,
            dev,
        )
    result, wall, cpu = t.out, t.wall, t.cpu
    epoch_walls = [b - a for a, b in zip([t0, *marks[:-1]], marks)]
    samples_s = n_timed * epochs / wall
    extrapolated = n_timed < n
    return {
        "gfe_grid": gfe_grid,
        "ssl_grid": ssl_grid,
        "map_side": side,
        "samples_s": samples_s,
        "s_per_epoch": n / samples_s if extrapolated else sum(epoch_walls) / len(epoch_walls),
        "epoch_walls": epoch_walls,
        "wall": wall,
        "cpu": cpu,
        "timed_samples": n_timed,
        "epochs": epochs,
        "steps_timed": math.ceil(n_timed / bs) * epochs,
        "steps_per_epoch": steps_per_epoch,
        "extrapolated": extrapolated,
        "final_loss": result.history[-1]["loss"],
        # shuffle loss: z and z' both go through the net, so 2 samples of net work per train sample
        "gflop_per_sample": 2
        * _recon_flops(settings.channels, settings.widths, side, train=True, gfe_grid=gfe_grid)
        / 1e9,
        **mem.record(),
    }


def job_score(settings: Settings, variant: Variant) -> dict[str, Any]:
    """img/s of backbone + reconstruction + upsampling + blur, batched, images already decoded
    (on the CPU with frad.runtime.tune_malloc, as the pipeline stages run)."""
    from frad.model import ModelConfig, ReconstructionNet
    from frad.score import anomaly_maps

    dev = _start(settings, malloc=settings.device == "cpu")
    start = memory_now(dev)
    backbone, run = _build_backbone(settings.backbone, settings.weights, settings.layers, variant, dev, settings.seed)
    torch.manual_seed(settings.seed)
    side = settings.image_size // (2 ** (min(settings.layers) + 1))
    gfe_grid = grids(side, settings.widths)[0]
    model = (
        ReconstructionNet(ModelConfig(in_channels=settings.channels, widths=settings.widths, gfe_grid=gfe_grid))
        .to(dev)
        .eval()
    )
    bs = settings.infer_batch_size
    images = _images(settings.test_images, settings.image_size, backbone.mean, backbone.std, split="test")

    def score(x: torch.Tensor) -> torch.Tensor:
        outs = []
        for start in range(0, len(x), bs):
            with torch.inference_mode():
                feats = run(x[start : start + bs].to(dev, non_blocking=True))
            outs.append(
                anomaly_maps(model, feats, settings.channels, settings.image_size, settings.sigma, batch_size=bs)
            )
        return torch.cat(outs)

    score(images[:bs])  # warm-up
    if variant.compile and len(images) % bs:
        score(images[-(len(images) % bs) :])  # the last, smaller batch compiles once more
    with PeakMemory(dev, start) as mem:
        t = timed(lambda: score(images), 1, dev)
    maps = t.out
    return {
        "variant": asdict(variant),
        "label": variant.label,
        "images": len(images),
        "wall": t.wall,
        "cpu": t.cpu,
        "img_s": len(images) / t.wall,
        "maps_shape": list(maps.shape),
        "finite": bool(torch.isfinite(maps).all()),
        "gflop_per_img": (
            _backbone_flops(backbone, settings.image_size)
            + _recon_flops(settings.channels, settings.widths, side, train=False, gfe_grid=gfe_grid)
        )
        / 1e9,
        **mem.record(),
    }


BASELINES = ("padim", "patchcore", "rd")  # the same-harness comparison methods (pipeline.padim|patchcore|rd)
# PaDiM §4.1: d = 550 of WRN50-2's 1792 channels, 100 of ResNet-18's 448; Lite0 (176) takes the small-backbone value
PADIM_D = {"wide_resnet50_2": 550, "tf_efficientnet_lite0": 100}


def baseline_config(settings: Settings, method: str, epochs: int = 1) -> Any:
    """The config of ``method`` as the pipeline runs it: the method's defaults (PatchCore coreset 0.1, dims 1024,
    projection 128; RD lr 0.005, Adam (0.5, 0.999)), PaDiM's d for the backbone, RD with the training batch and
    ``epochs``; --quick: smoke sizes."""
    from frad.padim import PadimConfig
    from frad.patchcore import PatchcoreConfig
    from frad.rd import RDConfig

    seed = settings.seed
    if method == "padim":
        return PadimConfig(d=16 if settings.quick else PADIM_D[settings.backbone], seed=seed)
    if method == "patchcore":
        quick = dict(coreset=0.5, dims=32, projection=8, k=3) if settings.quick else {}
        return PatchcoreConfig(seed=seed, **quick)
    if method == "rd":
        return RDConfig(epochs=epochs, batch_size=settings.batch_size, seed=seed, device=settings.device)
    raise ValueError(f"unknown baseline {method!r}; choose one of {', '.join(BASELINES)}")


def job_baseline(settings: Settings, method: str) -> dict[str, Any]:
    """Fit and scoring throughput of one baseline (``frad.<method>.fit_and_score``) on in-memory random per-layer
    maps of one category (``train_images`` train, ``baseline_test_images`` test), after a warm-up on one batch;
    on the CPU with frad.runtime.tune_malloc, as the pipeline stages run. RD on the CPU with ``train_steps``:
    trained on that many batches for one epoch and the epoch extrapolated, as the training rows do."""
    import importlib

    dev = _start(settings, malloc=settings.device == "cpu")
    start = memory_now(dev)
    fit_and_score = importlib.import_module(f"frad.{method}").fit_and_score
    layers = baseline_config(settings, method).layers
    gen = torch.Generator().manual_seed(settings.seed)
    n, n_test, bs = settings.train_images, settings.baseline_test_images, settings.batch_size
    train, test = _random_maps(settings, n, gen, layers), _random_maps(settings, n_test, gen, layers)
    steps_per_epoch = math.ceil(n / bs)
    extrapolated = method == "rd" and 0 < settings.train_steps < steps_per_epoch
    n_fit = settings.train_steps * bs if extrapolated else n
    epochs = 1 if extrapolated or method != "rd" else settings.rd_epochs
    config = baseline_config(settings, method, epochs)

    def run(k_train: int, k_test: int, cfg: Any) -> Any:
        return fit_and_score(
            {l: m[:k_train] for l, m in train.items()},
            {l: m[:k_test] for l, m in test.items()},
            cfg,
            image_size=settings.image_size,
            sigma=settings.sigma,
            batch_size=settings.infer_batch_size,
            device=settings.device,
        )

    run(max(2, min(bs, n)), min(settings.infer_batch_size, n_test), baseline_config(settings, method, 1))  # warm-up
    with PeakMemory(dev, start) as mem:
        t = timed(lambda: run(n_fit, n_test, config), 1, dev)
    info = {k: v for k, v in t.out.info.items() if k != "history"}
    fit_s = info["fit_s"] if "fit_s" in info else info["bank_s"] + info["coreset_s"]
    out = {
        "method": method,
        "config": asdict(config),
        "train_images": n,
        "fit_images": n_fit,
        "test_images": n_test,
        "wall": t.wall,
        "cpu": t.cpu,
        "fit_s": fit_s,
        "score_s": info["score_s"],
        "img_s": n_test / info["score_s"],
        "finite": bool(torch.isfinite(t.out.maps).all()),
        "info": info,
        **mem.record(),
    }
    if method == "rd":
        samples_s = n_fit * epochs / info["fit_s"]
        out.update(
            samples_s=samples_s,
            s_per_epoch=n / samples_s,
            epochs=epochs,
            extrapolated=extrapolated,
            run_epochs=type(config)().epochs,  # the pipeline's default run (baselines.rd.epochs)
        )
    return out


def job_coreset(settings: Settings) -> dict[str, Any]:
    """PatchCore's greedy coreset (``frad.patchcore.greedy_coreset``, the pipeline's default 0.1, dims 1024,
    projection 128) on the memory bank of ``train_images`` distinct synthetic bottle renders through
    EfficientNet-Lite0 with its real ImageNet weights (the row needs real features: how many rows the triangle
    inequality rules out depends on their structure), against the dense loop (every row each step: timed on a few
    hundred steps and extrapolated) and the memory-bandwidth floor of that dense loop (each step reads the whole
    projected bank once; bandwidth = best read of it)."""
    from frad.backbone import load_backbone
    from frad.patchcore import PatchcoreConfig, _greedy_dense, greedy_coreset, patch_features
    from frad.synthetic import render_sample

    dev = _start(replace(settings, device="cpu"))
    start = memory_now(dev)
    cfg = PatchcoreConfig(**(dict(dims=32, projection=8) if settings.quick else {}))
    backbone = load_backbone("tf_efficientnet_lite0", "imagenet", cfg.layers, channels_last=True)
    m, sd = torch.tensor(backbone.mean).view(1, 3, 1, 1), torch.tensor(backbone.std).view(1, 3, 1, 1)
    size, bank = settings.image_size, []
    with torch.inference_mode():
        for start in range(0, settings.train_images, 16):
            idx = range(start, min(start + 16, settings.train_images))
            img = np.stack([render_sample("bottle", index=i, split="train", size=size).image for i in idx])
            x = (torch.from_numpy(img).permute(0, 3, 1, 2).float().div_(255) - m) / sd
            bank.append(patch_features({k: v.half() for k, v in backbone(x).items()}, cfg)[0])  # cached as fp16
    bank = torch.cat(bank)
    n = math.ceil(cfg.coreset * len(bank))
    with PeakMemory(dev, start) as mem:
        t = timed(lambda: greedy_coreset(bank, n, cfg.projection, settings.seed), 1, dev)
    gen = torch.Generator().manual_seed(settings.seed)
    z = bank @ (torch.randn(bank.shape[1], cfg.projection, generator=gen) / math.sqrt(cfg.projection))
    first = int(torch.randint(len(z), (1,), generator=gen))
    steps = min(n, 20 if settings.quick else 300)
    dense = timed(lambda: _greedy_dense(z, steps, first, False), 1, dev)
    same = bool(torch.equal(dense.out, t.out[:steps]))  # the first steps, checked here; all of them in the tests
    read = timed(lambda: z.sum(), 10, dev)
    return {
        "bank_rows": len(bank),
        "dims": cfg.dims,
        "projection": cfg.projection,
        "coreset": cfg.coreset,
        "n": n,
        "wall": t.wall,
        "dense_step_s": dense.wall / max(steps - 1, 1),
        "dense_s": dense.wall / max(steps - 1, 1) * (n - 1),
        "dense_steps_timed": steps,
        "same_first_steps": same,
        "bank_mb": z.numel() * 4 / 1e6,
        "bandwidth_gb_s": z.numel() * 4 / read.wall / 1e9,
        "dense_floor_s": (n - 1) * read.wall,
        "load": os.getloadavg()[0],
        **mem.record(),
    }


def job_peak(settings: Settings) -> dict[str, Any]:
    """Measured matrix-product ceiling of this device (TFLOP/s of one large square product, best of a few):
    fp32 on the CPU (the backbone rows' arithmetic), fp32 and bf16 on CUDA. The achieved rates of the
    other rows are quoted against it, so a speed-up target can be read against what the hardware allows."""
    dev = _start(settings)
    n = 256 if settings.quick else (8192 if dev.type == "cuda" else 2048)
    dtypes = {"fp32": torch.float32} if dev.type == "cpu" else {"fp32": torch.float32, "bf16": torch.bfloat16}
    out: dict[str, Any] = {"n": n}
    gen = torch.Generator(device="cpu").manual_seed(settings.seed)
    for name, dtype in dtypes.items():
        a = torch.randn(n, n, generator=gen).to(dev, dtype)  # random data: zeros run faster than real data
        b = torch.randn(n, n, generator=gen).to(dev, dtype)
        c = torch.empty_like(a)  # into a preallocated output: no allocation or page faults in the timing
        torch.mm(a, b, out=c)  # warm-up
        reps = 10 if dev.type == "cuda" else 3
        out[name] = 2 * n**3 / timed(lambda a=a, b=b, c=c: torch.mm(a, b, out=c), reps, dev).wall / 1e12
    return out


def job_metrics(settings: Settings) -> dict[str, Any]:
    """AU-PRO and pixel AUROC times on an MVTec-size synthetic test set (classic loop off)."""
    from .metrics import run_metrics_benchmark

    _start(replace(settings, device="cpu"))
    start = memory_now("cpu")
    with contextlib.redirect_stdout(io.StringIO()):
        res = run_metrics_benchmark(
            settings.metrics_n, settings.metrics_size, settings.seed, classic_thresholds=0, repeat=settings.reps
        )
    return {**res, "rss_job_start_mib": start}
