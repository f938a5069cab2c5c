"""End-to-end speed benchmark of frad: backbone, training, scoring and metrics, in one run, one table.

    python -m frad.bench [--device cpu|cuda|auto] [--backbone wide_resnet50_2] [--weights random]
                         [--batch-size 16] [--infer-batch-size N] [--image-size 256] [--layers 2,3]
                         [--channels 512] [--train-images 209] [--epochs N] [--train-steps N] [--test-images N]
                         [--metrics-n 1725] [--compile] [--quick] [--out reports/benchmark.md]

Rows (all measured in the same run on the same machine):

* backbone feature extraction, img/s: the naive path (fp32, eager, NCHW) against channels_last
  fp32, channels_last + bf16 autocast (and fp16 on CUDA, torch.compile with ``--compile``), with
  the deviation of the *fused* features (``fuse_features`` to C, eq. 1–3) from the naive fp32 path:
  mean and min cosine similarity per position. When the benchmarked backbone has random weights
  (WideResNet50-2 here: no ImageNet file offline) the accuracy is measured on
  tf_efficientnet_lite0 with its ImageNet weights, and the table says so.
* training, s/epoch and samples/s: the full model (GFE + shuffle loss, default widths) on random
  per-layer maps of the cached shapes (fp16, like the feature cache), all in memory.
* scoring, img/s: backbone (fast path) + reconstruction net + upsampling + Gaussian blur, batched.
* metrics: exact AU-PRO and pixel AUROC on an MVTec-size synthetic test set
  (:func:`frad.bench_metrics.run_metrics_benchmark`, classic loop off).

Every row runs in its own fresh process (forked from a server that imported torch once), so its
peak memory is its own: on CUDA ``torch.cuda.max_memory_allocated`` over the timed part; on CPU the
peak resident set (``VmHWM``) of that process over the timed part, after resetting the peak counter
(``/proc/self/clear_refs``), and in brackets the rise above the resident set just before it.
Warm-up before every timing; ``torch.cuda.synchronize`` around it and ``cudnn.benchmark`` on CUDA.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import io
import json
import math
import multiprocessing as mp
import os
import platform
import shlex
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["Settings", "Variant", "BenchResult", "run_benchmark", "main", "resolve_settings", "parse_args"]

ACCURACY_NET = ("tf_efficientnet_lite0", "imagenet")  # real weights shipped offline (pip package)
SECTIONS = ("ceiling", "backbone", "training", "scoring", "metrics")  # row groups, for --only
_SKIPPED = "skipped (--only)"
COS_TARGET = 0.999  # fused-feature cosine (mean per position) the fast path must keep
SPEEDUP_TARGET = 2.5  # backbone fast path vs naive fp32 eager (issue target)
METRICS_TARGET_S = 5.0  # AU-PRO + pixel AUROC on 1,725 maps of 256² (issue target)
GPU_SCORE_TARGET = 1500.0  # img/s, scoring on an H100/H200 (issue target)
GPU_TRAIN_TARGET_S = 60.0  # one category (209 images), 100 epochs, on an H100/H200 (issue target)

# Dense bf16 tensor-core peak (TFLOP/s, no sparsity) by GPU name fragment, most specific first.
GPU_BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H200", 989.0), ("H100", 989.0), ("GH200", 989.0),
    ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0),
    ("A10G", 70.0), ("A10", 125.0), ("RTX 4090", 165.0), ("RTX 3090", 71.0),
)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Variant:
    """One way of running the frozen backbone."""

    key: str
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast after the fp32 stem, see frad.backbone)
    channels_last: bool = False
    compile: bool = False  # torch.compile (inductor; on CPU with freezing = BN folding + weight prepacking)
    malloc: bool = False  # frad.runtime.tune_malloc in the row's process (CPU: no page faults per batch)

    @property
    def label(self) -> str:
        prec = "fp32" if self.precision == "fp32" else f"{self.precision} autocast"
        mode = "torch.compile" if self.compile else "eager"
        layout = "channels_last" if self.channels_last else "NCHW"
        return f"{prec}, {mode}, {layout}" + (", tuned malloc" if self.malloc else "")


NAIVE = Variant("naive")


@dataclass(frozen=True)
class Settings:
    device: str  # resolved: "cpu" or "cuda[:N]"
    backbone: str
    weights: str
    batch_size: int  # training batch (the paper's 16)
    infer_batch_size: int  # backbone and scoring rows
    image_size: int
    layers: tuple[int, ...]
    channels: int
    widths: tuple[int, int, int]  # reconstruction net (ModelConfig.widths)
    train_images: int
    epochs: int
    train_steps: int  # >0: time this many steps and extrapolate the epoch; 0: time whole epochs
    test_images: int
    metrics_n: int
    metrics_size: int
    sigma: float
    reps: int  # timed repetitions of each backbone batch (best is reported)
    accuracy_images: int
    threads: int  # torch intra-op threads in every row; 0 = torch's default
    compile: bool
    quick: bool
    only: tuple[str, ...]
    isolate: bool
    seed: int
    out: str
    json_out: str | None
    argv: tuple[str, ...] = ()

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")


def _layers(text: str) -> tuple[int, ...]:
    try:
        out = tuple(sorted({int(t) for t in text.replace(" ", "").split(",") if t}))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"layers must look like 2,3 (got {text!r})") from err
    if not out or not set(out) <= {1, 2, 3}:
        raise argparse.ArgumentTypeError(f"layers must be drawn from 1,2,3 (got {text!r})")
    return out


def _widths(text: str) -> tuple[int, int, int]:
    try:
        out = tuple(int(t) for t in text.replace(" ", "").split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"widths must look like 256,256,256 (got {text!r})") from err
    if len(out) != 3 or min(out) < 4:
        raise argparse.ArgumentTypeError(f"widths must be three integers >= 4 (got {text!r})")
    return out  # type: ignore[return-value]


def _sections(text: str) -> tuple[str, ...]:
    out = tuple(t for t in text.replace(" ", "").split(",") if t)
    bad = [t for t in out if t not in SECTIONS]
    if not out or bad:
        raise argparse.ArgumentTypeError(f"--only takes a comma list drawn from {','.join(SECTIONS)} (got {text!r})")
    return out


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m frad.bench", description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    p.add_argument("--backbone", default="wide_resnet50_2", choices=("wide_resnet50_2", "tf_efficientnet_lite0"))
    p.add_argument("--weights", default=None,
                   help="random | imagenet | path (default: random for wide_resnet50_2, imagenet otherwise)")
    p.add_argument("--batch-size", type=_positive, default=None, help="training batch (16, §2.3)")
    p.add_argument("--infer-batch-size", type=_positive, default=None,
                   help="backbone and scoring batch (default: --batch-size on CPU, 64 on CUDA)")
    p.add_argument("--image-size", type=_positive, default=None, help="input side (256)")
    p.add_argument("--layers", type=_layers, default=None, help="layer set L (2,3)")
    p.add_argument("--channels", type=_positive, default=None, help="fused channels C (512)")
    p.add_argument("--widths", type=_widths, default=None,
                   help="reconstruction-net widths (256,256,256 = the model default)")
    p.add_argument("--train-images", type=_positive, default=None, help="train set size (209 = MVTec bottle)")
    p.add_argument("--epochs", type=_positive, default=None,
                   help="epochs to time when --train-steps is 0 (default: 2 on CPU, 100 = a whole run on CUDA)")
    p.add_argument("--train-steps", type=int, default=None,
                   help="time this many training steps and extrapolate s/epoch; 0 = time whole epochs "
                        "(default: 3 on CPU, 0 on CUDA)")
    p.add_argument("--test-images", type=_positive, default=None,
                   help="images scored (default: 32 on CPU, 1024 on CUDA)")
    p.add_argument("--metrics-n", type=_positive, default=None, help="maps for AU-PRO/pixel AUROC (1725)")
    p.add_argument("--metrics-size", type=_positive, default=None, help="map side for the metrics (256)")
    p.add_argument("--sigma", type=float, default=4.0, help="Gaussian σ of the scoring blur (4)")
    p.add_argument("--reps", type=_positive, default=None, help="timed batches per backbone variant (2)")
    p.add_argument("--accuracy-images", type=_positive, default=None, help="images for the cosine check (8)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per row (default: torch's choice; --quick: 1, since tiny ops on "
                        "a busy machine mostly wait on thread barriers)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    p.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test")
    p.add_argument("--only", type=_sections, default=SECTIONS,
                   help=f"run only these row groups, comma-separated from {','.join(SECTIONS)} (default: all; "
                        "scoring then uses the naive backbone path unless backbone runs too)")
    p.add_argument("--no-isolate", dest="isolate", action="store_false",
                   help="run every row in this process (memory numbers then share one process)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="reports/benchmark.md", help="Markdown file to write")
    p.add_argument("--json", dest="json_out", default=None, help="also write the raw numbers as JSON")
    return p.parse_args(argv)


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but CUDA is not available here (use --device cpu or auto)")
    return name


def resolve_settings(ns: argparse.Namespace, argv: Sequence[str] = ()) -> Settings:
    """Fill the defaults (full or ``--quick``) that were not given explicitly."""
    device = resolve_device(ns.device)
    cuda = device.startswith("cuda")
    full = dict(batch_size=16, infer_batch_size=64 if cuda else None, image_size=256, layers=(2, 3), channels=512,
                widths=(256, 256, 256), train_images=209, epochs=100 if cuda else 2,
                train_steps=0 if cuda else 3, test_images=1024 if cuda else 32, metrics_n=1725,
                metrics_size=256, reps=5 if cuda else 2, accuracy_images=8, threads=0)
    quick = dict(batch_size=2, infer_batch_size=None, image_size=64, layers=(2, 3), channels=64, widths=(32, 32, 32),
                 train_images=2, epochs=1,
                 train_steps=0, test_images=2, metrics_n=24, metrics_size=64, reps=1, accuracy_images=2, threads=1)
    defaults = quick if ns.quick else full
    values = {k: (getattr(ns, k) if getattr(ns, k) is not None else v) for k, v in defaults.items()}
    weights = ns.weights or ("random" if ns.backbone == "wide_resnet50_2" else "imagenet")
    if values["train_steps"] < 0:
        raise SystemExit("error: --train-steps must be >= 0")
    if values["infer_batch_size"] is None:
        values["infer_batch_size"] = values["batch_size"]
    return Settings(device=device, backbone=ns.backbone, weights=weights, sigma=ns.sigma, compile=ns.compile,
                    quick=ns.quick, only=tuple(ns.only), isolate=ns.isolate, seed=ns.seed, out=ns.out, json_out=ns.json_out,
                    argv=tuple(argv), **values)


# --------------------------------------------------------------------------- measuring helpers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _proc_status_mib(field_name: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"{field_name} not in /proc/self/status")


def memory_now(device: torch.device) -> float:
    """MiB in use now: CUDA memory allocated by torch, else the resident set of this process."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    try:
        return _proc_status_mib("VmRSS")
    except OSError:
        return math.nan


class PeakMemory:
    """Peak memory of the enclosed block: CUDA allocator peak on CUDA, else peak RSS (VmHWM) of
    this process after resetting the peak counter (``clear_refs`` = 5). ``peak_mib`` is the
    absolute peak, ``delta_mib`` its rise above ``base`` (MiB, default: the level at entry)."""

    def __init__(self, device: torch.device, base: float | None = None):
        self.device = device
        self.given_base = base
        self.peak_mib = math.nan
        self.delta_mib = math.nan
        self.kind = "GPU" if device.type == "cuda" else "RSS"
        self.reset_ok = True

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2**20 if self.given_base is None else self.given_base
        else:
            try:
                with open("/proc/self/clear_refs", "w") as clear:
                    clear.write("5")
            except OSError:
                self.reset_ok = False  # VmHWM is then the lifetime peak of this process
            self.base = memory_now(self.device) if self.given_base is None else self.given_base
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            try:
                self.peak_mib = _proc_status_mib("VmHWM")
            except OSError:
                import resource

                self.peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                self.reset_ok = False
        self.delta_mib = self.peak_mib - self.base

    def record(self) -> dict[str, Any]:
        return {"mem_kind": self.kind, "peak_mib": self.peak_mib, "delta_mib": self.delta_mib,
                "peak_reset": self.reset_ok}


def _timed(fn: Callable[[], Any], device: torch.device, reps: int) -> tuple[list[float], list[float], Any]:
    """Wall and process-CPU seconds of ``reps`` calls (synchronised on CUDA) and the last result."""
    walls, cpus, out = [], [], None
    for _ in range(reps):
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        _sync(device)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return walls, cpus, out


def native_low_precision(device: torch.device, precision: str) -> bool:
    """Whether ``precision`` autocast runs on real hardware support (always on CUDA; on CPU only
    with AVX512-BF16/AMX for bf16 and AVX512-FP16/AMX-FP16 for fp16)."""
    if precision == "fp32" or device.type == "cuda":
        return True
    flags = _cpu_flags()
    if precision == "bf16":
        return bool({"avx512_bf16", "amx_bf16"} & flags)
    return bool({"avx512_fp16", "amx_fp16"} & flags)


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _tune_malloc() -> None:
    from frad.runtime import tune_malloc

    if not tune_malloc():
        raise RuntimeError("frad.runtime.tune_malloc is not available here (not glibc, or FRAD_MALLOC_TUNE=0)")


def _quiet() -> None:
    """Silence the expected warnings (random weights, compile chatter) in a worker."""
    warnings.simplefilter("ignore")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _device(settings: Settings) -> torch.device:
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


def _build_backbone(name: str, weights: str, layers: Sequence[int], variant: Variant, device: torch.device,
                    seed: int) -> tuple[Any, Callable[[torch.Tensor], dict[int, torch.Tensor]]]:
    """(Backbone module, callable running it): same weights for every variant (seeded when random)."""
    from frad.backbone import load_backbone

    torch.manual_seed(seed)
    backbone = load_backbone(name, weights, layers, channels_last=variant.channels_last,
                             precision=variant.precision).to(device)
    return backbone, _compiled(backbone, variant, device)


def _as_variant(backbone: Any, variant: Variant) -> Any:
    """A copy of ``backbone`` (same weights) run as ``variant`` (eager; compile separately)."""
    import copy

    out = copy.deepcopy(backbone)
    out.precision, out.channels_last = variant.precision, variant.channels_last
    return out.to(memory_format=torch.channels_last if variant.channels_last else torch.contiguous_format)


def _compiled(backbone: Any, variant: Variant, device: torch.device) -> Callable[[torch.Tensor], dict[int, torch.Tensor]]:
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

    from frad.model import ModelConfig, ReconstructionNet
    from frad.train import cosine_distance

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
    _quiet()
    if variant.malloc:
        _tune_malloc()
    dev = _device(settings)
    start = memory_now(dev)
    backbone, run = _build_backbone(settings.backbone, settings.weights, settings.layers, variant, dev, settings.seed)
    native = native_low_precision(dev, variant.precision)
    batch, reps = settings.infer_batch_size, settings.reps
    note = []
    if not native:
        # emulated bf16/fp16 on this CPU is several times slower: time a smaller batch, once
        batch, reps = min(batch, 1 if settings.quick else 4), 1
        note.append(f"{variant.precision} emulated (no native {variant.precision} on this CPU): "
                    f"timed 1 batch of {batch}")
    x = _images(batch, settings.image_size, backbone.mean, backbone.std).to(dev)
    with torch.inference_mode():
        t0 = time.perf_counter()
        run(x[:1] if not native else x)  # warm-up (compiles when variant.compile)
        _sync(dev)
        first_s = time.perf_counter() - t0
        if variant.compile:
            run(x)  # a second warm-up: compiled graphs may specialise on the batch size
        with PeakMemory(dev, start) as mem:
            walls, cpus, last = _timed(lambda: run(x), dev, reps)
    best = min(range(reps), key=walls.__getitem__)
    out: dict[str, Any] = {
        "variant": asdict(variant), "label": variant.label, "native": native, "batch": batch, "reps": reps,
        "walls": walls, "cpus": cpus, "s_per_batch": walls[best], "cpu_s_per_batch": cpus[best],
        "img_s": batch / walls[best], "first_call_s": first_s, **mem.record(),
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
    _quiet()
    dev = _device(settings)
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


def _random_maps(settings: Settings, n: int, generator: torch.Generator) -> dict[int, torch.Tensor]:
    """Per-layer maps of the cached shapes and dtype (fp16): layer l has stride 2^(l+1)."""
    from frad.backbone import BACKBONES

    spec = BACKBONES[settings.backbone]
    return {
        l: torch.randn(n, spec.channels[l], settings.image_size // spec.strides[l],
                       settings.image_size // spec.strides[l], generator=generator).half()
        for l in settings.layers
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
    _quiet()
    if malloc:
        _tune_malloc()
    from frad.model import ModelConfig
    from frad.train import TrainConfig, train_model

    dev = _device(settings)
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
    train_model(warm, settings.channels, model_config,
                TrainConfig(epochs=1, batch_size=bs, device=device, ssl_grid=ssl_grid), progress=False)
    steps_per_epoch = math.ceil(n / bs)
    if settings.train_steps and settings.train_steps < steps_per_epoch:
        n_timed, epochs = settings.train_steps * bs, 1
        timed = {l: m[:n_timed] for l, m in maps.items()}
    else:
        n_timed, epochs = n, settings.epochs
        timed = maps
    marks: list[float] = []
    config = TrainConfig(epochs=epochs, batch_size=bs, device=device, seed=settings.seed, ssl_grid=ssl_grid)
    with PeakMemory(dev, start) as mem:
        _sync(dev)
        t0, c0 = time.perf_counter(), time.process_time()
        result = train_model(timed, settings.channels, model_config, config, progress=False,
                             on_epoch=lambda e, r: marks.append(time.perf_counter()))
        _sync(dev)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    epoch_walls = [b - a for a, b in zip([t0, *marks[:-1]], marks)]
    samples_s = n_timed * epochs / wall
    extrapolated = n_timed < n
    return {
        "gfe_grid": gfe_grid, "ssl_grid": ssl_grid, "map_side": side,
        "samples_s": samples_s,
        "s_per_epoch": n / samples_s if extrapolated else sum(epoch_walls) / len(epoch_walls),
        "epoch_walls": epoch_walls, "wall": wall, "cpu": cpu, "timed_samples": n_timed, "epochs": epochs,
        "steps_timed": math.ceil(n_timed / bs) * epochs, "steps_per_epoch": steps_per_epoch,
        "extrapolated": extrapolated, "final_loss": result.history[-1]["loss"],
        # shuffle loss: z and z' both go through the net, so 2 samples of net work per train sample
        "gflop_per_sample": 2 * _recon_flops(settings.channels, settings.widths, side, train=True, gfe_grid=gfe_grid) / 1e9,
        **mem.record(),
    }


def job_score(settings: Settings, variant: Variant) -> dict[str, Any]:
    """img/s of backbone + reconstruction + upsampling + blur, batched, images already decoded
    (on the CPU with frad.runtime.tune_malloc, as the pipeline stages run)."""
    _quiet()
    if settings.device == "cpu":
        _tune_malloc()
    from frad.model import ModelConfig, ReconstructionNet
    from frad.score import anomaly_maps

    dev = _device(settings)
    start = memory_now(dev)
    backbone, run = _build_backbone(settings.backbone, settings.weights, settings.layers, variant, dev, settings.seed)
    torch.manual_seed(settings.seed)
    side = settings.image_size // (2 ** (min(settings.layers) + 1))
    gfe_grid = grids(side, settings.widths)[0]
    model = ReconstructionNet(ModelConfig(in_channels=settings.channels, widths=settings.widths,
                                          gfe_grid=gfe_grid)).to(dev).eval()
    bs = settings.infer_batch_size
    images = _images(settings.test_images, settings.image_size, backbone.mean, backbone.std, split="test")

    def score(x: torch.Tensor) -> torch.Tensor:
        outs = []
        for start in range(0, len(x), bs):
            with torch.inference_mode():
                feats = run(x[start:start + bs].to(dev, non_blocking=True))
            outs.append(anomaly_maps(model, feats, settings.channels, settings.image_size, settings.sigma,
                                     batch_size=bs))
        return torch.cat(outs)

    score(images[:bs])  # warm-up
    if variant.compile and len(images) % bs:
        score(images[-(len(images) % bs):])  # the last, smaller batch compiles once more
    with PeakMemory(dev, start) as mem:
        walls, cpus, maps = _timed(lambda: score(images), dev, 1)
    return {
        "variant": asdict(variant), "label": variant.label, "images": len(images), "wall": walls[0],
        "cpu": cpus[0], "img_s": len(images) / walls[0], "maps_shape": list(maps.shape),
        "finite": bool(torch.isfinite(maps).all()),
        "gflop_per_img": (_backbone_flops(backbone, settings.image_size)
                          + _recon_flops(settings.channels, settings.widths, side, train=False, gfe_grid=gfe_grid)) / 1e9,
        **mem.record(),
    }


def job_peak(settings: Settings) -> dict[str, Any]:
    """Measured matrix-product ceiling of this device (TFLOP/s of one large square product, best of a few):
    fp32 on the CPU (the backbone rows' arithmetic), fp32 and bf16 on CUDA. The achieved rates of the
    other rows are quoted against it, so a speed-up target can be read against what the hardware allows."""
    _quiet()
    dev = _device(settings)
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
        walls, _, _ = _timed(lambda: torch.mm(a, b, out=c), dev, reps)
        out[name] = 2 * n**3 / min(walls) / 1e12
    return out


def job_metrics(settings: Settings) -> dict[str, Any]:
    """AU-PRO and pixel AUROC times on an MVTec-size synthetic test set (classic loop off)."""
    from frad.bench_metrics import run_metrics_benchmark

    _device(replace(settings, device="cpu"))
    start = memory_now(torch.device("cpu"))
    with contextlib.redirect_stdout(io.StringIO()):
        res = run_metrics_benchmark(settings.metrics_n, settings.metrics_size, settings.seed,
                                    classic_thresholds=0, repeat=settings.reps)
    return {**res, "rss_job_start_mib": start}


# --------------------------------------------------------------------------- orchestration


_CONTEXT: Any = None


def _context(backbone: str) -> Any:
    """A forkserver that imported torch once: each job is a fresh, cheap child process (clean peak
    memory, no OpenMP/CUDA state inherited from this process)."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = mp.get_context("forkserver")
        heavy = ["torchvision"] if backbone == "wide_resnet50_2" else ["timm"]
        _CONTEXT.set_forkserver_preload(["frad.bench", "frad.backbone", "frad.train", "frad.score", *heavy])
    return _CONTEXT


def _run_job(settings: Settings, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    if not settings.isolate:
        # same process: keep its warning filters, deterministic flag and thread count as they were
        deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
        try:
            with warnings.catch_warnings():
                return fn(settings, *args)
        finally:
            torch.use_deterministic_algorithms(deterministic)
            torch.set_num_threads(threads)
    with ProcessPoolExecutor(max_workers=1, mp_context=_context(settings.backbone)) as pool:
        return pool.submit(fn, settings, *args).result()


@dataclass
class Row:
    stage: str
    variant: str
    throughput: float | None = None  # per second
    unit: str = ""
    time_s: float | None = None
    time_unit: str = ""
    speedup: float | None = None
    cos: tuple[float, float] | None = None
    peak_mib: float | None = None
    delta_mib: float | None = None
    mem_kind: str = ""
    note: str = ""
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchResult:
    settings: Settings
    header: list[str]
    rows: list[Row]
    notes: list[str]
    markdown: str
    fast_variant: str | None

    @property
    def ok(self) -> bool:
        return all(r.error is None for r in self.rows)


def variants_for(settings: Settings) -> list[Variant]:
    dev = torch.device(settings.device)
    out = [NAIVE, Variant("fp32-cl", "fp32", True)]
    if dev.type == "cpu":
        out.append(Variant("fp32-cl-malloc", "fp32", True, malloc=True))  # what the pipeline stages run
    out.append(Variant("bf16-cl", "bf16", True))
    if dev.type == "cuda":
        out.append(Variant("fp16-cl", "fp16", True))
    if settings.compile:
        # CPU: fp32 (bf16 is emulated there); CUDA: the bf16 fast path, compiled
        out.append(Variant("compile-fp32-cl" if dev.type == "cpu" else "compile-bf16-cl",
                           "fp32" if dev.type == "cpu" else "bf16", True, compile=True))
    return out


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - mag)
    return f"{x:.{decimals}f}"


def _mem(row: Row) -> str:
    if row.peak_mib is None or not math.isfinite(row.peak_mib):
        return "–"
    delta = "" if row.delta_mib is None or not math.isfinite(row.delta_mib) else f" (+{max(row.delta_mib, 0):.0f})"
    return f"{row.peak_mib:.0f} MiB {row.mem_kind}{delta}"


def _cos(c: tuple[float, float] | None) -> str:
    return "–" if c is None else f"{c[0]:.6f} / {c[1]:.6f}"


def _gpu_peak(name: str) -> float | None:
    for fragment, peak in GPU_BF16_PEAK_TFLOPS:
        if fragment in name:
            return peak
    return None


def _achieved(flops_per_item: float | None, items_per_s: float | None, settings: Settings, device_name: str,
              peak: dict[str, Any] | None = None, precision: str = "fp32") -> str:
    """Achieved FLOP rate, as a share of the measured matrix-product ceiling (and of the datasheet's
    dense bf16 peak on a known GPU)."""
    if not flops_per_item or not items_per_s:
        return ""
    rate = flops_per_item * 1e9 * items_per_s / 1e12  # TFLOP/s
    ceiling_key = "bf16" if settings.is_cuda and precision in ("bf16", "fp16") else "fp32"
    measured = (peak or {}).get(ceiling_key)
    shares = []
    if measured:
        shares.append(f"{100 * rate / measured:.0f}% of the measured {ceiling_key} matmul ceiling")
    if settings.is_cuda:
        sheet = _gpu_peak(device_name)
        if sheet:
            shares.append(f"{100 * rate / sheet:.1f}% of the ~{sheet:.0f} TFLOP/s dense bf16 datasheet peak")
        text = f"{rate:.1f} TFLOP/s"
    else:
        text = f"{_fmt(rate * 1e3)} GFLOP/s"
    return text + (f" ({', '.join(shares)})" if shares else "")


def run_benchmark(settings: Settings, log: Callable[[str], None] = print) -> BenchResult:
    """Run every row (each in its own process unless ``settings.isolate`` is false) and build the table."""
    dev = torch.device(settings.device)
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name()
    load_start = os.getloadavg()[0]
    started = _dt.datetime.now(_dt.timezone.utc)
    rows: list[Row] = []
    variants = variants_for(settings)
    bb_name = f"{settings.backbone} ({settings.weights} weights)"

    def attempt(what: str, fn: Callable[..., dict[str, Any]], *args: Any) -> tuple[dict[str, Any] | None, str | None]:
        section = {job_peak: "ceiling", job_backbone: "backbone", job_accuracy: "backbone", job_train: "training",
                   job_score: "scoring", job_metrics: "metrics"}[fn]
        if section not in settings.only:
            return None, _SKIPPED
        log(f"[frad.bench] {what} ...")
        t0 = time.perf_counter()
        try:
            res = _run_job(settings, fn, *args)
        except Exception as err:  # a failed row is reported, the others still run
            log(f"[frad.bench] {what} FAILED: {type(err).__name__}: {err}")
            traceback.print_exc()
            return None, f"{type(err).__name__}: {err}"
        log(f"[frad.bench] {what} done in {time.perf_counter() - t0:.0f} s")
        return res, None

    # ---- the device's measured matrix-product ceiling (what the achieved rates are quoted against)
    peak, err = attempt("matmul ceiling", job_peak)
    row = Row("ceiling", "", unit="TFLOP/s", error=err)
    if peak is not None:
        kinds = [k for k in ("fp32", "bf16") if k in peak]
        row.variant = f"{' and '.join(kinds)} matmul {peak['n']}×{peak['n']}"
        row.throughput = peak[kinds[-1]]
        row.unit = f"TFLOP/s {kinds[-1]}"
        row.note = "; ".join(f"{k}: {peak[k]:.3g} TFLOP/s" for k in kinds) + "; best of several products, random data"
        row.raw = peak
    rows.append(row)

    # ---- backbone variants
    results: dict[str, dict[str, Any]] = {}
    bb_rows: list[Row] = []
    for v in variants:
        res, err = attempt(f"backbone {v.label}", job_backbone, v)
        row = Row("backbone", v.label + (" (naive)" if v == NAIVE else ""), unit="img/s", time_unit="s/batch",
                  error=err, mem_kind="GPU" if settings.is_cuda else "RSS")
        if res is not None:
            results[v.key] = res
            row.throughput, row.time_s = res["img_s"], res["s_per_batch"]
            row.time_unit = f"s/batch of {res['batch']}"
            row.peak_mib, row.delta_mib, row.mem_kind = res["peak_mib"], res["delta_mib"], res["mem_kind"]
            row.raw = res
        bb_rows.append(row)
    rows.extend(bb_rows)

    # ---- accuracy of the fused features on a net with real weights
    accuracy_net = (settings.backbone, settings.weights)
    acc: dict[str, tuple[float, float]] = {k: tuple(r["cos_own"]) for k, r in results.items()}
    acc_images = settings.accuracy_images
    if settings.weights == "random":
        accuracy_net = ACCURACY_NET
        res, err = attempt(f"fused-feature accuracy on {ACCURACY_NET[0]} ({ACCURACY_NET[1]})", job_accuracy,
                           ACCURACY_NET[0], ACCURACY_NET[1], [v for v in variants if v != NAIVE])
        acc = {NAIVE.key: (1.0, 1.0)}
        if res is not None:
            acc.update({k: tuple(c) for k, c in res["cos"].items()})
        else:
            rows.append(Row("accuracy", f"{ACCURACY_NET[0]} ({ACCURACY_NET[1]})", error=err))
    naive = results.get(NAIVE.key)
    gflop_img = naive.get("gflop_per_img") if naive else None
    for v, row in zip(variants, bb_rows):
        res = results.get(v.key)
        if res is None:
            continue
        row.cos = acc.get(v.key)
        if naive:
            row.speedup = res["img_s"] / naive["img_s"]
        parts = list(res["note"])
        if v.compile:
            parts.append(f"first call (compile) {res['first_call_s']:.0f} s")
        if settings.weights == "random" and v != NAIVE:
            parts.append(f"fused cos on {settings.backbone} random weights ({res['cos_own_images']} images): "
                         f"{_cos(tuple(res['cos_own']))}")
        if not settings.is_cuda:
            parts.append(f"CPU time {res['cpu_s_per_batch']:.2f} s/batch")
        achieved = _achieved(gflop_img, res["img_s"], settings, device_name, peak, v.precision)
        if achieved:
            parts.append(achieved)
        row.note = "; ".join(parts)

    # ---- fast path: the fastest variant that keeps the fused features (mean cos >= COS_TARGET)
    eligible = [v for v in variants if v.key in results and acc.get(v.key) and acc[v.key][0] >= COS_TARGET]
    fast = max(eligible, key=lambda v: results[v.key]["img_s"], default=None)  # naive (cos 1) competes too
    for v, row in zip(variants, bb_rows):
        if fast is not None and v == fast:
            row.variant += " ← fast path"
    fast_for_scoring = fast or NAIVE

    # ---- training
    # CPU: glibc's default allocator and the tuned one the pipeline stages use (frad.runtime.tune_malloc)
    for malloc in ((False, True) if not settings.is_cuda else (False,)):
        res, err = attempt("training" + (" (tuned malloc)" if malloc else ""), job_train, malloc)
        widths = "/".join(map(str, settings.widths))
        row = Row("training", f"full model (GFE + shuffle), C={settings.channels}, widths {widths}, batch {settings.batch_size}"
                  + (", tuned malloc (as the pipeline)" if malloc else ", default malloc" if not settings.is_cuda else ""),
                  unit="samples/s", time_unit="s/epoch", error=err)
        if res is not None:
            if (res["gfe_grid"], res["ssl_grid"]) != (4, 4):
                row.variant += f", K={res['gfe_grid']}/{res['ssl_grid']} (map {res['map_side']}²)"
            row.throughput, row.time_s = res["samples_s"], res["s_per_epoch"]
            row.peak_mib, row.delta_mib, row.mem_kind = res["peak_mib"], res["delta_mib"], res["mem_kind"]
            how = (f"extrapolated to {settings.train_images} images from {res['steps_timed']} timed steps"
                   if res["extrapolated"] else f"{settings.train_images} images, mean of {res['epochs']} epoch(s)")
            run_100 = 100 * row.time_s
            measured_100 = not res["extrapolated"] and res["epochs"] == 100
            parts = [how, f"100 epochs: {run_100:.0f} s ({'measured' if measured_100 else 'extrapolated'})",
                     f"{res['gflop_per_sample']:.1f} GFLOP/sample"]
            achieved = _achieved(res["gflop_per_sample"], res["samples_s"], settings, device_name, peak)
            if achieved:
                parts.append(achieved)
            if settings.is_cuda and not settings.quick:
                parts.append(f"target ≤ {GPU_TRAIN_TARGET_S:g} s for 100 epochs: "
                             f"{'met' if run_100 <= GPU_TRAIN_TARGET_S else 'NOT met'}")
            if not settings.is_cuda:
                parts.append(f"CPU time {res['cpu']:.0f} s for {res['wall']:.0f} s wall")
            row.note = "; ".join(parts)
            row.raw = res
        rows.append(row)

    # ---- scoring
    res, err = attempt(f"scoring ({fast_for_scoring.label})", job_score, fast_for_scoring)
    row = Row("scoring", f"backbone ({fast_for_scoring.label}) + reconstruction + upsample + blur",
              unit="img/s", time_unit="s/img", error=err)
    if res is not None:
        row.throughput, row.time_s = res["img_s"], res["wall"] / res["images"]
        row.peak_mib, row.delta_mib, row.mem_kind = res["peak_mib"], res["delta_mib"], res["mem_kind"]
        parts = [f"{res['images']} images of {settings.image_size}², batch {settings.infer_batch_size}, σ={settings.sigma:g}, "
                 f"decoded images in memory, untrained net" + ("" if settings.is_cuda else ", tuned malloc")]
        achieved = _achieved(res["gflop_per_img"], res["img_s"], settings, device_name, peak,
                             fast_for_scoring.precision)
        if achieved:
            parts.append(achieved)
        if settings.is_cuda and not settings.quick:
            parts.append(f"target ≥ {GPU_SCORE_TARGET:g} img/s: {'met' if res['img_s'] >= GPU_SCORE_TARGET else 'NOT met'}")
        row.note = "; ".join(parts)
        row.raw = res
    rows.append(row)

    # ---- metrics (numpy, always on the CPU)
    res, err = attempt("metrics", job_metrics)
    size = f"{settings.metrics_n} maps of {settings.metrics_size}²"
    names = [("au_pro", "AU-PRO (exact, FPR ≤ 0.3)", "au_pro_s", "peak_rss_au_pro_mib"),
             ("pixel_auroc", "pixel AUROC (exact)", "pixel_auroc_s", "peak_rss_pixel_auroc_mib")]
    for key, label, t_key, m_key in names:
        row = Row("metrics", label, unit="maps/s", time_unit="s", error=err, mem_kind="RSS")
        if res is not None:
            row.time_s = res[t_key]
            row.throughput = settings.metrics_n / res[t_key]
            row.peak_mib = res[m_key]
            row.delta_mib = res[m_key] - res["rss_job_start_mib"]
            row.note = f"{size}; value {res[key]:.4f}; CPU time {res[t_key.replace('_s', '_cpu_s')]:.2f} s"
            row.raw = res
        rows.append(row)
    row = Row("metrics", "AU-PRO + pixel AUROC", unit="maps/s", time_unit="s", error=err, mem_kind="RSS")
    if res is not None:
        row.time_s = res["fast_total_s"]
        row.throughput = settings.metrics_n / res["fast_total_s"]
        row.peak_mib = max(res["peak_rss_au_pro_mib"], res["peak_rss_pixel_auroc_mib"])
        row.delta_mib = row.peak_mib - res["rss_job_start_mib"]
        target = (f"target ≤ {METRICS_TARGET_S:g} s for 1725 maps of 256²: "
                  f"{'met' if res['fast_total_s'] <= METRICS_TARGET_S else 'NOT met'}"
                  if (settings.metrics_n, settings.metrics_size) == (1725, 256) else "not the MVTec size")
        row.note = f"{size}; best of {settings.reps}; {target}"
    rows.append(row)

    rows = [r for r in rows if r.error != _SKIPPED]
    load_end = os.getloadavg()[0]
    header = _header(settings, device_name, started, load_start, load_end)
    notes = _notes(settings, variants, results, acc, accuracy_net, acc_images, fast, naive)
    if peak is not None and naive and gflop_img and not settings.is_cuda:
        share = gflop_img * naive["img_s"] / 1e3 / peak["fp32"]
        notes.insert(3, f"The naive fp32 path already runs at {100 * share:.0f}% of this CPU's measured fp32 matmul "
                        f"ceiling ({peak['fp32'] * 1e3:.0f} GFLOP/s): no fp32 variant that does the same arithmetic can "
                        f"be more than ~{1 / share:.1f}× faster here; more needs native low-precision units "
                        "(AVX512-BF16/AMX, or a GPU) or less arithmetic.")
    markdown = _markdown(header, rows, notes)
    return BenchResult(settings, header, rows, notes, markdown, fast.key if fast else None)


def _header(settings: Settings, device_name: str, started: _dt.datetime, load_start: float, load_end: float) -> list[str]:
    dev = torch.device(settings.device)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        device = (f"CUDA {device_name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}, "
                  f"cuDNN {torch.backends.cudnn.version()}, cudnn.benchmark on, "
                  f"cuDNN TF32 {'allowed' if torch.backends.cudnn.allow_tf32 else 'off'} (PyTorch default) for fp32 convs")
    else:
        native = "yes" if native_low_precision(dev, "bf16") else "no (bf16 autocast is emulated)"
        threads = settings.threads or torch.get_num_threads()
        device = (f"CPU {device_name}, {torch.backends.cpu.get_cpu_capability()}, native bf16: {native}, "
                  f"torch threads: {threads}" + (" (--threads)" if settings.threads else ""))
    args = " ".join(shlex.quote(a) for a in settings.argv) or "(defaults)"
    return [
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- device: {device}",
        f"- host: {cpus} CPUs available (os.cpu_count {os.cpu_count()}), load average (1 min) "
        f"{load_start:.1f} at start, {load_end:.1f} at end"
        + (" — other processes were competing for the CPUs" if cpus and max(load_start, load_end) > cpus else ""),
        f"- software: torch {torch.__version__}, Python {platform.python_version()}, {platform.system()} {platform.release()}",
        f"- arguments: `python -m frad.bench {args}`",
        f"- settings: backbone {settings.backbone} ({settings.weights} weights) to layer {max(settings.layers)}, "
        f"L={list(settings.layers)}, C={settings.channels}, widths {list(settings.widths)}, "
        f"training batch {settings.batch_size}, backbone/scoring batch {settings.infer_batch_size}, {settings.image_size}², "
        f"{settings.train_images} train images, {settings.test_images} test images, metrics on "
        f"{settings.metrics_n} maps of {settings.metrics_size}², seed {settings.seed}"
        + (", QUICK smoke-test sizes" if settings.quick else ""),
    ]


def _notes(settings: Settings, variants: list[Variant], results: dict[str, dict[str, Any]],
           acc: dict[str, tuple[float, float]], accuracy_net: tuple[str, str], acc_images: int,
           fast: Variant | None, naive: dict[str, Any] | None) -> list[str]:
    notes = [
        f"Backbone rows: best of {settings.reps} timed batches of {settings.infer_batch_size} after a warm-up, "
        "input already on the device, outputs are the float32 per-layer maps; speed-up is img/s over the naive row.",
        f"Fused cos = cosine similarity per position between the fused features z (fuse_features to C={settings.channels}, "
        f"eq. 1–3) of the variant and of the naive fp32 path, mean / min over {acc_images} synthetic test images × "
        "positions (compiled variants on the bench net: those renders repeated to the timed batch size), "
        f"measured on {accuracy_net[0]} with {accuracy_net[1]} weights"
        + (f" (the benchmarked {settings.backbone} only has random weights here; its own values are in the "
           "notes column)" if settings.weights == "random" else "")
        + ".",
    ]
    best = max((v for v in variants if v != NAIVE and v.key in results), key=lambda v: results[v.key]["img_s"],
               default=None)
    if fast is not None and naive:
        s = results[fast.key]["img_s"] / naive["img_s"]
        reached = [v.label for v in variants if v != NAIVE and v.key in results
                   and results[v.key]["img_s"] / naive["img_s"] >= SPEEDUP_TARGET]
        verdict = "met" if s >= SPEEDUP_TARGET else "NOT met"
        notes.append(
            f"Fast path = the fastest variant whose mean fused cos is ≥ {COS_TARGET} (the naive path competes too): "
            f"{fast.label}, {s:.2f}× the naive path; scoring uses it. Target ≥ {SPEEDUP_TARGET}× with cos ≥ "
            f"{COS_TARGET}: {verdict}" + (f"; variants at ≥ {SPEEDUP_TARGET}× whatever their accuracy: "
                                          f"{', '.join(reached)}" if reached else
                                          f"; no variant reaches {SPEEDUP_TARGET}× here, whatever its accuracy")
            + (f" (fastest: {best.label}, {results[best.key]['img_s'] / naive['img_s']:.2f}×)" if best else "") + ".")
    elif "backbone" in settings.only:
        notes.append(f"No variant could be compared with the naive path at mean fused cos ≥ {COS_TARGET}: "
                     "scoring uses the naive path.")
    else:
        notes.append("Backbone rows were not run (--only): scoring uses the naive backbone path.")
    if not settings.is_cuda and any(not r.get("native", True) for r in results.values()):
        notes.append("This CPU has no native bf16 (no AVX512-BF16/AMX): bf16 autocast runs emulated and is slower "
                     "than fp32; it is timed on a smaller batch to keep the run short.")
    if not settings.compile:
        notes.append("torch.compile was not timed (add --compile; compiling takes tens of seconds per process).")
    mem = ("peak GPU memory allocated by torch (torch.cuda.max_memory_allocated) over the timed part, "
           "in brackets its rise above what the row's process had allocated before building its model and data"
           if settings.is_cuda else
           "peak resident set (VmHWM) of the process that ran the row, over the timed part "
           "(peak counter reset via /proc/self/clear_refs just before it); in brackets its rise above the "
           "resident set of that process before it built its model and data (= model + inputs + activations "
           "+ allocator caches; the rest is Python and the torch libraries)")
    notes.append(f"Peak mem: {mem}" + ("; every row ran in its own fresh process." if settings.isolate
                                       else "; all rows ran in one process (--no-isolate), so the rises are "
                                       "not separable.")
                 + " Metrics rows: CPU RSS, the synthetic maps and masks included in the rise.")
    notes.append("Training and scoring: random per-layer maps of the cached shapes (fp16) / an untrained net; the full "
                 f"model (GFE, shuffle loss λ=0.1, K=4 unless the row says otherwise, widths {list(settings.widths)}), "
                 "Adam (torch multi-tensor kernels, as frad.train runs it).")
    return notes


def _markdown(header: list[str], rows: list[Row], notes: list[str]) -> str:
    from tabulate import tabulate

    table = []
    for r in rows:
        if r.error is not None:
            table.append([r.stage, r.variant, "FAILED", "", "", "", "", r.error])
            continue
        thr = f"{_fmt(r.throughput)} {r.unit}" if r.throughput is not None else "–"
        tim = f"{_fmt(r.time_s)} {r.time_unit}" if r.time_s is not None else "–"
        spd = f"{r.speedup:.2f}×" if r.speedup is not None else ""
        table.append([r.stage, r.variant, thr, tim, spd, _cos(r.cos) if r.stage == "backbone" else "", _mem(r), r.note])
    text = tabulate(table, headers=["stage", "variant", "throughput", "time", "vs naive", "fused cos mean / min",
                                    "peak mem", "notes"], tablefmt="github", disable_numparse=True)
    return ("# frad speed benchmark\n\n" + "\n".join(header) + "\n\n" + text + "\n\n"
            + "\n".join(f"- {n}" for n in notes) + "\n")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def main(argv: Sequence[str] | None = None) -> int:
    from frad.io import write_text

    argv = list(sys.argv[1:] if argv is None else argv)
    settings = resolve_settings(parse_args(argv), argv)
    result = run_benchmark(settings, log=lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(settings.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, result.markdown)  # atomic: the report stage never reads a half-written table
    if settings.json_out:
        payload = {"settings": asdict(settings), "header": result.header, "notes": result.notes,
                   "fast_variant": result.fast_variant,
                   "rows": [{k: v for k, v in asdict(r).items()} for r in result.rows]}
        Path(settings.json_out).parent.mkdir(parents=True, exist_ok=True)
        write_text(Path(settings.json_out), json.dumps(_jsonable(payload), indent=2) + "\n")
    print(result.markdown)
    print(f"written to {out}", file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    # Re-enter through the importable module so that the jobs pickle as frad.bench.<name>; without a
    # module spec, worker processes load this file by path instead of re-running `-m frad.bench`
    # (which warns because the module is already imported there).
    __spec__ = None
    from frad.bench import main as _main

    sys.exit(_main())
