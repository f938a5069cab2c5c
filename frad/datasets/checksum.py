"""SHA-256 checksums of downloaded files: an expected digest is the whole SHA-256 or a prefix of it (at least 8
hex digits, as torch hub writes into its file names); :func:`verify_sha256` checks a file against one.

A mismatch or a malformed expected digest raises :class:`~frad.errors.DownloadError` with one line.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from frad.errors import DownloadError

_SHA256_HEX = re.compile(r"[0-9a-f]{64}|[0-9a-f]{8,63}")  # full digest, or a prefix (torch hub file names)


def normalize_sha256(sha256: str) -> str:
    """``sha256`` in lower case; raises :class:`DownloadError` unless it is a digest or a prefix of one."""
    digest = str(sha256).strip().lower()
    if not _SHA256_HEX.fullmatch(digest):
        raise DownloadError(
            f"invalid sha256 {sha256!r}: expected 64 hex digits (or a prefix of at least 8); fix the expected checksum"
        )
    return digest


def digest_matches(actual: str, expected: str) -> bool:
    """``expected`` is the whole SHA-256 or its first digits (torch hub names files ``name-<prefix>.pth``)."""
    return actual.startswith(expected)


def hash_file(path: Path) -> "hashlib._Hash":
    """SHA-256 object over the whole file (can be continued with ``update``)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256")


def verify_sha256(path: str | os.PathLike[str], sha256: str) -> None:
    """Raise :class:`DownloadError` unless ``path`` exists and its SHA-256 equals ``sha256``."""
    path, expected = Path(path), normalize_sha256(sha256)
    if not path.is_file():
        raise DownloadError(f"file not found: {path}; download it first")
    actual = hash_file(path).hexdigest()
    if not digest_matches(actual, expected):
        raise DownloadError(
            f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}; "
            "delete the file and download it again"
        )
