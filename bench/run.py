"""Orchestration of ``python -m bench``: every job in its own fresh process (forked from a server that imported
torch once), so each row's peak memory is its own; a failed row is reported and the others still run.

Rows, all measured in the same run on the same machine:

* the device's matrix-product ceiling (fp32 on CPU; fp32 and bf16 on CUDA), against which the achieved FLOP
  rates are quoted;
* backbone feature extraction, img/s: the naive path (fp32, eager, NCHW) against channels_last fp32 (with the
  tuned allocator on CPU), bf16 autocast (and fp16 on CUDA, torch.compile with ``--compile``), with the
  deviation of the *fused* features (eq. 1–3) from the naive path. When the benchmarked backbone has random
  weights the accuracy is measured on tf_efficientnet_lite0 with its ImageNet weights, and the table says so;
* training, s/epoch and samples/s: the full model on random per-layer maps of the cached shapes, in memory;
* scoring, img/s: backbone (fast path) + reconstruction net + upsampling + Gaussian blur, batched;
* compare: PaDiM, PatchCore and RD (``frad.<padim|patchcore|rd>.method.fit_and_score``) on random per-layer maps of one
  bottle-size category, in memory: fit time (PaDiM fit, PatchCore memory bank + greedy coreset, RD s/epoch) and
  img/s of their anomaly maps;
* coreset: PatchCore's greedy coreset alone at 0.1 on a bottle-size bank of real (EfficientNet-Lite0) features,
  against the dense loop and its memory-bandwidth floor;
* metrics: exact AU-PRO and pixel AUROC on an MVTec-size synthetic test set (``bench.metrics``).
"""

from __future__ import annotations

import datetime as _dt
import multiprocessing as mp
import os
import time
import traceback
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from frad.methods import METHODS

from . import jobs, method_jobs, row_notes, table
from .measure import cpu_name
from .settings import NAIVE, Mode, Settings
from .table import Row
from .targets import verdict

ACCURACY_NET = ("tf_efficientnet_lite0", "imagenet")  # real weights shipped offline (pip package)
SKIPPED = "skipped (--only)"
SECTION = {
    jobs.job_peak: "ceiling",
    jobs.job_backbone: "backbone",
    jobs.job_accuracy: "backbone",
    jobs.job_train: "training",
    jobs.job_score: "scoring",
    method_jobs.job_method: "compare",
    method_jobs.job_coreset: "coreset",
    jobs.job_metrics: "metrics",
}
_CONTEXT: Any = None


@dataclass
class BenchResult:
    settings: Settings
    header: list[str]
    rows: list[Row]
    notes: list[str]
    markdown: str
    fast_mode: str | None

    @property
    def ok(self) -> bool:
        return all(r.error is None for r in self.rows)


def modes_for(settings: Settings) -> list[Mode]:
    """The backbone modes timed on this device."""
    cpu = not settings.is_cuda
    out = [NAIVE, Mode("fp32-cl", "fp32", True)]
    if cpu:
        out.append(Mode("fp32-cl-malloc", "fp32", True, malloc=True))  # what the pipeline stages run
    out.append(Mode("bf16-cl", "bf16", True))
    if not cpu:
        out.append(Mode("fp16-cl", "fp16", True))
    if settings.compile:  # CPU: fp32 (bf16 is emulated there); CUDA: the bf16 fast path, compiled
        out.append(Mode("compile-fp32-cl" if cpu else "compile-bf16-cl", "fp32" if cpu else "bf16", True, compile=True))
    return out


def _context(backbone: str) -> Any:
    """A forkserver that imported torch once: each job is a fresh, cheap child process (clean peak
    memory, no OpenMP/CUDA state inherited from this process)."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = mp.get_context("forkserver")
        heavy = ["torchvision"] if backbone == "wide_resnet50_2" else ["timm"]
        preload = ["bench.jobs", "bench.method_jobs", "frad.backbone", "frad.train", "frad.score"]
        methods = [f"frad.{m}" for m in METHODS]
        _CONTEXT.set_forkserver_preload([*preload, *methods, *heavy])
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


class Runner:
    """One benchmark run: runs the jobs of the selected row groups and turns their numbers into rows."""

    def __init__(self, settings: Settings, log: Callable[[str], None]):
        self.settings, self.log = settings, log
        self.targets = settings.target_map
        dev = torch.device(settings.device)
        self.device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()
        self.peak: dict[str, Any] | None = None  # the measured matmul ceiling

    def attempt(self, what: str, fn: Callable[..., dict[str, Any]], *args: Any) -> tuple[dict | None, str | None]:
        """(job result, None), or (None, the error or SKIPPED)."""
        if SECTION[fn] not in self.settings.only:
            return None, SKIPPED
        self.log(f"[bench] {what} ...")
        t0 = time.perf_counter()
        try:
            res = _run_job(self.settings, fn, *args)
        except Exception as err:  # a failed row is reported, the others still run
            self.log(f"[bench] {what} FAILED: {type(err).__name__}: {err}")
            traceback.print_exc()
            return None, f"{type(err).__name__}: {err}"
        self.log(f"[bench] {what} done in {time.perf_counter() - t0:.0f} s")
        return res, None

    def achieved(self, gflop: float | None, per_s: float | None, precision: str = "fp32") -> str:
        return table.achieved(gflop, per_s, self.settings, self.device_name, self.peak, precision)

    def ceiling_row(self) -> Row:
        peak, err = self.attempt("matmul ceiling", jobs.job_peak)
        row = Row("ceiling", "", unit="TFLOP/s", error=err)
        if peak is not None:
            self.peak = peak
            kinds = [k for k in ("fp32", "bf16") if k in peak]
            row.mode = f"{' and '.join(kinds)} matmul {peak['n']}×{peak['n']}"
            row.throughput, row.unit = peak[kinds[-1]], f"TFLOP/s {kinds[-1]}"
            row.note = (
                "; ".join(f"{k}: {peak[k]:.3g} TFLOP/s" for k in kinds) + "; best of several products, random data"
            )
            row.raw = peak
        return row

    def backbone_rows(self, modes: list[Mode]) -> tuple[list[Row], dict[str, dict[str, Any]]]:
        """One row per mode (numbers only; ``annotate`` adds accuracy and notes) and the raw results."""
        results: dict[str, dict[str, Any]] = {}
        rows = []
        for v in modes:
            res, err = self.attempt(f"backbone {v.label}", jobs.job_backbone, v)
            row = Row(
                "backbone",
                v.label + (" (naive)" if v == NAIVE else ""),
                unit="img/s",
                time_unit="s/batch",
                error=err,
                mem_kind="GPU" if self.settings.is_cuda else "RSS",
            )
            if res is not None:
                results[v.key] = res
                row.throughput, row.time_s, row.time_unit = (
                    res["img_s"],
                    res["s_per_batch"],
                    f"s/batch of {res['batch']}",
                )
                row.set_memory(res)
                row.raw = res
            rows.append(row)
        return rows, results

    def accuracy(
        self, modes: list[Mode], results: dict[str, dict[str, Any]]
    ) -> tuple[dict[str, tuple[float, float]], tuple[str, str], Row | None]:
        """Fused-feature cosine of every mode: on the benchmarked net when its weights are real, else on
        ACCURACY_NET; (cosines by mode key, the net measured, a failure row or None)."""
        s = self.settings
        if s.weights != "random":
            return {k: tuple(r["cos_own"]) for k, r in results.items()}, (s.backbone, s.weights), None
        res, err = self.attempt(
            f"fused-feature accuracy on {ACCURACY_NET[0]} ({ACCURACY_NET[1]})",
            jobs.job_accuracy,
            ACCURACY_NET[0],
            ACCURACY_NET[1],
            [v for v in modes if v != NAIVE],
        )
        acc = {NAIVE.key: (1.0, 1.0)}
        if res is None:
            return acc, ACCURACY_NET, Row("accuracy", f"{ACCURACY_NET[0]} ({ACCURACY_NET[1]})", error=err)
        acc.update({k: tuple(c) for k, c in res["cos"].items()})
        return acc, ACCURACY_NET, None

    def annotate(
        self,
        modes: list[Mode],
        rows: list[Row],
        results: dict[str, dict[str, Any]],
        acc: dict[str, tuple[float, float]],
    ) -> None:
        """Speed-up, fused cos and the notes column of the backbone rows."""
        naive = results.get(NAIVE.key)
        gflop_img = naive.get("gflop_per_img") if naive else None
        for v, row in zip(modes, rows):
            res = results.get(v.key)
            if res is None:
                continue
            row.cos = acc.get(v.key)
            row.speedup = res["img_s"] / naive["img_s"] if naive else None
            achieved = self.achieved(gflop_img, res["img_s"], v.precision)
            row.note = row_notes.backbone_note(self.settings, v, res, achieved)

    def fast_path(
        self,
        modes: list[Mode],
        rows: list[Row],
        results: dict[str, dict[str, Any]],
        acc: dict[str, tuple[float, float]],
    ) -> Mode | None:
        """The fastest mode that keeps the fused features (mean cos ≥ --fast-cos); the naive path competes too."""
        eligible = [v for v in modes if v.key in results and acc.get(v.key) and acc[v.key][0] >= self.settings.fast_cos]
        fast = max(eligible, key=lambda v: results[v.key]["img_s"], default=None)
        for v, row in zip(modes, rows):
            if v == fast:
                row.mode += " ← fast path"
        return fast

    def training_rows(self) -> list[Row]:
        """CPU: glibc's default allocator and the tuned one the pipeline stages use; CUDA: one row."""
        s = self.settings
        rows = []
        for malloc in (False,) if s.is_cuda else (False, True):
            res, err = self.attempt("training" + (" (tuned malloc)" if malloc else ""), jobs.job_train, malloc)
            widths = "/".join(map(str, s.widths))
            alloc = "" if s.is_cuda else ", tuned malloc (as the pipeline)" if malloc else ", default malloc"
            row = Row(
                "training",
                f"full model (GFE + shuffle), C={s.channels}, widths {widths}, batch {s.batch_size}" + alloc,
                unit="samples/s",
                time_unit="s/epoch",
                error=err,
            )
            if res is not None:
                self._fill_training(row, res)
            rows.append(row)
        return rows

    def _fill_training(self, row: Row, res: dict[str, Any]) -> None:
        if (res["gfe_grid"], res["ssl_grid"]) != (4, 4):
            row.mode += f", K={res['gfe_grid']}/{res['ssl_grid']} (map {res['map_side']}²)"
        row.throughput, row.time_s = res["samples_s"], res["s_per_epoch"]
        row.set_memory(res)
        achieved = self.achieved(res["gflop_per_sample"], res["samples_s"])
        row.note = row_notes.training_note(self.settings, res, achieved, self.targets)
        row.raw = res

    def scoring_row(self, mode: Mode) -> Row:
        res, err = self.attempt(f"scoring ({mode.label})", jobs.job_score, mode)
        row = Row(
            "scoring",
            f"backbone ({mode.label}) + reconstruction + upsample + blur",
            unit="img/s",
            time_unit="s/img",
            error=err,
        )
        if res is not None:
            row.throughput, row.time_s = res["img_s"], res["wall"] / res["images"]
            row.set_memory(res)
            achieved = self.achieved(res["gflop_per_img"], res["img_s"], mode.precision)
            row.note = row_notes.scoring_note(self.settings, res, achieved, self.targets)
            row.raw = res
        return row

    def baseline_rows(self) -> list[Row]:
        """One row per same-harness baseline: img/s of its anomaly maps, its fit time, peak memory."""
        return [self._baseline_row(method) for method in method_jobs.METHOD_NAMES]

    def coreset_row(self) -> Row:
        """PatchCore's greedy coreset alone (the pruned loop the pipeline runs on the CPU) against the dense loop."""
        res, err = self.attempt("PatchCore greedy coreset", method_jobs.job_coreset)
        row = Row("coreset", "PatchCore greedy coreset", unit="rows/s", time_unit="s", error=err)
        if res is None:
            return row
        row.mode = (
            f"PatchCore greedy coreset {res['coreset']:g} of {res['bank_rows']} rows, projection {res['projection']}"
        )
        row.throughput, row.time_s = res["n"] / res["wall"], res["wall"]
        row.set_memory(res)
        row.note = row_notes.coreset_note(self.settings, res)
        row.raw = res
        return row

    def _baseline_row(self, method: str) -> Row:
        s = self.settings
        res, err = self.attempt(f"baseline {method}", method_jobs.job_method, method)
        cfg = method_jobs.method_config(s, method)
        if method == "padim":
            label, time_unit = f"PaDiM d={cfg.d}", "s fit"
        elif method == "patchcore":
            label = f"PatchCore coreset {cfg.coreset:g}, dims {cfg.dims}, projection {cfg.projection}"
            time_unit = "s bank + coreset"
        else:
            label, time_unit = f"RD student, lr {cfg.lr:g}, batch {cfg.batch_size}", "s/epoch"
        layers = f", layers {'+'.join(map(str, cfg.layers))}"
        row = Row("compare", label + layers, unit="img/s", time_unit=time_unit, error=err)
        if res is None:
            return row
        row.throughput, row.time_s = res["img_s"], res["s_per_epoch"] if method == "rd" else res["fit_s"]
        row.set_memory(res)
        row.note = row_notes.baseline_note(s, method, res)
        row.raw = res
        return row

    def metrics_rows(self) -> list[Row]:
        """AU-PRO, pixel AUROC and their sum (numpy, always on the CPU)."""
        s = self.settings
        res, err = self.attempt("metrics", jobs.job_metrics)
        size = f"{s.metrics_n} maps of {s.metrics_size}²"
        rows = []
        for key, label in (("au_pro", "AU-PRO (exact, FPR ≤ 0.3)"), ("pixel_auroc", "pixel AUROC (exact)")):
            row = Row("metrics", label, unit="maps/s", time_unit="s", error=err, mem_kind="RSS")
            if res is not None:
                row.time_s, row.peak_mib = res[f"{key}_s"], res[f"peak_rss_{key}_mib"]
                row.throughput, row.delta_mib = s.metrics_n / row.time_s, row.peak_mib - res["rss_job_start_mib"]
                row.note = f"{size}; value {res[key]:.4f}; CPU time {res[f'{key}_cpu_s']:.2f} s"
                row.raw = res
            rows.append(row)
        row = Row("metrics", "AU-PRO + pixel AUROC", unit="maps/s", time_unit="s", error=err, mem_kind="RSS")
        if res is not None:
            row.time_s = res["fast_total_s"]
            row.throughput = s.metrics_n / row.time_s
            row.peak_mib = max(res["peak_rss_au_pro_mib"], res["peak_rss_pixel_auroc_mib"])
            row.delta_mib = row.peak_mib - res["rss_job_start_mib"]
            row.note = "; ".join(
                p for p in (f"{size}; best of {s.reps}", verdict(self.targets, "metrics_s", row.time_s)) if p
            )
        rows.append(row)
        more = (
            ("ap_f1_s", "pixel AP + pixel F1-max (exact)", s.metrics_n, size, "ap_f1_s"),
            ("one_pass_s", "all seven metrics, one pass (as the score stages)", s.metrics_n, size, None),
            (
                "intervals_s",
                "95% intervals of all seven metrics (1,000 resamples)",
                res["intervals_images"] if res else 0,
                f"one category of {res['intervals_images'] if res else 0} maps of {s.metrics_size}² (bottle's size)",
                "intervals_s",
            ),
        )
        for key, label, maps_n, what, target in more:
            row = Row("metrics", label, unit="maps/s", time_unit="s", error=err, mem_kind="RSS")
            if res is not None:
                row.time_s = res[key]
                row.throughput = maps_n / row.time_s
                row.peak_mib = res[f"peak_rss_{key.removesuffix('_s')}_mib"]
                row.delta_mib = row.peak_mib - res["rss_job_start_mib"]
                cpu = res[key.replace("_s", "_cpu_s")]
                parts = (
                    what,
                    f"best of {s.reps}; CPU time {cpu:.2f} s",
                    verdict(self.targets, target, row.time_s) if target else "",
                )
                row.note = "; ".join(p for p in parts if p)
            rows.append(row)
        return rows


def run_benchmark(settings: Settings, log: Callable[[str], None] = print) -> BenchResult:
    """Run every selected row group (each job in its own process unless ``settings.isolate`` is false) and
    build the table."""
    runner = Runner(settings, log)
    load_start, started = os.getloadavg()[0], _dt.datetime.now(_dt.timezone.utc)
    modes = modes_for(settings)
    rows = [runner.ceiling_row()]
    bb_rows, results = runner.backbone_rows(modes)
    rows += bb_rows
    acc, accuracy_net, failed = runner.accuracy(modes, results)
    rows += [failed] if failed else []
    runner.annotate(modes, bb_rows, results, acc)
    fast = runner.fast_path(modes, bb_rows, results, acc)
    rows += runner.training_rows()
    rows.append(runner.scoring_row(fast or NAIVE))
    rows += runner.baseline_rows()
    rows.append(runner.coreset_row())
    rows += runner.metrics_rows()
    rows = [r for r in rows if r.error != SKIPPED]

    naive = results.get(NAIVE.key)
    img_s = {k: r["img_s"] for k, r in results.items()}
    speedup = (
        verdict(settings.target_map, "backbone_speedup", img_s[fast.key] / naive["img_s"]) if fast and naive else ""
    )
    notes = table.accuracy_note(settings, accuracy_net, settings.accuracy_images) if "backbone" in settings.only else []
    if {"backbone", "scoring"} & set(settings.only):
        notes.append(table.fast_path_note(settings, modes, img_s, fast, speedup))
    share = row_notes.ceiling_share_note(settings, runner.peak, naive)
    notes += [share] if share else []
    notes += table.closing_notes(settings, any(not r.get("native", True) for r in results.values()))
    head = table.header(
        settings,
        table.device_text(settings, runner.device_name),
        started.strftime("%Y-%m-%d %H:%M UTC"),
        load_start,
        os.getloadavg()[0],
    )
    return BenchResult(settings, head, rows, notes, table.markdown(head, rows, notes), fast.key if fast else None)
