"""`python -m pipeline.run -j N [--scheduler ADDRESS] [TARGETS...]`: every stale stage of dvc.yaml, in dependency
order, N at a time, through Dask; DVC stays the engine of record (docs/parallel.md).

- The plan is DVC's: `dvc.repo.reproduce.plan_repro` on `repo.index.graph` (what `dvc repro TARGETS` walks); a
  stage is stale when DVC says it changed (`Stage.changed`, what `dvc status` reports) or an upstream stage is
  stale. Each stale stage is one Dask task that depends on its upstream stages' tasks: Dask orders and places
  them, a failed task's dependents never start, the others go on.
- A task runs `dvc --wait-for-lock repro --single-item STAGE` in the workspace: DVC checks the stage, restores it
  from the run-cache or runs it, caches its outputs and writes its entry in dvc.lock under its repository lock
  (released while the command runs, so stages overlap; `--wait-for-lock` queues the short bookkeeping). A
  finished stage is therefore recorded the moment it ends, and nothing half-written ever is.
- In a worker with its own workspace (`FRAD_WORKSPACE`: another clone on another machine, sharing the DVC cache
  or a DVC remote), the task runs `dvc repro STAGE` there (upstream stages come from the run-cache, pulled when
  the workspace has a default remote; results are pushed with the run-cache), and this workspace records
  everything at the end with one serial `dvc repro`, which restores every stage from the run-cache.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

LOGS = Path(".dvc/tmp/run")  # one log per stage, in the workspace that ran it (.dvc/tmp is git-ignored)
DEVICE_PARAM = "train.device"  # stages that take this param run on the accelerator: they hold one GPU slot


class StageFailed(Exception):
    """A stage's `dvc repro` ended non-zero; its dependents are skipped (Dask passes this error on to them)."""

    def __init__(self, stage: str, log: str, returncode: int):
        super().__init__(stage, log, returncode)
        self.stage, self.log, self.returncode = stage, log, returncode

    def __str__(self) -> str:
        return f"stage {self.stage} failed (exit {self.returncode}); log: {self.log}"


@dataclass
class Plan:
    order: list[str]  # every stage of the targets' pipeline, in `dvc repro`'s order
    upstream: dict[str, list[str]]  # stage -> the stages whose outputs it depends on
    stale: list[str]  # the stages to run, in `dvc repro`'s order
    device: set[str] = field(default_factory=set)  # stages that use the accelerator


def plan(root: Path, targets: list[str]) -> Plan:
    """DVC's plan for ``targets`` (all of dvc.yaml when empty) and which of its stages are stale."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo
    from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro

    with Repo(str(root)) as repo, repo.lock:  # what `dvc status` holds while it checks
        graph = get_active_graph(repo.index.graph)
        stages = collect_stages(repo, targets) if targets else None
        steps = plan_repro(graph, stages)
        upstream = {s.addressing: [u.addressing for u in graph.successors(s)] for s in steps}
        stale: set[str] = set()
        for s in steps:  # upstream first: a stage is stale if DVC says it changed or what it reads will change
            if any(u in stale for u in upstream[s.addressing]) or s.changed():
                stale.add(s.addressing)
        device = {
            s.addressing
            for s in steps
            if any(isinstance(d, ParamsDependency) and DEVICE_PARAM in d.params for d in s.deps)
        }
    order = [s.addressing for s in steps]
    return Plan(order, upstream, [s for s in order if s in stale], device)


# --------------------------------------------------------------------------- on the worker


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def dask_environ(threads_per_stage: int | None = None) -> dict[str, str | None]:
    """The environment of the stage commands: the coordinator's values (None: unset) of the variables a Dask nanny
    sets in its worker processes (OMP_NUM_THREADS=1, MALLOC_TRIM_THRESHOLD_, PYTHONHASHSEED, ...), so that a stage
    runs as under a serial `dvc repro`: the same intra-op threads, hence the same arithmetic to the last bit. Idle
    OpenMP threads sleep at once (OMP_WAIT_POLICY=PASSIVE, unless set) instead of spinning on cores the other stages
    need: the scheduling changes, not one result. ``threads_per_stage`` sets the threads instead (faster where stages
    overlap, but trained models, features and maps then differ from a serial run in their last bits)."""
    import dask

    keys = {"PYTHONHASHSEED", "__DASK_PARENT_PID", *dask.config.get("distributed.nanny.pre-spawn-environ", {})}
    keys |= set(dask.config.get("distributed.nanny.environ", {})) | set(THREAD_VARS) | {"OMP_WAIT_POLICY"}
    env = {k: os.environ.get(k) for k in sorted(keys)}
    env["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    if threads_per_stage is not None:
        env.update(dict.fromkeys(THREAD_VARS, str(threads_per_stage)))
    return env


def run_stage(stage: str, root: str, environ: dict[str, str | None], *upstream: object) -> dict:
    """Dask task: run ``stage`` in this worker's workspace (``FRAD_WORKSPACE``, else ``root``) through DVC, in a
    child process that dies with this worker (no orphan keeps writing outputs after a SIGKILL), with ``environ``
    (:func:`dask_environ`) in place of what the worker's nanny set."""
    from distributed import get_worker

    env = {**os.environ, **{k: v for k, v in environ.items() if v is not None}}
    for k in [k for k, v in environ.items() if v is None]:
        env.pop(k, None)
    ws = Path(os.environ.get("FRAD_WORKSPACE") or root).resolve()
    own = ws != Path(root).resolve()
    log = ws / LOGS / f"{stage}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pipeline.run", "--exec-stage", stage, *(["--own-workspace"] if own else [])]
    task_start = time.time()
    with open(log, "w") as out:
        rc = subprocess.call(cmd, cwd=ws, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    task_end = time.time()
    where = f"{socket.gethostname()}:{log}"
    if rc != 0:
        raise StageFailed(stage, where, rc)
    worker = get_worker()
    return {
        "stage": stage,
        "seconds": task_end - task_start,
        "task_start": task_start,
        "task_end": task_end,
        "worker": worker.name,
        "workspace": str(ws),
    }


def _die_with_parent() -> None:
    """This process leads its own process group (start_new_session); when its parent (the Dask worker) dies,
    Linux sends it SIGTERM (PR_SET_PDEATHSIG), and it kills its whole group: DVC and the stage's command."""
    signal.signal(signal.SIGTERM, lambda *_: os.killpg(os.getpgrp(), signal.SIGKILL))
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1 (Linux only)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.killpg(os.getpgrp(), signal.SIGKILL)


def _has_remote(ws: Path) -> bool:
    from dvc.repo import Repo

    with Repo(str(ws)) as repo:
        return bool(repo.config["core"].get("remote"))


def exec_stage(stage: str, own_workspace: bool) -> int:
    """The child of :func:`run_stage`: the DVC commands for one stage; output goes to the stage's log."""
    _die_with_parent()
    dvc = [sys.executable, "-m", "dvc", "--wait-for-lock"]
    if not own_workspace:
        cmds = [[*dvc, "repro", "--single-item", stage]]
    else:  # upstream stages come from the shared cache/remote through the run-cache; results go back there
        remote = _has_remote(Path.cwd())
        cmds = [[*dvc, "repro", *(["--pull"] if remote else []), stage]]
        if remote:
            cmds.append([*dvc, "push", "--run-cache", stage])
    for cmd in cmds:
        rc = _dvc(cmd)
        if rc != 0:
            return rc
    return 0


BUSY = "is busy, it is being blocked by"  # DVC's per-output lock names a process that has not fully exited yet
BUSY_TRIES = 60


def _dvc(cmd: list[str]) -> int:
    """Run one DVC command, its output to ours. A new attempt of a stage whose worker was just killed can find
    DVC's lock on the stage's outputs still held by the old attempt's DVC process for a moment (it is being
    killed, or not yet reaped): DVC checks that before doing anything, so waiting and trying again is safe."""
    for _ in range(BUSY_TRIES):
        print("$", " ".join(cmd[2:]), flush=True)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(proc.stdout, end="", flush=True)
        if proc.returncode == 0 or BUSY not in proc.stdout:
            break
        time.sleep(1)
    return proc.returncode


# --------------------------------------------------------------------------- the coordinator


def _client(args: argparse.Namespace):
    from distributed import Client, LocalCluster

    if args.scheduler:  # an address, or the file `dask scheduler --scheduler-file` writes
        if Path(args.scheduler).is_file():
            return Client(scheduler_file=args.scheduler)
        return Client(args.scheduler)
    # one single-threaded worker process per concurrent stage; the dashboard on a free port when bokeh is there
    cluster = LocalCluster(
        n_workers=args.jobs, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
    )
    return Client(cluster)


def _dashboard(client) -> str:
    try:
        import bokeh  # noqa: F401  (the dashboard needs it: pip install 'frad[cluster]')
    except ImportError:
        return "none (install bokeh for the Dask dashboard)"
    return client.dashboard_link


def _order_lock_like_serial(root: Path, before: list[str], order: list[str]) -> None:
    """Stages enter dvc.lock in the order they finish; `dvc repro` appends them in its plan order. Put the new
    entries in plan order (DVC's own YAML round-trip, under its repository lock) so the file is byte-identical."""
    from dvc.repo import Repo
    from dvc.utils.serialize import modify_yaml

    with Repo(str(root)) as repo, repo.lock:
        lockfile = root / "dvc.lock"
        if not lockfile.exists():
            return
        with modify_yaml(str(lockfile)) as data:
            entries = data.get("stages", {})
            rank = {name: i for i, name in enumerate([*before, *[s for s in order if s not in before]])}
            keys = sorted(entries, key=lambda k: rank.get(k, len(rank)))
            if keys != list(entries):
                items = [(k, entries[k]) for k in keys]
                entries.clear()
                entries.update(items)


def _lock_stages(root: Path) -> list[str]:
    import yaml

    path = root / "dvc.lock"
    return list((yaml.safe_load(path.read_text()) or {}).get("stages", {})) if path.exists() else []


def run(args: argparse.Namespace) -> int:
    from distributed import as_completed

    root = Path.cwd().resolve()
    p = plan(root, args.targets)
    print(f"{len(p.stale)} of {len(p.order)} stages to run ({len(p.order) - len(p.stale)} up to date)", flush=True)
    if not p.stale:
        return 0
    before = _lock_stages(root)
    environ = dask_environ(args.threads_per_stage)  # before the local cluster: its nannies set them in this process
    client = _client(args)
    print(f"Dask scheduler {client.scheduler.address}; dashboard: {_dashboard(client)}", flush=True)
    futures = {}
    for stage in p.stale:  # upstream first, so every dependency already has its future
        deps = [futures[u] for u in p.upstream[stage] if u in futures]
        resources = {"GPU": 1} if args.gpu and stage in p.device else None
        futures[stage] = client.submit(
            run_stage, stage, str(root), environ, *deps, key=f"stage-{stage}", pure=False, resources=resources
        )
    names = {f.key: s for s, f in futures.items()}
    done: list[dict] = []
    failed: dict[str, str] = {}  # stage -> log
    skipped: dict[str, str] = {}  # stage -> the failed upstream stage
    t0 = time.perf_counter()
    for fut in as_completed(futures.values()):
        stage = names[fut.key]
        if fut.status == "finished":
            res = fut.result()
            done.append(res)
            line = f"{stage}  {res['seconds']:.1f} s  worker {res['worker']}"
        else:
            exc = fut.exception()
            if isinstance(exc, StageFailed) and exc.stage != stage:
                skipped[stage] = exc.stage
                line = f"{stage}  skipped: upstream {exc.stage} failed"
            else:
                failed[stage] = exc.log if isinstance(exc, StageFailed) else f"{type(exc).__name__}: {exc}"
                line = f"{stage}  FAILED: {failed[stage]}"
        threads = client.nthreads()  # a worker runs at most nthreads of the tasks it holds
        running = sum(min(len(keys), threads.get(w, 1)) for w, keys in client.processing().items())
        left = len(futures) - len(done) - len(failed) - len(skipped)
        print(f"[{len(done)} done / {running} running / {left - running} left] {line}", flush=True)
    cluster = client.cluster  # the local cluster this run started (None with --scheduler)
    client.close()
    if cluster is not None:
        cluster.close()
    if any(r["workspace"] != str(root) for r in done):  # stages ran in other workspaces: record those here
        print("recording in this workspace: dvc repro (restores the stages from the run-cache)", flush=True)
        pull = ["--pull"] if _has_remote(root) else []
        finished = {r["stage"] for r in done}  # after a failure, only those (a failed stage is not rerun here)
        which = ["--single-item", *(s for s in p.order if s in finished)] if failed else args.targets
        rc = subprocess.call([sys.executable, "-m", "dvc", "repro", *pull, *which])
        if rc != 0:
            return rc
    else:
        _order_lock_like_serial(root, before, p.order)
    wall = time.perf_counter() - t0
    print(f"{len(done)} stages done in {wall:.1f} s", flush=True)
    from .timings import write as write_timings

    here = [r for r in done if r["workspace"] == str(root)]
    threads = f"{args.threads_per_stage} per stage" if args.threads_per_stage else "as a serial run (all cores)"
    load = os.getloadavg()[0]
    note = f"`python -m pipeline.run -j {args.jobs}`: {len(done)} stages in {wall:.1f} s; intra-op threads {threads}; "
    note += f"load average (1 min) at the end {load:.1f}."
    print(f"stage timings: {write_timings(root, here, note)}", flush=True)
    if failed:
        print(f"error: {len(failed)} stage(s) failed ({len(skipped)} dependent stage(s) not run):", file=sys.stderr)
        for stage, log in failed.items():
            print(f"  {stage}: {log}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="*", help="stages or stage families as for dvc repro (default: all)")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="stages at a time (local cluster)")
    ap.add_argument(
        "--scheduler", help="a running Dask scheduler instead: its address (tcp://host:8786) or scheduler file"
    )
    ap.add_argument("--gpu", action="store_true", help="stages that use train.device each hold one GPU slot")
    ap.add_argument(
        "--threads-per-stage",
        type=int,
        metavar="K",
        help="intra-op CPU threads of each stage (default: as serial `dvc repro`, so results are identical; K < "
        "cores overlaps stages better, but features, trained models and maps differ from serial in their last bits)",
    )
    ap.add_argument("--dry-run", action="store_true", help="list the stale stages and the critical path; run none")
    ap.add_argument("--times", type=Path, help="with --dry-run: YAML of seconds per stage family for an estimate")
    ap.add_argument("--exec-stage", help=argparse.SUPPRESS)
    ap.add_argument("--own-workspace", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.exec_stage:
        return exec_stage(args.exec_stage, args.own_workspace)
    if args.jobs < 1:
        ap.error("-j must be at least 1")
    if args.threads_per_stage is not None and args.threads_per_stage < 1:
        ap.error("--threads-per-stage must be at least 1")
    if args.dry_run:
        from .run_plan import dry_run

        return dry_run(plan(Path.cwd().resolve(), args.targets), args.jobs, args.times)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
