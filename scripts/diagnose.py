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

The harness (loading, training, scoring, the table) is ``diagnose_harness``; the experiments, ``diagnose_experiments``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diagnose_experiments import EXPERIMENTS, ROWS, run_rows  # noqa: E402
from diagnose_harness import load  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--features", required=True, help="feature cache directory (frad.cache.FeatureCache)")
    p.add_argument("--experiment", required=True, choices=sorted([*ROWS, *EXPERIMENTS]))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--every", type=int, default=5, help="epochs between evaluations (experiment epochs)")
    p.add_argument("--rows", type=int, nargs="*", help="run only these rows (0-based) of a rows experiment")
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
    if args.experiment in ROWS:
        print(run_rows(args.experiment, data, args))
    else:
        print(EXPERIMENTS[args.experiment](data, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
