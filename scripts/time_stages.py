"""Wall time of the real pipeline stages for one category, without DVC: a scratch workspace (code +
params.yaml with overrides, as the demo makes it), then prepare → features → train → score and the
same-harness comparison methods (padim, patchcore, rd) and, with --choices, items of the open-choices study (training
with the test set scored after every epoch) run one after the other as `python -m pipeline.<stage>` exactly as
dvc.yaml calls them.

    python scripts/time_stages.py [--dest DIR] [--variant full] [--methods padim,patchcore,rd]
                                  [--choices paper,...] [--set key=value ...]

Default: one synthetic category of MVTec-bottle size (209 train, 20 good + 3×21 defective test
images) at 256², WRN50-2 with random weights (no ImageNet file needed), the paper's model and
100 epochs, every comparison method with its params.yaml settings. Values of --set are YAML
(``--set backbone.precision=bf16``, ``--set compare.rd.epochs=20``). Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from frad.methods import METHODS  # noqa: E402

TIMINGS = "timings"  # the stages' timing records, in the workspace (FRAD_TIMINGS)
from pipeline.workspace import make_workspace  # noqa: E402

DEFAULTS = {
    "data.source": "synthetic",
    "data.categories": ["bottle"],
    "data.textures": [],
    "data.synthetic": {"seed": 0, "n_train": 209, "n_test_good": 20, "n_test_defect": 21, "size": 256},
    "backbone.weights": "random",
}
METHOD_NAMES = tuple(METHODS)  # python -m pipeline.compare <method> <category> <seed>
PHASES = ("fit_s", "bank_s", "coreset_s", "s_per_epoch", "score_s")  # a comparison method's timings (MethodResult)


def method_list(text: str) -> list[str]:
    """argparse ``type`` of --methods: a comma list drawn from METHOD_NAMES ('' = none)."""
    out = [t for t in text.replace(" ", "").split(",") if t]
    bad = [t for t in out if t not in METHOD_NAMES]
    if bad:
        raise argparse.ArgumentTypeError(
            f"--methods takes a comma list drawn from {','.join(METHOD_NAMES)} (got {text!r})"
        )
    return out


def phases(dest: Path, category: str, method: str) -> str:
    """The phase timings a compare stage wrote into its timing record (fit, coreset, s/epoch, maps)."""
    path = dest / TIMINGS / f"compare-{method}-{category}-0.json"
    if not path.is_file():
        return ""
    record = json.loads(path.read_text()).get("phases", {})
    return ", ".join(f"{k} {record[k]:.3g}" for k in PHASES if isinstance(record.get(k), (int, float)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", help="workspace folder (default: a new temporary folder)")
    ap.add_argument("--variant", default="full", help="model variant to train and score (default: full)")
    ap.add_argument(
        "--methods",
        type=method_list,
        default=list(METHOD_NAMES),
        help=f"compare stages to time after score, comma-separated ('' = none; default: {','.join(METHOD_NAMES)})",
    )
    ap.add_argument(
        "--choices",
        type=lambda text: [t for t in text.replace(" ", "").split(",") if t],
        default=[],
        help="choices.changes entries to time as `choice` items, comma-separated (default: none)",
    )
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="params override (YAML value)")
    args = ap.parse_args(argv)
    overrides = dict(DEFAULTS)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set wants key=value, got {item!r}")
        overrides[key] = yaml.safe_load(value)
    overrides["compare.methods"] = list(args.methods)  # the gallery draws exactly the methods timed
    category = overrides["data.categories"][0]
    if args.choices:
        overrides.setdefault("choices.enabled", True)
        overrides.setdefault("choices.categories", [category])
    dest = Path(args.dest) if args.dest else Path(tempfile.mkdtemp(prefix="frad-stages-")) / "ws"
    make_workspace(dest, overrides, git=False)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "FRAD_TIMINGS": str(dest / TIMINGS)}
    stages = [
        ("prepare", [category]),
        ("features", [category]),
        ("train", [category, args.variant, "0"]),
        ("score", [category, args.variant, "0"]),
        *(("compare", [method, category, "0"]) for method in args.methods),
        ("gallery", [category]),
        *(("choice", [category, name, "0"]) for name in args.choices),
    ]
    rows = []
    for stage, stage_args in stages:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", f"pipeline.{stage}", *stage_args], cwd=dest, env=env, capture_output=True, text=True
        )
        wall = time.perf_counter() - t0
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or [""]
        rows.append((f"{stage} {' '.join(stage_args)}", f"{wall:.1f}", proc.returncode, tail[0][:120]))
        print(f"[time_stages] {rows[-1][0]}: {wall:.1f} s, exit {proc.returncode}", file=sys.stderr, flush=True)
        if proc.returncode:
            print(proc.stdout[-4000:] + proc.stderr[-4000:], file=sys.stderr)
            break
    print(f"workspace {dest}; overrides: " + ", ".join(f"{k}={v}" for k, v in overrides.items()))
    print("| stage | wall (s) | exit | last line |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x).replace("|", "/") for x in r) + " |")
    timed = [(m, phases(dest, category, m)) for m in args.methods]
    if any(t for _, t in timed):
        print("\n| method | phases inside the stage (s) |\n|---|---|")
        for method, text in timed:
            print(f"| {method} | {text or '–'} |")
    return max(r[2] for r in rows)


if __name__ == "__main__":
    sys.exit(main())
