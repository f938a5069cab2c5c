"""The notes column of the rows of ``python -m bench`` (``bench.run`` runs the jobs and fills the numbers): how
each number was measured or extrapolated, what a full run would take, the achieved share of the device's ceiling
(passed in, ``table.achieved``), CPU time, and the ``--target`` verdicts."""

from __future__ import annotations

from typing import Any

from . import table
from .settings import NAIVE, Mode, Settings
from .targets import verdict


def _join(parts: list[str]) -> str:
    return "; ".join(p for p in parts if p)


def backbone_note(s: Settings, mode: Mode, res: dict[str, Any], achieved: str) -> str:
    """A backbone row: the job's own notes, compile time, the cosine on the benchmarked random-weights net,
    CPU time, the achieved FLOP rate."""
    parts = list(res["note"])
    if mode.compile:
        parts.append(f"first call (compile) {res['first_call_s']:.0f} s")
    if s.weights == "random" and mode != NAIVE:
        parts.append(
            f"fused cos on {s.backbone} random weights ({res['cos_own_images']} images): "
            f"{table.cos_text(tuple(res['cos_own']))}"
        )
    if not s.is_cuda:
        parts.append(f"CPU time {res['cpu_s_per_batch']:.2f} s/batch")
    parts.append(achieved)
    return _join(parts)


def training_note(s: Settings, res: dict[str, Any], achieved: str, targets: dict[str, float]) -> str:
    """A training row: measured or extrapolated, a 100-epoch run, GFLOP/sample, the target verdict, CPU time."""
    how = (
        f"extrapolated to {s.train_images} images from {res['steps_timed']} timed steps"
        if res["extrapolated"]
        else f"{s.train_images} images, mean of {res['epochs']} epoch(s)"
    )
    run_100 = 100 * res["s_per_epoch"]
    measured_100 = not res["extrapolated"] and res["epochs"] == 100
    return _join(
        [
            how,
            f"100 epochs: {run_100:.0f} s ({'measured' if measured_100 else 'extrapolated'})",
            f"{res['gflop_per_sample']:.1f} GFLOP/sample",
            achieved,
            verdict(targets, "train_100ep_s", run_100),
            "" if s.is_cuda else f"CPU time {res['cpu']:.0f} s for {res['wall']:.0f} s wall",
        ]
    )


def scoring_note(s: Settings, res: dict[str, Any], achieved: str, targets: dict[str, float]) -> str:
    """The scoring row: what was timed, the achieved FLOP rate, the target verdict."""
    return _join(
        [
            f"{res['images']} images of {s.image_size}², batch {s.infer_batch_size}, σ={s.sigma:g}, "
            "decoded images in memory, untrained net" + ("" if s.is_cuda else ", tuned malloc"),
            achieved,
            verdict(targets, "scoring_img_s", res["img_s"]),
        ]
    )


def baseline_note(s: Settings, method: str, res: dict[str, Any]) -> str:
    """A baseline row: the fit phases, the maps, CPU time."""
    info = res["info"]
    if method == "padim":
        parts = [f"fit {res['fit_s']:.3g} s on {res['train_images']} images ({info['channels_total']} channels)"]
    elif method == "patchcore":
        parts = [
            f"memory bank {info['bank_s']:.3g} s ({info['bank_patches']} patches of {res['train_images']} images)",
            f"greedy coreset {info['coreset_s']:.3g} s ({info['coreset_patches']} patches)",
        ]
    else:
        how = (
            f"extrapolated to {res['train_images']} images from {res['fit_images']} images, 1 epoch"
            if res["extrapolated"]
            else f"{res['train_images']} images, mean of {res['epochs']} epoch(s)"
        )
        run_s = res["s_per_epoch"] * res["run_epochs"]
        parts = [f"{res['samples_s']:.3g} samples/s", how, f"a run of {res['run_epochs']} epochs: {run_s:.0f} s"]
    parts.append(
        f"maps of {res['test_images']} test images in {res['score_s']:.3g} s (batch {s.infer_batch_size}, "
        f"upsample + σ={s.sigma:g} blur)"
    )
    if not s.is_cuda:
        parts.append(f"CPU time {res['cpu']:.3g} s for {res['wall']:.3g} s wall, tuned malloc")
    return "; ".join(parts)


def coreset_note(s: Settings, res: dict[str, Any]) -> str:
    """The coreset row: the bank's features, the dense loop and its memory floor, the same first rows, the load."""
    return "; ".join(
        [
            f"EfficientNet-Lite0 ImageNet features of {s.train_images} synthetic bottle renders, dims {res['dims']}",
            f"dense loop (every row each step): {res['dense_s']:.0f} s (extrapolated from "
            f"{res['dense_steps_timed']} steps), {res['dense_s'] / res['wall']:.1f}× slower",
            f"its memory floor {res['dense_floor_s']:.0f} s ({res['bank_mb']:.0f} MB per step at "
            f"{res['bandwidth_gb_s']:.1f} GB/s)",
            f"same first {res['dense_steps_timed']} rows as the dense loop: {'yes' if res['same_first_steps'] else 'NO'}",
            f"load {res['load']:.1f}",
        ]
    )


def ceiling_share_note(s: Settings, peak: dict[str, Any] | None, naive: dict[str, Any] | None) -> str | None:
    """CPU: how close the naive path already is to the measured fp32 matmul ceiling."""
    gflop_img = naive.get("gflop_per_img") if naive else None
    if peak is None or not gflop_img or s.is_cuda:
        return None
    share = gflop_img * naive["img_s"] / 1e3 / peak["fp32"]
    return (
        f"The naive fp32 path already runs at {100 * share:.0f}% of this CPU's measured fp32 matmul "
        f"ceiling ({peak['fp32'] * 1e3:.0f} GFLOP/s): no fp32 mode that does the same arithmetic can "
        f"be more than ~{1 / share:.1f}× faster here; more needs native low-precision units "
        "(AVX512-BF16/AMX, or a GPU) or less arithmetic."
    )
