"""`python -m pipeline.run`: stale stages through Dask with DVC as the engine of record, on a toy dvc.yaml (seconds
per stage, same DAG shapes as the pipeline: a matrix fan-out and a fan-in, params). Every wait is on a file or a
process, never on a duration; each run has a generous overall timeout only."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from pipeline_utils import copy_workspace, env, status

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).resolve().parent.parent
TIMEOUT = 600  # seconds for one run: a bound on a hang, not a speed test (a run here takes 10-60 s)

# `gate` stages wait for a file (`release`, or the other gate's start marker in $GATES) before writing their output
WAIT = 'python -c "import os,sys,time; [time.sleep(0.05) for _ in iter(lambda: os.path.exists(sys.argv[1]), True)]"'
TOY = {
    "stages": {
        "a": {"cmd": "python -c \"open('a.txt','w').write('a')\"", "outs": ["a.txt"]},
        "b": {
            "matrix": {"x": [1, 2, 3]},
            "cmd": "python -c \"open('b${item.x}.txt','w').write(open('a.txt').read() + '${item.x}')\"",
            "deps": ["a.txt"],
            "outs": ["b${item.x}.txt"],
        },
        "c": {
            "cmd": "python -c \"import yaml; n = yaml.safe_load(open('params.yaml'))['n']; "
            "open('c.txt','w').write(''.join(open(f'b{i}.txt').read() for i in (1, 2, 3)) * n)\"",
            "deps": ["b1.txt", "b2.txt", "b3.txt"],
            "params": ["n"],
            "outs": ["c.txt"],
        },
        # what a Dask nanny sets in its workers must not reach the stage commands (serial dvc.lock differs then),
        # nor may the intra-op threads differ from a serial run's (the arithmetic would)
        "d": {
            "cmd": "python -c \"import os; open('d.txt','w').write(open('a.txt').read() + "
            "' '.join(os.environ.get(k, '-') for k in ('PYTHONHASHSEED', 'MALLOC_TRIM_THRESHOLD_', 'OMP_NUM_THREADS')))\"",
            "deps": ["a.txt"],
            "outs": ["d.txt"],
        },
    }
}


def run_env(**extra: str) -> dict:
    return {**env(), "PYTHONPATH": str(PROJECT), **extra}


def git(ws: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=ws, check=True, capture_output=True)


def dvc(ws: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=ws, env=run_env(), capture_output=True, text=True, check=True
    )


def toy(ws: Path, stages: dict | None = None, cache: Path | None = None, remote: Path | None = None) -> Path:
    ws.mkdir(parents=True)
    git(ws, "init", "-q")
    git(ws, "config", "user.email", "t@frad.invalid")
    git(ws, "config", "user.name", "t")
    dvc(ws, "init", "-q")
    dvc(ws, "config", "core.analytics", "false")
    if cache:
        dvc(ws, "cache", "dir", str(cache))
    if remote:
        dvc(ws, "remote", "add", "-d", "shared", str(remote))
    (ws / "dvc.yaml").write_text(yaml.safe_dump({"stages": {**TOY["stages"], **(stages or {})}}, sort_keys=False))
    (ws / "params.yaml").write_text("n: 2\n")
    (ws / ".gitignore").write_text("/*.txt\nrelease\nbroken*\n")
    git(ws, "add", "-A")
    git(ws, "commit", "-q", "-m", "toy")
    return ws


def pipeline_run(ws: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline.run", *args]
    return subprocess.run(cmd, cwd=ws, env=run_env(), capture_output=True, text=True, timeout=TIMEOUT, **kw)


def serial_lock(tmp: Path, ws: Path) -> str:
    """dvc.lock of a serial `dvc repro` of the same commit."""
    ref = tmp / "serial"
    git(tmp, "clone", "-q", str(ws), str(ref))
    (ref / "release").touch()
    dvc(ref, "repro")
    return (ref / "dvc.lock").read_text()


def ran(out: str) -> set[str]:
    """Stages a pipeline.run reported as finished."""
    return {
        line.split("] ", 1)[1].split()[0] for line in out.splitlines() if line.startswith("[") and " s  worker " in line
    }


def wait_for(check, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"run ended ({proc.returncode}) before {what}:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def locked(ws: Path) -> set[str]:
    path = ws / "dvc.lock"
    return set((yaml.safe_load(path.read_text()) or {}).get("stages", {})) if path.exists() else set()


def test_parallel_run_records_what_serial_repro_records(tmp_path):
    ws = toy(tmp_path / "ws")
    out = pipeline_run(ws, "-j", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert ran(out.stdout) == {"a", "b@1", "b@2", "b@3", "c", "d"}
    assert "[6 done / 0 running / 0 left]" in out.stdout and "dashboard:" in out.stdout
    assert status(ws) == set()
    assert "Data and pipelines are up to date." in dvc(ws, "repro").stdout
    assert (ws / "dvc.lock").read_text() == serial_lock(tmp_path, ws)  # bytes, entry order included
    assert pipeline_run(ws, "-j", "2").stdout.startswith("0 of 6 stages to run")
    # a params change: only its stage, as with dvc repro
    (ws / "params.yaml").write_text("n: 3\n")
    again = pipeline_run(ws, "-j", "2", "c")
    assert again.returncode == 0 and ran(again.stdout) == {"c"} and (ws / "c.txt").read_text() == "a1a2a3" * 3


def test_a_failing_stage_stops_only_its_dependents_and_a_rerun_does_what_is_left(tmp_path):
    fail = {"b": {**TOY["stages"]["b"], "cmd": "test ! -e broken${item.x} && " + TOY["stages"]["b"]["cmd"]}}
    ws = toy(tmp_path / "ws", fail)
    (ws / "broken2").touch()  # b@2 fails while this file exists
    out = pipeline_run(ws, "-j", "2")
    assert out.returncode == 1
    assert ran(out.stdout) == {"a", "b@1", "b@3", "d"}
    assert "c  skipped: upstream b@2 failed" in out.stdout
    log = ws.resolve() / ".dvc/tmp/run/b@2.log"
    assert f"b@2: {os.uname().nodename}:{log}" in out.stderr and "failed to reproduce 'b@2'" in log.read_text()
    assert locked(ws) == {"a", "b@1", "b@3", "d"}  # the others finished and are recorded
    (ws / "broken2").unlink()
    again = pipeline_run(ws, "-j", "2")
    assert again.returncode == 0 and again.stdout.startswith("2 of 6 stages to run")
    assert ran(again.stdout) == {"b@2", "c"} and status(ws) == set()


def _gate(release: str) -> dict:
    """Stage `slow` (after a): writes half its output, waits for ``release``, completes it."""
    return {
        "slow": {
            "cmd": f"python -c \"open('slow.txt','w').write('half')\" && {WAIT} {release} && "
            "python -c \"open('slow.txt','a').write(' done')\"",
            "deps": ["a.txt"],
            "outs": ["slow.txt"],
        },
        "after": {"cmd": "cp slow.txt after.txt", "deps": ["slow.txt"], "outs": ["after.txt"]},
    }


def test_sigkill_of_the_coordinator_loses_no_finished_stage_and_records_no_half_output(tmp_path):
    ws = toy(tmp_path / "ws", _gate("release"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.run", "-j", "2"], cwd=ws, env=run_env(), stdout=subprocess.PIPE, text=True
    )
    wait_for(lambda: {"a", "d"} <= locked(ws) and (ws / "slow.txt").exists(), "a, d recorded and slow started", proc)
    tree = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(tree, timeout=60)  # workers, DVC and the stage commands end with it
    assert not alive, [p.cmdline() for p in alive]
    assert (ws / "slow.txt").read_text() == "half" and "slow" not in locked(ws)
    assert {"a", "d"} <= locked(ws)
    (ws / "release").touch()
    again = pipeline_run(ws, "-j", "2")
    assert again.returncode == 0, again.stdout + again.stderr
    assert {"slow", "after"} <= ran(again.stdout) and not {"a", "d"} & ran(again.stdout)
    assert (ws / "after.txt").read_text() == "half done" and status(ws) == set()


def test_sigkill_of_a_worker_reruns_its_stage_elsewhere(tmp_path):
    ws = toy(tmp_path / "ws", _gate("release"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.run", "-j", "2"], cwd=ws, env=run_env(), stdout=subprocess.PIPE, text=True
    )

    def stage_process() -> psutil.Process | None:
        for p in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "--exec-stage" in p.cmdline() and "slow" in p.cmdline():
                    return p
        return None

    wait_for(lambda: (ws / "slow.txt").exists() and stage_process() is not None, "slow started", proc)
    first = stage_process()
    stage_tree = [first, *first.children(recursive=True)]
    os.kill(first.ppid(), signal.SIGKILL)  # the Dask worker running `slow`
    _, alive = psutil.wait_procs(stage_tree, timeout=60)  # its DVC and command die with it
    assert not alive
    (ws / "release").touch()
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, out
    assert (ws / "after.txt").read_text() == "half done" and status(ws) == set()
    assert (ws / "dvc.lock").read_text() == serial_lock(tmp_path, ws)


@pytest.mark.parametrize("shared", ["cache", "remote"])
def test_two_workers_in_separate_workspaces_sharing_a_cache_or_a_remote(tmp_path, shared):
    """Two 'machines': each Dask worker runs its stages in its own clone (FRAD_WORKSPACE) sharing one DVC cache,
    or only a DVC remote (pulled and pushed with the run-cache); this workspace then records every stage from the
    run-cache."""
    if shared == "cache":
        ws = toy(tmp_path / "ws", cache=tmp_path / "cache")
    else:
        ws = toy(tmp_path / "ws", remote=tmp_path / "remote")
    clones = [tmp_path / "w1", tmp_path / "w2"]
    for c in clones:
        git(tmp_path, "clone", "-q", str(ws), str(c))
    sched = tmp_path / "scheduler.json"
    py = [sys.executable, "-m"]
    procs = [
        subprocess.Popen(
            [*py, "distributed.cli.dask_scheduler", "--scheduler-file", str(sched), "--port", "0"],
            env=run_env(),
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        wait_for(sched.exists, "the scheduler")
        for c in clones:
            worker = [*py, "distributed.cli.dask_worker", "--scheduler-file", str(sched), "--nthreads", "1"]
            procs.append(subprocess.Popen(worker, env=run_env(FRAD_WORKSPACE=str(c)), stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(scheduler_file=str(sched)) as client:
            client.wait_for_workers(2, timeout=TIMEOUT)
        out = pipeline_run(ws, "--scheduler", str(sched))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert ran(out.stdout) == {"a", "b@1", "b@2", "b@3", "c", "d"}
    # Stages ran in the workers' clones, not here; which worker takes which stage is Dask's choice (one may take
    # all when the other starts late), so only "some clone" is certain.
    assert any(list((c / ".dvc/tmp/run").glob("*.log")) for c in clones)
    assert status(ws) == set() and (ws / "c.txt").read_text() == "a1a2a3" * 2
    assert (ws / "dvc.lock").read_text() == serial_lock(tmp_path, ws)


def test_dry_run_lists_stale_stages_critical_path_and_estimate(tmp_path):
    ws = toy(tmp_path / "ws")
    times = tmp_path / "times.yaml"
    times.write_text("a: 10\nb: 100\nc: 5\nd: 50\n")
    out = pipeline_run(ws, "--dry-run", "-j", "2", "--times", str(times))
    assert out.returncode == 0, out.stderr
    head, families = out.stdout.splitlines()[0].split(": ")
    assert head == "6 of 6 stages to run" and set(families.split(", ")) == {"a 1", "b 3", "c 1", "d 1"}
    assert "critical path: a -> b@1 -> c = 115 s" in out.stdout
    assert "estimated wall time on 2 slot(s): 215 s" in out.stdout  # a; b@1 b@2; b@3 d; c
    assert not (ws / "dvc.lock").exists()


def test_the_real_stages_under_the_runner_compute_to_the_last_bit_what_serial_computes(tiny_built, tmp_path):
    """Features, a trained model and its maps, recomputed by `pipeline.run -j 2` from a serial run's workspace: the
    same bytes (each stage keeps a serial run's threads; only idle threads wait differently), so dvc.lock is
    unchanged and `dvc status` clean. With --threads-per-stage the thread count is the user's: dask_environ says so."""
    from pipeline.run import dask_environ

    ws = copy_workspace(tiny_built[0], tmp_path / "ws")
    before = (ws / "dvc.lock").read_bytes()
    shutil.rmtree(ws / "data" / "features" / "tile")
    out = pipeline_run(ws, "-j", "2", "score@tile-full-0")
    assert out.returncode == 0, out.stdout + out.stderr
    assert ran(out.stdout) == {"features@tile", "train@tile-full-0", "score@tile-full-0"}
    assert (ws / "dvc.lock").read_bytes() == before and status(ws) == set()
    timings = (ws / "reports" / "timings.md").read_text()
    assert "| score@tile-full-0" in timings and "Runner cost per stage" in timings
    assert dask_environ()["OMP_WAIT_POLICY"] == os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    assert dask_environ()["OMP_NUM_THREADS"] == os.environ.get("OMP_NUM_THREADS")
    assert dask_environ(1)["OMP_NUM_THREADS"] == dask_environ(1)["MKL_NUM_THREADS"] == "1"
