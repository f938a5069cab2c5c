"""Rendering of ``python -m bench``: the rows, the header lines, the notes, one Markdown table, JSON."""

from __future__ import annotations

import math
import os
import platform
import shlex
from dataclasses import dataclass, field
from typing import Any

from .measure import native_low_precision
from .settings import NAIVE, Mode, Settings

# Dense bf16 tensor-core peak (TFLOP/s, no sparsity) by GPU name fragment, most specific first.
GPU_BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H200", 989.0),
    ("H100", 989.0),
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
    ("RTX 3090", 71.0),
)
TITLE = "# frad speed benchmark"


@dataclass
class Row:
    stage: str
    mode: str
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

    def set_memory(self, res: dict[str, Any]) -> None:
        """Peak memory fields from a job's ``PeakMemory.record()``."""
        self.peak_mib, self.delta_mib, self.mem_kind = res["peak_mib"], res["delta_mib"], res["mem_kind"]


def fmt(x: float | None, digits: int = 3) -> str:
    """``digits`` significant digits (no exponent); '–' for a missing or non-finite number."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if x == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def _mem(row: Row) -> str:
    if row.peak_mib is None or not math.isfinite(row.peak_mib):
        return "–"
    delta = "" if row.delta_mib is None or not math.isfinite(row.delta_mib) else f" (+{max(row.delta_mib, 0):.0f})"
    return f"{row.peak_mib:.0f} MiB {row.mem_kind}{delta}"


def cos_text(c: tuple[float, float] | None) -> str:
    return "–" if c is None else f"{c[0]:.6f} / {c[1]:.6f}"


def gpu_peak(name: str) -> float | None:
    """Datasheet dense bf16 TFLOP/s of a known GPU, by name."""
    return next((peak for fragment, peak in GPU_BF16_PEAK_TFLOPS if fragment in name), None)


def achieved(
    flops_per_item: float | None,
    items_per_s: float | None,
    settings: Settings,
    device_name: str,
    peak: dict[str, Any] | None = None,
    precision: str = "fp32",
) -> str:
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
        sheet = gpu_peak(device_name)
        if sheet:
            shares.append(f"{100 * rate / sheet:.1f}% of the ~{sheet:.0f} TFLOP/s dense bf16 datasheet peak")
        text = f"{rate:.1f} TFLOP/s"
    else:
        text = f"{fmt(rate * 1e3)} GFLOP/s"
    return text + (f" ({', '.join(shares)})" if shares else "")


def header(settings: Settings, device_text: str, started: str, load_start: float, load_end: float) -> list[str]:
    """The lines above the table: date, device, host load, software, arguments, sizes."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import torch

    args = " ".join(shlex.quote(a) for a in settings.argv) or "(defaults)"
    return [
        f"- date: {started}",
        f"- device: {device_text}",
        f"- host: {cpus} CPUs available (os.cpu_count {os.cpu_count()}), load average (1 min) "
        f"{load_start:.1f} at start, {load_end:.1f} at end"
        + (" — other processes were competing for the CPUs" if cpus and max(load_start, load_end) > cpus else ""),
        f"- software: torch {torch.__version__}, Python {platform.python_version()}, {platform.system()} {platform.release()}",
        f"- arguments: `python -m bench {args}`",
        f"- settings: backbone {settings.backbone} ({settings.weights} weights) to layer {max(settings.layers)}, "
        f"L={list(settings.layers)}, C={settings.channels}, widths {list(settings.widths)}, "
        f"training batch {settings.batch_size}, backbone/scoring batch {settings.infer_batch_size}, {settings.image_size}², "
        f"{settings.train_images} train images, {settings.test_images} test images, metrics on "
        f"{settings.metrics_n} maps of {settings.metrics_size}², seed {settings.seed}"
        + (", QUICK smoke-test sizes" if settings.quick else ""),
    ]


def device_text(settings: Settings, device_name: str) -> str:
    """One line on the device: the GPU and its libraries, or the CPU, its vector unit and threads."""
    import torch

    dev = torch.device(settings.device)
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        return (
            f"CUDA {device_name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}, "
            f"cuDNN {torch.backends.cudnn.version()}, cudnn.benchmark on, "
            f"cuDNN TF32 {'allowed' if torch.backends.cudnn.allow_tf32 else 'off'} (PyTorch default) for fp32 convs"
        )
    native = "yes" if native_low_precision(dev, "bf16") else "no (bf16 autocast is emulated)"
    threads = settings.threads or torch.get_num_threads()
    return (
        f"CPU {device_name}, {torch.backends.cpu.get_cpu_capability()}, native bf16: {native}, "
        f"torch threads: {threads}" + (" (--threads)" if settings.threads else "")
    )


def accuracy_note(settings: Settings, accuracy_net: tuple[str, str], acc_images: int) -> list[str]:
    return [
        f"Backbone rows: best of {settings.reps} timed batches of {settings.infer_batch_size} after a warm-up, "
        "input already on the device, outputs are the float32 per-layer maps; speed-up is img/s over the naive row.",
        f"Fused cos = cosine similarity per position between the fused features z (fuse_features to C={settings.channels}, "
        f"eq. 1–3) of the mode and of the naive fp32 path, mean / min over {acc_images} synthetic test images × "
        "positions (compiled modes on the bench net: those renders repeated to the timed batch size), "
        f"measured on {accuracy_net[0]} with {accuracy_net[1]} weights"
        + (
            f" (the benchmarked {settings.backbone} only has random weights here; its own values are in the "
            "notes column)"
            if settings.weights == "random"
            else ""
        )
        + ".",
    ]


def closing_notes(settings: Settings, emulated: bool) -> list[str]:
    """Notes on emulated precision, compile, peak memory and the training/scoring inputs."""
    notes = []
    if emulated:
        notes.append(
            "This CPU has no native bf16 (no AVX512-BF16/AMX): bf16 autocast runs emulated and is slower "
            "than fp32; it is timed on a smaller batch to keep the run short."
        )
    if not settings.compile:
        notes.append("torch.compile was not timed (add --compile; compiling takes tens of seconds per process).")
    mem = (
        "peak GPU memory allocated by torch (torch.cuda.max_memory_allocated) over the timed part, "
        "in brackets its rise above what the row's process had allocated before building its model and data"
        if settings.is_cuda
        else "peak resident set (VmHWM) of the process that ran the row, over the timed part "
        "(peak counter reset via /proc/self/clear_refs just before it); in brackets its rise above the "
        "resident set of that process before it built its model and data (= model + inputs + activations "
        "+ allocator caches; the rest is Python and the torch libraries)"
    )
    notes.append(
        f"Peak mem: {mem}"
        + (
            "; every row ran in its own fresh process."
            if settings.isolate
            else "; all rows ran in one process (--no-isolate), so the rises are not separable."
        )
        + " Metrics rows: CPU RSS, the synthetic maps and masks included in the rise."
    )
    if {"training", "scoring"} & set(settings.only):
        notes.append(
            "Training and scoring: random per-layer maps of the cached shapes (fp16) / an untrained net; the full "
            f"model (GFE, shuffle loss λ=0.1, K=4 unless the row says otherwise, widths "
            f"{list(settings.widths)}), Adam (torch multi-tensor kernels, as frad.train runs it)."
        )
    if "compare" in settings.only:
        notes.append(
            "Comparison methods: `fit_and_score` of frad.padim.method / frad.patchcore.method / frad.rd.method (what `python -m "
            f"pipeline.compare <method>` runs) on random fp16 per-layer maps of the cached shapes, {settings.train_images} train "
            f"and {settings.method_test_images} test images, in memory, after a warm-up on one batch; throughput = "
            "test images whose upsampled, blurred anomaly maps are made per second (after the fit); time = PaDiM's "
            "Gaussian fit, PatchCore's memory bank + greedy k-center coreset, RD's student s/epoch; peak memory over "
            "fit and maps together."
        )
    return notes


def fast_path_note(
    settings: Settings, modes: list[Mode], img_s: dict[str, float], fast: Mode | None, target: str
) -> str:
    """Which mode scoring uses and why; with a backbone_speedup target, which modes reach it."""
    naive = img_s.get(NAIVE.key)
    if fast is None or not naive:
        if "backbone" not in settings.only:
            return "Backbone rows were not run (--only): scoring uses the naive backbone path."
        return (
            f"No mode could be compared with the naive path at mean fused cos ≥ {settings.fast_cos}: "
            "scoring uses the naive path."
        )
    text = (
        f"Fast path = the fastest mode whose mean fused cos is ≥ {settings.fast_cos} (the naive path "
        f"competes too): {fast.label}, {img_s[fast.key] / naive:.2f}× the naive path; scoring uses it"
    )
    goal = settings.target_map.get("backbone_speedup")
    if goal is not None:
        reached = [v.label for v in modes if v != NAIVE and v.key in img_s and img_s[v.key] / naive >= goal]
        text += f". Speed-up {target}; modes at ≥ {goal:g}× whatever their accuracy: " + (
            ", ".join(reached) if reached else "none"
        )
    return text + "."


def markdown(head: list[str], rows: list[Row], notes: list[str]) -> str:
    from tabulate import tabulate

    table = []
    for r in rows:
        if r.error is not None:
            table.append([r.stage, r.mode, "FAILED", "", "", "", "", r.error])
            continue
        thr = f"{fmt(r.throughput)} {r.unit}" if r.throughput is not None else "–"
        tim = f"{fmt(r.time_s)} {r.time_unit}" if r.time_s is not None else "–"
        spd = f"{r.speedup:.2f}×" if r.speedup is not None else ""
        table.append(
            [r.stage, r.mode, thr, tim, spd, cos_text(r.cos) if r.stage == "backbone" else "", _mem(r), r.note]
        )
    text = tabulate(
        table,
        headers=["stage", "mode", "throughput", "time", "vs naive", "fused cos mean / min", "peak mem", "notes"],
        tablefmt="github",
        disable_numparse=True,
    )
    return f"{TITLE}\n\n" + "\n".join(head) + "\n\n" + text + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def jsonable(obj: Any) -> Any:
    """``obj`` with tuples as lists, non-finite floats as None and numpy/torch scalars as numbers."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
