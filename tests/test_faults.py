"""Faults end to end: a bad dataset, missing weights or an absent GPU ends a stage with ONE `error:` line, exit 2 and
no output DVC could take for a finished stage; a SIGKILL mid-training loses nothing and changes no result; runs are
bitwise reproducible; undefined metrics are reported as such. The table of every case is tests/FAULTS.md.

Everything runs on tiny synthetic data (TINY of pipeline_utils). Stage commands run as subprocesses where the exit
status and stderr are the point (launched together, so their start-up costs overlap); otherwise the stage modules'
`run()` functions are called in-process inside a workspace (no Python + torch start-up per stage).
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from pipeline_utils import RUNNING, THREADS, TINY, env, repro

from frad.datasets.synthetic import generate_category
from frad.train import load_model
from pipeline import compare, features, prepare, report, score, train
from pipeline.params import load_params
from pipeline.workspace import make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CAT = "tile"
VARIANTS = ("full", "baseline", "gfe", "shuffle")  # ablation.layers: [] -> no L<digits> variants
# The pipeline of the interruption and determinism tests: 4 trained variants, 20 epochs (long enough to kill one
# mid-training), CPU (bitwise reproducibility is a CPU promise).
RUN = {**TINY, "ablation.layers": [], "compare.methods": [], "train.epochs": 20, "train.device": "cpu"}
SMALL_CATEGORY = {"n_train": 3, "n_test_good": 1, "n_test_defect_per_type": 1, "size": 64}


# --------------------------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def one_torch_thread():
    """In-process stages use one torch thread, as the DVC stages of the tests do (OMP_NUM_THREADS=1): the same
    arithmetic, and no OpenMP oversubscription on a busy 2-core machine (which can make a tiny run 5x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(threads)


def stage_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def one_error_line(returncode: int, stderr: str) -> str:
    """The stage failed the way every stage must: exit 2 and exactly one `error: ...` line on stderr."""
    lines = stderr.strip().splitlines()
    assert returncode == 2, f"exit status {returncode}, stderr:\n{stderr}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one error line, got:\n{stderr}"
    return lines[0]


def entries(folder: Path) -> list[str]:
    """Every name in ``folder``, hidden ones included ([] if it does not exist)."""
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def metrics_files(ws: Path) -> dict[str, bytes]:
    """The metrics files of a run: data/scores/<c>/<method>/seed<s>.json and reports/metrics.json, as bytes."""
    files = sorted((ws / "data" / "scores").glob("*/*/*.json")) + [ws / "reports" / "metrics.json"]
    return {p.relative_to(ws).as_posix(): p.read_bytes() for p in files}


def run_in_process(ws: Path, variants=VARIANTS, categories=(CAT,)) -> None:
    """What `dvc repro` runs, stage by stage, in this process (one torch thread, like the DVC stages of the tests)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(
        THREADS
    )  # = OMP_NUM_THREADS=1 of pipeline_utils.env(): same arithmetic as the DVC subprocesses
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(ws)
            params = load_params()
            for cat in categories:
                prepare.run(params, cat)
                features.run(params, cat)
                for v in variants:
                    train.run(params, cat, v, 0)
                for v in variants:
                    score.run(params, cat, v, 0)
                for method in params.compare.methods:  # the comparison methods, as DVC would run them
                    compare.run(params, method, cat, 0)
            report.run([])
    finally:
        torch.set_num_threads(threads)


def set_param(ws: Path, dotted: str, value) -> None:
    path = ws / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    *parents, last = dotted.split(".")
    node = raw
    for k in parents:
        node = node[k]
    node[last] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def copy_ws(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


# --------------------------------------------------------------------------------------------- stage commands that must fail
# Each case: a workspace, the stage command, the text its one error line must hold, the output that must not exist.


def _category(root: Path) -> Path:
    return generate_category(
        root,
        CAT,
        0,
        n_train=SMALL_CATEGORY["n_train"],
        n_test_good=SMALL_CATEGORY["n_test_good"],
        n_test_defect_per_type=SMALL_CATEGORY["n_test_defect_per_type"],
        size=SMALL_CATEGORY["size"],
    )


def _break(case: str, cat: Path) -> tuple[str, list[str]]:
    """Break the MVTec-layout category ``cat`` as ``case`` says; return (category argument, needles)."""
    if case == "unknown_category":
        return "tiel", ["category 'tiel' not found", str(cat.parent / "tiel"), f"under {cat.parent}: {CAT}"]
    if case == "defect_image_without_mask":
        (cat / "ground_truth" / "scratch" / "000_mask.png").unlink()
        return CAT, [
            "defect image",
            str(cat / "test" / "scratch" / "000.png"),
            "has no mask",
            str(cat / "ground_truth" / "scratch" / "000_mask.png"),
        ]
    if case == "mask_size_differs":
        Image.new("L", (32, 32), 255).save(cat / "ground_truth" / "scratch" / "000_mask.png")
        return CAT, [str(cat / "ground_truth" / "scratch" / "000_mask.png"), "32x32", "64x64", "size of their image"]
    if case == "non_image_file":
        (cat / "test" / "color" / "notes.txt").write_text("not an image")
        return CAT, ["non-image file", str(cat / "test" / "color" / "notes.txt"), "move or delete it"]
    if case == "not_an_image_named_png":
        (cat / "train" / "good" / "001.png").write_bytes(b"this is not a PNG file")
        return CAT, ["cannot read image", str(cat / "train" / "good" / "001.png"), "replace it"]
    raise AssertionError(case)


DATASET_CASES = (
    "unknown_category",
    "defect_image_without_mask",
    "mask_size_differs",
    "non_image_file",
    "not_an_image_named_png",
)


@pytest.fixture(scope="module")
def failing_stages(tmp_path_factory):
    """Set up every failing-stage case, start all their commands at once, and hand back the running processes."""
    base = tmp_path_factory.mktemp("fail")
    cases: dict[str, dict] = {}
    for case in DATASET_CASES:  # data.source: folder -> a broken MVTec-layout root of your own data built here
        root = base / case / "mvtec"
        arg, needles = _break(case, _category(root))
        folder = {"data.dataset": "custom", "data.source": "folder", "data.root": str(root)}
        ws = make_workspace(base / case / "ws", {**TINY, **folder}, git=False)
        cases[case] = {
            "ws": ws,
            "cmd": stage_cmd("pipeline.prepare", arg),
            "needles": needles,
            "absent": ws / "data" / "datasets" / arg,
            "clean": ws / "data" / "datasets",
        }
    # backbone.weights: a file that is not there (the dataset is prepared first, so only the weights can fail)
    ws = make_workspace(base / "weights" / "ws", {**TINY, "backbone.weights": "/nonexistent.pth"}, git=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ws)
        prepare.run(load_params(), CAT)
    cases["missing_weights_file"] = {
        "ws": ws,
        "cmd": stage_cmd("pipeline.features", CAT),
        "needles": ["/nonexistent.pth", "not found", "backbone.weights"],
        "absent": ws / "data" / "features" / CAT,
        "clean": ws / "data" / "features",
    }
    # train.device: cuda on a machine without CUDA
    ws = make_workspace(base / "cuda" / "ws", {**TINY, "train.device": "cuda"}, git=False)
    cases["cuda_absent"] = {
        "ws": ws,
        "cmd": stage_cmd("pipeline.features", CAT),
        "needles": ["train.device='cuda'", "no CUDA device is available", "train.device: auto"],
        "absent": ws / "data" / "features" / CAT,
        "clean": ws / "data" / "features",
    }
    for c in cases.values():
        c["proc"] = subprocess.Popen(
            c["cmd"], cwd=c["ws"], env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    yield cases
    for c in cases.values():
        if c["proc"].poll() is None:
            c["proc"].kill()
        c["proc"].communicate()


def check_failing_stage(c: dict) -> str:
    out, err = c["proc"].communicate(timeout=300)
    line = one_error_line(c["proc"].returncode, err)
    assert not os.path.lexists(c["absent"]), f"{c['absent']} exists after a failed stage ({line})"
    assert entries(c["clean"]) == [], f"left in {c['clean']}: {entries(c['clean'])}"  # no temporary either
    for needle in c["needles"]:
        assert needle in line, (needle, line)
    return line


@pytest.mark.parametrize("case", DATASET_CASES)
def test_prepare_bad_dataset_exits_2_with_one_line_naming_the_file_and_no_output(failing_stages, case):
    check_failing_stage(failing_stages[case])


def test_features_missing_weights_file_exits_2_naming_the_file(failing_stages):
    check_failing_stage(failing_stages["missing_weights_file"])


def test_cuda_requested_without_gpu_exits_2_with_what_to_set(failing_stages):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    check_failing_stage(failing_stages["cuda_absent"])


# --------------------------------------------------------------------------------------------- grayscale works


def test_grayscale_category_goes_through_features_like_its_rgb_copy(tmp_path, monkeypatch):
    """Grayscale PNGs where RGB is expected: prepare and features succeed, and the features equal those of the
    same pictures stored as RGB (each gray value copied to the 3 channels)."""
    root = tmp_path / "mvtec"
    gray = _category(root)
    rgb = root / "tile_rgb"
    shutil.copytree(gray, rgb)
    images = [p for p in sorted(gray.rglob("*.png")) if "ground_truth" not in p.parts]
    assert len(images) == 3 + 1 + 2
    for path in images:
        g = Image.open(path).convert("L")
        g.save(path)
        g.convert("RGB").save(rgb / path.relative_to(gray))
    assert {Image.open(p).mode for p in images} == {"L"}
    folder = {"data.dataset": "custom", "data.source": "folder", "data.root": str(root)}
    ws = make_workspace(tmp_path / "ws", {**TINY, **folder}, git=False)
    monkeypatch.chdir(ws)
    params = load_params()
    for cat in (CAT, "tile_rgb"):
        prepare.run(params, cat)
        features.run(params, cat)
    a, b = ws / "data" / "features" / CAT, ws / "data" / "features" / "tile_rgb"
    arrays = sorted(p.name for p in a.glob("*.npy"))
    assert "train_l2.npy" in arrays and arrays == sorted(p.name for p in b.glob("*.npy"))
    for name in arrays:
        x, y = np.load(a / name), np.load(b / name)
        assert x.dtype != np.float16 or np.isfinite(x).all(), name
        np.testing.assert_array_equal(x, y, err_msg=name)


# --------------------------------------------------------------------------------------------- reference run


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """An uninterrupted run of the whole pipeline (in-process) with RUN params: the metrics files every other run
    with the same seed must reproduce byte for byte."""
    ws = make_workspace(tmp_path_factory.mktemp("ref") / "ws", RUN, git=False)
    run_in_process(ws)
    files = metrics_files(ws)
    assert len(files) == len(VARIANTS) + 1
    return {"ws": ws, "metrics": files}


# --------------------------------------------------------------------------------------------- interruption

PROGRESS = re.compile(r"train:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")  # tqdm's epoch bar of frad.train
STAGE = re.compile(r"^(train\w*)@(\w+)-(\w+)-(\d+)$")


def _group_alive(pgid: int) -> list[str]:
    """Processes of group ``pgid`` that are still running (zombies excluded)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(stat.parent.name)
    return alive


def kill_mid_training(proc: subprocess.Popen, deadline_s: float) -> tuple[str, str]:
    """Read `dvc repro`'s output until a training stage is between epochs 1 and N/2, then SIGKILL dvc and its
    stage processes (one process group). Returns (stage being trained, output so far)."""
    chunks: list[str] = []
    lock = threading.Lock()

    def pump() -> None:
        decode = codecs.getincrementaldecoder("utf-8")("replace").decode  # tqdm bars are multi-byte characters
        for raw in iter(lambda: os.read(proc.stdout.fileno(), 65536), b""):
            with lock:
                chunks.append(decode(raw))

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and proc.poll() is None:
        with lock:
            text = "".join(chunks)
        stages = RUNNING.findall(text)
        if stages and STAGE.match(stages[-1]):
            tail = text[text.rindex(f"Running stage '{stages[-1]}'") :]
            bars = [(int(n), int(total)) for n, total in PROGRESS.findall(tail)]
            if bars and 1 <= bars[-1][0] <= bars[-1][1] // 2:  # at least half of the epochs still to go
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                print(f"killed {stages[-1]} after epoch {bars[-1][0]} of {bars[-1][1]}")
                return stages[-1], text
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    raise AssertionError(f"never saw a training stage mid-way (exit {proc.returncode}):\n{''.join(chunks)[-3000:]}")


def test_sigkill_mid_training_then_repro_gives_the_uninterrupted_metrics(reference, tmp_path):
    ws = make_workspace(tmp_path / "ws", RUN)
    show_every_epoch = {"TQDM_MININTERVAL": "0", "TQDM_MINITERS": "1"}  # progress display only, results unchanged
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro"],
        cwd=ws,
        env={**env(), **show_every_epoch},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        killed, _ = kill_mid_training(proc, deadline_s=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    for _ in range(100):  # the stage process dies with dvc: nothing keeps writing behind our back
        if not _group_alive(proc.pid):
            break
        time.sleep(0.1)
    assert not _group_alive(proc.pid)

    # Nothing under data/models has a final name unless it is complete; the killed model has none.
    variant = STAGE.match(killed).group(3)
    models = ws / "data" / "models" / CAT
    finished = [p for p in models.glob("*/*.pt")] if models.is_dir() else []
    assert models / variant / "seed0.pt" not in finished
    for path in finished:
        load_model(path)  # complete checkpoints only
    lock = yaml.safe_load((ws / "dvc.lock").read_text()) if (ws / "dvc.lock").exists() else {}
    assert killed not in lock.get("stages", {}), "DVC recorded the killed stage as finished"

    ran = repro(ws)
    assert killed in ran
    assert not ran & {"download", f"prepare@{CAT}", f"features@{CAT}"}  # finished work is kept, not redone
    got = metrics_files(ws)
    assert got.keys() == reference["metrics"].keys()
    for name, data in reference["metrics"].items():
        assert got[name] == data, f"{name} differs from the uninterrupted run"


def test_sigkill_while_saving_a_model_leaves_no_file_under_its_final_name(reference, tmp_path):
    """A stage killed while torch.save is writing: the bytes went to a hidden temporary, never to <variant>.pt."""
    ws = copy_ws(reference["ws"], tmp_path / "ws")
    shutil.rmtree(ws / "data" / "models")
    child = (
        "import os, signal, torch\n"
        "from pipeline import train\n"
        "from pipeline.params import load_params\n"
        "def dying_save(obj, f, *args, **kwargs):\n"
        "    with open(f, 'wb') as fh:\n"
        "        fh.write(b'half a checkpoint'); fh.flush(); os.fsync(fh.fileno())\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "torch.save = dying_save\n"
        f"train.run(load_params(), {CAT!r}, 'full', 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", child], cwd=ws, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    models = ws / "data" / "models" / CAT / "full"
    names = entries(models)
    assert "seed0.pt" not in names and all(n.startswith(".") for n in names), names
    partial = [p for p in models.rglob("*") if p.is_file()]
    assert len(partial) == 1 and partial[0].read_bytes() == b"half a checkpoint" and partial[0].parent != models


# --------------------------------------------------------------------------------------------- determinism


def test_same_seed_twice_gives_bitwise_identical_results(reference, tmp_path):
    ws = make_workspace(tmp_path / "ws", RUN, git=False)
    run_in_process(ws)
    assert metrics_files(ws) == reference["metrics"]
    ref = reference["ws"]
    for path in sorted((ref / "data" / "features" / CAT).glob("*.npy")):
        np.testing.assert_array_equal(np.load(path), np.load(ws / path.relative_to(ref)), err_msg=path.name)
    for v in VARIANTS:
        rel = Path("data", "models", CAT, v, "seed0.pt")
        a = torch.load(ref / rel, weights_only=True)["state_dict"]
        b = torch.load(ws / rel, weights_only=True)["state_dict"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), v


def test_other_seed_gives_other_weights_and_image_scores(reference, tmp_path, monkeypatch):
    ws = copy_ws(reference["ws"], tmp_path / "ws")
    monkeypatch.chdir(ws)
    params = load_params()
    train.run(params, CAT, "full", 1)
    other = score.run(params, CAT, "full", 1)
    a = torch.load(ws / "data" / "models" / CAT / "full" / "seed0.pt", weights_only=True)
    b = torch.load(ws / "data" / "models" / CAT / "full" / "seed1.pt", weights_only=True)
    assert b["train_config"]["seed"] == 1 and a["train_config"]["seed"] == 0
    differ = [
        k
        for k in a["state_dict"]
        if a["state_dict"][k].is_floating_point() and not torch.equal(a["state_dict"][k], b["state_dict"][k])
    ]
    assert differ, "seed 1 trained the same weights as seed 0"
    ref_scores = json.loads((ws / "data" / "scores" / CAT / "full" / "seed0.json").read_bytes())["image_scores"]
    assert other["image_scores"] != ref_scores


def test_device_auto_falls_back_to_cpu(reference, tmp_path, monkeypatch):
    """train.device: auto on a machine without CUDA: the features and train stages run instead of failing, and
    produce bit for bit what train.device: cpu produced (the reference run)."""
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    ws = copy_ws(reference["ws"], tmp_path / "ws")
    set_param(ws, "train.device", "auto")
    shutil.rmtree(ws / "data" / "features")
    shutil.rmtree(ws / "data" / "models")
    monkeypatch.chdir(ws)
    params = load_params()
    features.run(params, CAT)
    train.run(params, CAT, "baseline", 0)
    ref = reference["ws"]
    for path in sorted((ref / "data" / "features" / CAT).glob("*.npy")):
        np.testing.assert_array_equal(np.load(path), np.load(ws / path.relative_to(ref)), err_msg=path.name)
    rel = Path("data", "models", CAT, "baseline", "seed0.pt")
    a = torch.load(ref / rel, weights_only=True)
    b = torch.load(ws / rel, weights_only=True)
    assert a["train_config"]["device"] == "cpu" and b["train_config"]["device"] == "auto"
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["history"] == b["history"]


# --------------------------------------------------------------------------------------------- undefined metrics


def test_all_good_test_set_scores_null_with_reason_and_report_shows_na(tmp_path):
    """A test set of good images only: AUROC, pixel AUROC and AU-PRO are undefined. The score stage writes null and
    the reason, the report shows n/a with the reason, metrics.json has null; nothing crashes, no fake number."""
    root = tmp_path / "mvtec"
    generate_category(root, CAT, 0, n_train=3, n_test_good=2, n_test_defect_per_type=0, size=64)
    assert not (root / CAT / "ground_truth").exists()
    ws = make_workspace(
        tmp_path / "ws", {**TINY, "data.source": "folder", "data.root": str(root), "ablation.layers": []}, git=False
    )
    run_in_process(ws)
    full = json.loads((ws / "data" / "scores" / CAT / "full" / "seed0.json").read_text())
    assert full["n_test"] == 2 and full["n_defect"] == 0
    assert full["image_auroc"] is None and full["pixel_auroc"] is None and full["pro"] is None
    assert "all test images are normal" in full["undefined"]["image_auroc"]
    assert "no defect pixels" in full["undefined"]["pixel_auroc"]
    assert "no defect pixels" in full["undefined"]["pro"]
    metrics = json.loads((ws / "reports" / "metrics.json").read_text())
    assert metrics["image_auroc"] is None and metrics["pixel_auroc"] is None and metrics["pro"] is None
    methods = [metrics["methods"][m] for m in ("padim", "patchcore", "rd")]
    assert all(m[k] is None for m in methods for k in ("image_auroc", "pixel_auroc", "pro"))
    assert all(v is None for m in methods for side in ("ci_low", "ci_high") for v in m[side].values())
    tables = (ws / "reports" / "tables.md").read_text()
    assert "n/a" in tables and "all test images are normal" in tables and "no defect pixels" in tables
    assert not re.search(r"\bnan\b", tables, re.IGNORECASE)
