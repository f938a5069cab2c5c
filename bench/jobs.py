"""The measured jobs of ``python -m bench``, each run in its own process (see ``bench.run``): the matmul
ceiling, one backbone mode, the fused-feature accuracy of every mode, training, scoring and the metrics
(the comparison methods' jobs are ``bench.method_jobs``; what they all run on, ``bench.workloads``). Each
returns a dict of plain numbers. Warm-up before every timing; ``torch.cuda.synchronize`` around it and
``cudnn.benchmark`` on CUDA."""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

import torch

from .measure import PeakMemory, memory_now, native_low_precision, sync, timed
from .settings import NAIVE, Mode, Settings
from .workloads import (
    as_mode,
    backbone_flops,
    build_backbone,
    compiled,
    fused_cosine,
    grids,
    random_maps,
    recon_flops,
    start_job,
    synthetic_images,
)

# --------------------------------------------------------------------------- jobs (one process each)


def job_backbone(settings: Settings, mode: Mode) -> dict[str, Any]:
    """Throughput of one backbone mode, plus its fused-feature cosine vs fp32 on the same net."""
    dev = start_job(settings, mode.malloc)
    start = memory_now(dev)
    backbone, run = build_backbone(settings.backbone, settings.weights, settings.layers, mode, dev, settings.seed)
    native = native_low_precision(dev, mode.precision)
    batch, reps = settings.infer_batch_size, settings.reps
    note = []
    if not native:
        # emulated bf16/fp16 on this CPU is several times slower: time a smaller batch, once
        batch, reps = min(batch, 1 if settings.quick else 4), 1
        note.append(f"{mode.precision} emulated (no native {mode.precision} on this CPU): timed 1 batch of {batch}")
    x = synthetic_images(batch, settings.image_size, backbone.mean, backbone.std).to(dev)
    with torch.inference_mode():
        t0 = time.perf_counter()
        run(x[:1] if not native else x)  # warm-up (compiles when mode.compile)
        sync(dev)
        first_s = time.perf_counter() - t0
        if mode.compile:
            run(x)  # a second warm-up: compiled graphs may specialise on the batch size
        with PeakMemory(dev, start) as mem:
            t = timed(lambda: run(x), reps, dev)
    last = t.out
    out: dict[str, Any] = {
        "mode": asdict(mode),
        "label": mode.label,
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
    if mode != NAIVE:
        random_weights = settings.weights == "random"
        if mode.compile:  # test renders in the timed batch size: another size would compile again
            xa = synthetic_images(batch, settings.image_size, backbone.mean, backbone.std, split="test").to(dev)
        elif random_weights and not native:
            xa = None  # emulated precision: reuse the timed batch rather than prepare kernels for a new size
        else:
            n_acc = min(settings.accuracy_images, 2) if random_weights else settings.accuracy_images
            xa = synthetic_images(n_acc, settings.image_size, backbone.mean, backbone.std, split="test").to(dev)
        if xa is None:
            xa, got = x, last
        else:
            with torch.inference_mode():
                got = run(xa)
        ref_bb = as_mode(backbone, NAIVE)
        del backbone, run
        with torch.inference_mode():
            ref = ref_bb(xa)
        out["cos_own"] = fused_cosine(ref, got, settings.channels)
        out["cos_own_images"] = len(xa)
    else:
        out["cos_own"] = (1.0, 1.0)
        out["cos_own_images"] = 0
        out["gflop_per_img"] = backbone_flops(backbone, settings.image_size) / 1e9
    out["note"] = note
    return out


def job_accuracy(settings: Settings, name: str, weights: str, modes: Sequence[Mode]) -> dict[str, Any]:
    """Fused-feature cosine of every mode vs naive fp32 on ``name`` with ``weights``."""
    dev = start_job(settings)
    ref_bb, _ = build_backbone(name, weights, settings.layers, NAIVE, dev, settings.seed)
    x = synthetic_images(settings.accuracy_images, settings.image_size, ref_bb.mean, ref_bb.std, split="test").to(dev)
    with torch.inference_mode():
        ref = ref_bb(x)
    out: dict[str, Any] = {"net": name, "weights": weights, "images": settings.accuracy_images, "cos": {}}
    for v in modes:
        run = compiled(as_mode(ref_bb, v), v, dev)
        with torch.inference_mode():
            out["cos"][v.key] = fused_cosine(ref, run(x), settings.channels)
    return out


def job_train(settings: Settings, malloc: bool = False) -> dict[str, Any]:
    """s/epoch and samples/s of the full model (GFE + shuffle loss) on in-memory maps
    (``malloc``: with frad.runtime.tune_malloc, as the pipeline stages run)."""
    from frad.config import ModelConfig, TrainConfig
    from frad.train import train_model

    dev = start_job(settings, malloc)
    start = memory_now(dev)
    gen = torch.Generator().manual_seed(settings.seed)
    n, bs = settings.train_images, settings.batch_size
    maps = random_maps(settings, n, gen)
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
        * recon_flops(settings.channels, settings.widths, side, train=True, gfe_grid=gfe_grid)
        / 1e9,
        **mem.record(),
    }


def job_score(settings: Settings, mode: Mode) -> dict[str, Any]:
    """img/s of backbone + reconstruction + upsampling + blur, batched, images already decoded
    (on the CPU with frad.runtime.tune_malloc, as the pipeline stages run)."""
    from frad.config import ModelConfig
    from frad.model import ReconstructionNet
    from frad.score import anomaly_maps

    dev = start_job(settings, malloc=settings.device == "cpu")
    start = memory_now(dev)
    backbone, run = build_backbone(settings.backbone, settings.weights, settings.layers, mode, dev, settings.seed)
    torch.manual_seed(settings.seed)
    side = settings.image_size // (2 ** (min(settings.layers) + 1))
    gfe_grid = grids(side, settings.widths)[0]
    model = (
        ReconstructionNet(ModelConfig(in_channels=settings.channels, widths=settings.widths, gfe_grid=gfe_grid))
        .to(dev)
        .eval()
    )
    bs = settings.infer_batch_size
    images = synthetic_images(settings.test_images, settings.image_size, backbone.mean, backbone.std, split="test")

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
    if mode.compile and len(images) % bs:
        score(images[-(len(images) % bs) :])  # the last, smaller batch compiles once more
    with PeakMemory(dev, start) as mem:
        t = timed(lambda: score(images), 1, dev)
    maps = t.out
    return {
        "mode": asdict(mode),
        "label": mode.label,
        "images": len(images),
        "wall": t.wall,
        "cpu": t.cpu,
        "img_s": len(images) / t.wall,
        "maps_shape": list(maps.shape),
        "finite": bool(torch.isfinite(maps).all()),
        "gflop_per_img": (
            backbone_flops(backbone, settings.image_size)
            + recon_flops(settings.channels, settings.widths, side, train=False, gfe_grid=gfe_grid)
        )
        / 1e9,
        **mem.record(),
    }


def job_peak(settings: Settings) -> dict[str, Any]:
    """Measured matrix-product ceiling of this device (TFLOP/s of one large square product, best of a few):
    fp32 on the CPU (the backbone rows' arithmetic), fp32 and bf16 on CUDA. The achieved rates of the
    other rows are quoted against it, so a speed-up target can be read against what the hardware allows."""
    dev = start_job(settings)
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

    start_job(replace(settings, device="cpu"))
    start = memory_now("cpu")
    with contextlib.redirect_stdout(io.StringIO()):
        res = run_metrics_benchmark(
            settings.metrics_n, settings.metrics_size, settings.seed, classic_thresholds=0, repeat=settings.reps
        )
    return {**res, "rss_job_start_mib": start}
