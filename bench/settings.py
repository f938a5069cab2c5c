"""Options of ``python -m bench``: the command line, its defaults (full or ``--quick``), one frozen Settings."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from frad.device import resolve_device
from frad.errors import FradError

from .targets import add_target_option

SECTIONS = ("ceiling", "backbone", "training", "scoring", "compare", "coreset", "metrics")  # row groups, for --only
TARGETS = ("backbone_speedup", "scoring_img_s", "train_100ep_s", "metrics_s")  # names --target takes
FULL_OUT = "reports/benchmark.md"  # the full table the report stage appends
FAST_COS = 0.999  # default: mean fused-feature cosine to the naive path the fast path must keep (scoring uses it)


@dataclass(frozen=True)
class Mode:
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


NAIVE = Mode("naive")


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
    method_test_images: int  # test set the comparison methods score (83 = MVTec bottle)
    rd_epochs: int  # RD epochs to time when the epoch is not extrapolated from --train-steps
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
    out: str | None  # None: print only (an --only run without --out does not replace the full table)
    json_out: str | None
    fast_cos: float = FAST_COS
    targets: tuple[tuple[str, float], ...] = ()  # (name, value) from --target, see bench.targets
    argv: tuple[str, ...] = ()

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def target_map(self) -> dict[str, float]:
        return dict(self.targets)


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
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="End-to-end speed benchmark of frad: backbone, "
        "training, scoring and metrics, in one run, one table.",
    )
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    p.add_argument("--backbone", default="wide_resnet50_2", choices=("wide_resnet50_2", "tf_efficientnet_lite0"))
    p.add_argument(
        "--weights",
        default=None,
        help="random | imagenet | path (default: random for wide_resnet50_2, imagenet otherwise)",
    )
    p.add_argument("--batch-size", type=_positive, default=None, help="training batch (16, §2.3)")
    p.add_argument(
        "--infer-batch-size",
        type=_positive,
        default=None,
        help="backbone and scoring batch (default: --batch-size on CPU, 64 on CUDA)",
    )
    p.add_argument("--image-size", type=_positive, default=None, help="input side (256)")
    p.add_argument("--layers", type=_layers, default=None, help="layer set L (2,3)")
    p.add_argument("--channels", type=_positive, default=None, help="fused channels C (512)")
    p.add_argument(
        "--widths", type=_widths, default=None, help="reconstruction-net widths (256,256,256 = the model default)"
    )
    p.add_argument("--train-images", type=_positive, default=None, help="train set size (209 = MVTec bottle)")
    p.add_argument(
        "--epochs",
        type=_positive,
        default=None,
        help="epochs to time when --train-steps is 0 (default: 2 on CPU, 100 = a whole run on CUDA)",
    )
    p.add_argument(
        "--train-steps",
        type=int,
        default=None,
        help="time this many training steps and extrapolate s/epoch; 0 = time whole epochs "
        "(default: 3 on CPU, 0 on CUDA)",
    )
    p.add_argument(
        "--test-images", type=_positive, default=None, help="images scored (default: 32 on CPU, 1024 on CUDA)"
    )
    p.add_argument(
        "--method-test-images",
        type=_positive,
        default=None,
        help="test images the PaDiM/PatchCore/RD rows score (83 = MVTec bottle)",
    )
    p.add_argument(
        "--rd-epochs",
        type=_positive,
        default=None,
        help="RD epochs to time when --train-steps is 0 (default: 1 on CPU, 10 on CUDA)",
    )
    p.add_argument("--metrics-n", type=_positive, default=None, help="maps for AU-PRO/pixel AUROC (1725)")
    p.add_argument("--metrics-size", type=_positive, default=None, help="map side for the metrics (256)")
    p.add_argument("--sigma", type=float, default=4.0, help="Gaussian σ of the scoring blur (4)")
    p.add_argument("--reps", type=_positive, default=None, help="timed batches per backbone mode (2)")
    p.add_argument("--accuracy-images", type=_positive, default=None, help="images for the cosine check (8)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads per row (default: torch's choice; --quick: 1, since tiny ops on "
        "a busy machine mostly wait on thread barriers)",
    )
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    p.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test")
    p.add_argument(
        "--only",
        type=_sections,
        default=SECTIONS,
        help=f"run only these row groups, comma-separated from {','.join(SECTIONS)} (default: all; "
        "scoring then uses the naive backbone path unless backbone runs too)",
    )
    p.add_argument(
        "--no-isolate",
        dest="isolate",
        action="store_false",
        help="run every row in this process (memory numbers then share one process)",
    )
    p.add_argument(
        "--fast-cos",
        type=float,
        default=FAST_COS,
        help="mean fused-feature cosine to the naive path a backbone mode must keep to be the fast "
        "path that scoring uses (default: %(default)s)",
    )
    add_target_option(p, TARGETS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        default=None,
        help=f"Markdown file to write (default: {FULL_OUT} when every row group runs; an --only run writes "
        "only where --out says, so it never replaces the full table)",
    )
    p.add_argument("--json", dest="json_out", default=None, help="also write the raw numbers as JSON")
    return p.parse_args(argv)


def _device(name: str) -> str:
    """'cpu', or the CUDA device ('auto': a free GPU when there is one, as frad.device picks it)."""
    try:
        return str(resolve_device(name))
    except FradError:
        raise SystemExit(f"error: --device {name} but CUDA is not available here (use --device cpu or auto)") from None


def resolve_settings(ns: argparse.Namespace, argv: Sequence[str] = ()) -> Settings:
    """Fill the defaults (full or ``--quick``) that were not given explicitly."""
    device = _device(ns.device)
    cuda = device.startswith("cuda")
    full = dict(
        batch_size=16,
        infer_batch_size=64 if cuda else None,
        image_size=256,
        layers=(2, 3),
        channels=512,
        widths=(256, 256, 256),
        train_images=209,
        epochs=100 if cuda else 2,
        train_steps=0 if cuda else 3,
        test_images=1024 if cuda else 32,
        method_test_images=83,
        rd_epochs=10 if cuda else 1,
        metrics_n=1725,
        metrics_size=256,
        reps=5 if cuda else 2,
        accuracy_images=8,
        threads=0,
    )
    quick = dict(
        batch_size=2,
        infer_batch_size=None,
        image_size=64,
        layers=(2, 3),
        channels=64,
        widths=(32, 32, 32),
        train_images=2,
        epochs=1,
        train_steps=0,
        test_images=2,
        method_test_images=2,
        rd_epochs=1,
        metrics_n=24,
        metrics_size=64,
        reps=1,
        accuracy_images=2,
        threads=1,
    )
    defaults = quick if ns.quick else full
    values = {k: (getattr(ns, k) if getattr(ns, k) is not None else v) for k, v in defaults.items()}
    weights = ns.weights or ("random" if ns.backbone == "wide_resnet50_2" else "imagenet")
    if values["train_steps"] < 0:
        raise SystemExit("error: --train-steps must be >= 0")
    if values["infer_batch_size"] is None:
        values["infer_batch_size"] = values["batch_size"]
    return Settings(
        device=device,
        backbone=ns.backbone,
        weights=weights,
        sigma=ns.sigma,
        compile=ns.compile,
        quick=ns.quick,
        only=tuple(ns.only),
        isolate=ns.isolate,
        seed=ns.seed,
        out=ns.out or (FULL_OUT if set(ns.only) == set(SECTIONS) else None),
        json_out=ns.json_out,
        fast_cos=ns.fast_cos,
        targets=tuple(dict(ns.targets).items()),
        argv=tuple(argv),
        **values,
    )
