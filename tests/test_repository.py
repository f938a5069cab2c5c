"""The committed tree itself: no half-resolved merges in any tracked text file."""

import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
MARKERS = ("<<<<<<< ", "=======\n", ">>>>>>> ")


def tracked_text_files():
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: nothing tracked to check")
    paths = [PROJECT / p for p in out.decode().split("\0") if p]
    return [p for p in paths if p.suffix in {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".sh"}]


def test_no_merge_conflict_markers():
    files = tracked_text_files()
    assert files, "git ls-files listed no text files"
    bad = []
    for path in files:
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(keepends=True), 1):
            if line.startswith(MARKERS[0]) or line == MARKERS[1] or line.startswith(MARKERS[2]):
                bad.append(f"{path.relative_to(PROJECT)}:{number}")
    assert not bad, "merge conflict markers left in: " + ", ".join(bad)
