"""Atomic file output: write to a temporary name beside the target, rename when complete.

A killed process therefore never leaves a file or folder under its final name that looks finished.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path (an empty folder when ``is_dir``); on success it replaces ``target``,
    on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):  # left by a killed run (SIGKILL)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it 0700; outputs should read like any other file
    path = tmp if is_dir else tmp / target.name
    try:
        yield path
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(path, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(target: str | os.PathLike, data: Any) -> None:
    """Atomically write pretty, key-sorted JSON (stable bytes for identical data)."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
