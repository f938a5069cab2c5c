"""The measured jobs of the same-harness comparison methods in ``python -m bench``, each run in its own process (see
``bench.run``): fit and scoring throughput of PaDiM, PatchCore and RD (``frad.<method>.method.fit_and_score``) on random
per-layer maps, and PatchCore's greedy coreset alone on real features against the dense loop. Each returns a
dict of plain numbers."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch

from frad.methods import METHODS

from .measure import PeakMemory, memory_now, timed
from .settings import Settings
from .workloads import random_maps, start_job

METHOD_NAMES = tuple(METHODS)  # the same-harness comparison methods (frad.methods), one row each
# PaDiM §4.1: d = 550 of WRN50-2's 1792 channels, 100 of ResNet-18's 448; Lite0 (176) takes the small-backbone value
PADIM_D = {"wide_resnet50_2": 550, "tf_efficientnet_lite0": 100}


def method_config(settings: Settings, method: str, epochs: int = 1) -> Any:
    """The config of ``method`` as the pipeline runs it: the method's defaults (PatchCore coreset 0.1, dims 1024,
    projection 128; RD lr 0.005, Adam (0.5, 0.999)), PaDiM's d for the backbone, RD with the training batch and
    ``epochs``; --quick: smoke sizes. A method without an entry here runs with its config's defaults."""
    if method not in METHODS:
        raise ValueError(f"unknown comparison method {method!r}; choose one of {', '.join(METHODS)}")
    changes = {
        "padim": {"d": 16 if settings.quick else PADIM_D[settings.backbone]},
        "patchcore": dict(coreset=0.5, dims=32, projection=8, k=3) if settings.quick else {},
        "rd": {"epochs": epochs, "batch_size": settings.batch_size},
    }
    return METHODS[method].make_config(changes.get(method, {}), settings.seed, settings.device)


def job_method(settings: Settings, method: str) -> dict[str, Any]:
    """Fit and scoring throughput of one baseline (``frad.<method>.method.fit_and_score``) on in-memory random per-layer
    maps of one category (``train_images`` train, ``method_test_images`` test), after a warm-up on one batch;
    on the CPU with frad.runtime.tune_malloc, as the pipeline stages run. RD on the CPU with ``train_steps``:
    trained on that many batches for one epoch and the epoch extrapolated, as the training rows do."""
    dev = start_job(settings, malloc=settings.device == "cpu")
    start = memory_now(dev)
    fit_and_score = METHODS[method].fit_and_score
    layers = method_config(settings, method).layers
    gen = torch.Generator().manual_seed(settings.seed)
    n, n_test, bs = settings.train_images, settings.method_test_images, settings.batch_size
    train, test = random_maps(settings, n, gen, layers), random_maps(settings, n_test, gen, layers)
    steps_per_epoch = math.ceil(n / bs)
    extrapolated = method == "rd" and 0 < settings.train_steps < steps_per_epoch
    n_fit = settings.train_steps * bs if extrapolated else n
    epochs = 1 if extrapolated or method != "rd" else settings.rd_epochs
    config = method_config(settings, method, epochs)

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

    run(max(2, min(bs, n)), min(settings.infer_batch_size, n_test), method_config(settings, method, 1))  # warm-up
    with PeakMemory(dev, start) as mem:
        t = timed(lambda: run(n_fit, n_test, config), 1, dev)
    info = {k: v for k, v in {**t.out.info, **t.out.timings}.items() if k != "history"}
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
            run_epochs=type(config)().epochs,  # the pipeline's default run (compare.rd.epochs)
        )
    return out


def job_coreset(settings: Settings) -> dict[str, Any]:
    """PatchCore's greedy coreset (``frad.patchcore.method.greedy_coreset``, the pipeline's default 0.1, dims 1024,
    projection 128) on the memory bank of ``train_images`` distinct synthetic bottle renders through
    EfficientNet-Lite0 with its real ImageNet weights (the row needs real features: how many rows the triangle
    inequality rules out depends on their structure), against the dense loop (every row each step: timed on a few
    hundred steps and extrapolated) and the memory-bandwidth floor of that dense loop (each step reads the whole
    projected bank once; bandwidth = best read of it)."""
    from frad.backbone import load_backbone
    from frad.datasets.synthetic_render import render_sample
    from frad.patchcore.method import PatchcoreConfig, _greedy_dense, greedy_coreset, patch_features

    dev = start_job(replace(settings, device="cpu"))
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
