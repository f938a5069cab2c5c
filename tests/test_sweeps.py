"""Sweeps and a shared remote, read from DVC itself, on a second benchmark (VisA's layout, from a local copy of its
archive): the reference run converts it and measures pixel metrics; queued experiments reuse the extracted dataset
and the feature caches of the machine's DVC cache; a second clone gets every result through a DVC remote by
following docs/parallel.md, section "More than one machine", verbatim."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_utils import RUNNING, TINY, bash_blocks, dvc, env, repro, set_params
from visa_fixture import make_visa, visa_tar

from pipeline.workspace import PROJECT, make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("sweeps")]  # one reference run
QUEUE_TIMEOUT_S = 1200
CAT = "capsules"


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> tuple[Path, set[str]]:
    """A committed reference run on a tiny VisA archive (data.dataset: visa, data.source: archive), and the stages
    it ran."""
    tmp = tmp_path_factory.mktemp("sweep")
    archive = visa_tar(make_visa(tmp / "VisA"), tmp / "VisA_tiny.tar")
    ws = make_workspace(
        tmp / "ws",
        {
            **TINY,
            "data.dataset": "visa",
            "data.source": "archive",
            "data.archive": str(archive),
            "data.sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
            "data.categories": [CAT],
            "data.textures": [],
            "ablation.layers": [],
            "compare.methods": [],
        },
    )
    ran = repro(ws)
    git(ws, "add", "-A")
    git(ws, "commit", "-q", "-m", "reference run")
    return ws, ran


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def experiments(ws: Path) -> dict[str, dict]:
    """name -> data ({"params", "metrics", ...}) of every experiment `dvc exp show --json` lists."""
    found: dict[str, dict] = {}

    def walk(node):
        if isinstance(node, dict):
            if node.get("name") and isinstance(node.get("data"), dict) and node["data"].get("metrics"):
                found[node["name"]] = node["data"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(dvc(ws, "exp", "show", "--json").stdout))
    return {name: data for name, data in found.items() if git(ws, "branch", "--list", name) == ""}


def ssl_lambda(data: dict) -> float:
    return data["params"]["params.yaml"]["data"]["ssl"]["lambda"]


def test_visa_runs_from_its_archive_with_pixel_metrics(reference_run):
    ws, ran = reference_run
    assert {"download", f"prepare@{CAT}", f"features@{CAT}", f"score@{CAT}-full-0", "report"} <= ran
    score = json.loads((ws / f"data/scores/{CAT}/full/seed0.json").read_text())
    assert score["n_test"] == 4 and score["n_defect"] == 2
    assert all(0.0 <= score[m] <= 1.0 for m in ("image_auroc", "pixel_auroc", "pro", "pixel_ap", "pixel_f1max"))
    tables = (ws / "reports/tables.md").read_text()
    assert "# FRAD on VisA (no paper column)" in tables and "Multiple instances average" in tables


def test_queued_sweep_extracts_once_and_computes_features_once(reference_run):
    ws, ran = reference_run
    assert {"download", f"features@{CAT}"} <= ran
    dvc(ws, "exp", "run", "--queue", "-S", "ssl.lambda=0.05,0.2")
    # the queue's workers are daemons: they must not hold our pipes (a read to EOF would wait for them to exit)
    subprocess.run(
        [sys.executable, "-m", "dvc", "queue", "start", "-j", "2"],
        cwd=ws,
        env=env(),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while True:
        table = dvc(ws, "queue", "status").stdout
        if "Queued" not in table and "Running" not in table:
            break
        assert time.monotonic() < deadline, f"queue still busy after {QUEUE_TIMEOUT_S} s:\n{table}"
        time.sleep(3)
    stop = subprocess.run(
        [sys.executable, "-m", "dvc", "queue", "stop"],
        cwd=ws,
        env=env(),
        timeout=120,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # an idle worker may linger
    assert stop.returncode == 0
    names = [line.split()[1] for line in table.splitlines() if line.split()[2:] and "Success" in line]
    assert len(names) == 2, table
    logs = {name: dvc(ws, "queue", "logs", name).stdout for name in names}
    for name, log in logs.items():
        ran_there = set(RUNNING.findall(log))
        assert "download" not in ran_there and f"features@{CAT}" not in ran_there, (name, sorted(ran_there))
        assert f"train@{CAT}-full-0" in ran_there  # the swept key did rerun what depends on it
    exps = experiments(ws)
    assert sorted(ssl_lambda(exps[n]) for n in names) == [0.05, 0.2]
    for name in names:
        metrics = exps[name]["metrics"]["reports/metrics.json"]["data"]
        assert {"image_auroc", "pixel_auroc", "pro"} <= set(metrics)


def test_second_clone_gets_every_result_following_the_readme(reference_run, tmp_path):
    ws, _ = reference_run
    machine_a, machine_b = bash_blocks((PROJECT / "docs" / "parallel.md").read_text(), "## More than one machine")
    remote, git_url = tmp_path / "dvc-remote", tmp_path / "frad.git"
    git(tmp_path, "init", "-q", "--bare", str(git_url))
    git(ws, "remote", "add", "origin", str(git_url))
    git(ws, "push", "-q", "-u", "origin", "HEAD")
    set_params(ws, **{"bootstrap.resamples": 500})  # a new result for machine A to run and share (the reports)
    shell_env = {**env(), "REMOTE": str(remote), "GIT_URL": str(git_url)}
    run = lambda script, cwd: subprocess.run(  # noqa: E731
        ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=shell_env, capture_output=True, text=True
    )

    a = run(machine_a, ws)
    assert a.returncode == 0, a.stdout + a.stderr
    b = run(machine_b, tmp_path)
    assert b.returncode == 0, b.stdout + b.stderr
    clone = tmp_path / "frad"
    assert not RUNNING.findall(b.stdout + b.stderr) and "is cached" not in b.stdout + b.stderr  # nothing reran
    assert (clone / "reports/metrics.json").read_text() == git(ws, "show", "HEAD:reports/metrics.json")  # A's commit
    # Outputs came from the remote, the dataset did not (data/raw is push: false).
    assert (clone / f"data/features/{CAT}").is_dir() and not (clone / "data/raw").exists()
    raw_file = next((ws / f"data/raw/visa/{CAT}/Data/Images/Normal").iterdir())
    md5 = hashlib.md5(raw_file.read_bytes()).hexdigest()
    assert not list(remote.rglob(md5[2:])), "a dataset file was pushed to the remote"
    # The experiment pushed by A is listed, with its metrics, in B.
    exps = experiments(clone)
    assert [ssl_lambda(d) for d in exps.values()].count(0.2) >= 1
