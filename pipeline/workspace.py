"""Make a self-contained copy of the pipeline (code, dvc.yaml, params.yaml with overrides) in a folder,
as a fresh git + DVC repository. Used by the offline demo and by the end-to-end tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parent.parent
COPIED = ("dvc.yaml", "params.yaml", "frad", "pipeline", "reports/benchmark.md")


def set_key(params: dict, dotted: str, value: Any) -> None:
    node = params
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[key]
    if last not in node:
        raise KeyError(f"unknown params key {dotted}")
    node[last] = value


def make_workspace(dest: str | Path, overrides: dict[str, Any] | None = None, *, git: bool = True) -> Path:
    """Copy the pipeline into ``dest`` (created; must not exist) and apply ``overrides`` to params.yaml."""
    dest = Path(dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    missing = [name for name in COPIED if not (PROJECT / name).exists()]
    if missing:
        hint = (
            " (run `python -m bench` to write it: the report stage reads it)"
            if "reports/benchmark.md" in missing
            else ""
        )
        raise FileNotFoundError(f"{PROJECT}: {', '.join(missing)} missing{hint}")
    dest.mkdir(parents=True)
    for name in COPIED:
        src = PROJECT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for key, value in (overrides or {}).items():
        set_key(params, key, value)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (dest / ".gitignore").write_text("/data/\n__pycache__/\n")
    if git:
        run = lambda *cmd: subprocess.run(cmd, cwd=dest, check=True, capture_output=True)  # noqa: E731
        run("git", "init", "-q")
        run("git", "config", "user.email", "demo@frad.invalid")
        run("git", "config", "user.name", "frad demo")
        run(sys.executable, "-m", "dvc", "init", "-q")
        shutil.copy2(PROJECT / ".dvc" / "config", dest / ".dvc" / "config")  # cache link types (shared cache)
        shutil.copytree(PROJECT / ".dvc" / "plots", dest / ".dvc" / "plots")  # plot templates of dvc.yaml
        run(sys.executable, "-m", "dvc", "config", "core.autostage", "false")
        run(sys.executable, "-m", "dvc", "config", "core.analytics", "false")
        shutil.copy2(PROJECT / ".dvcignore", dest / ".dvcignore")
        run("git", "add", "-A")
        run("git", "commit", "-q", "-m", "workspace")
    return dest
