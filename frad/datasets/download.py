"""Resumable, checksummed download (a dataset's archive from its mirrors, the WideResNet50-2 weights), and a check of
which URLs answer.

``download`` streams into ``<dest>.part`` (stdlib ``urllib``, tqdm bar) and keeps a sidecar
``<dest>.part.json`` with the server's validators (ETag / Last-Modified) and total size. A re-run
resumes with ``Range: bytes=N-`` + ``If-Range``: if the remote file changed, the server answers 200
and the download restarts from zero. The SHA-256 is computed while streaming (``frad.datasets.checksum``); the file
is renamed onto ``dest`` (``os.replace``) only once size and checksum match. Extracting the archive is
``frad.datasets.archive``.

Every user-fixable failure raises :class:`~frad.errors.DownloadError` with one line:
what is wrong, which file/URL, what to do.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from frad import __version__
from frad.datasets.checksum import digest_matches, hash_file, normalize_sha256
from frad.errors import DownloadError

log = logging.getLogger(__name__)

_USER_AGENT = f"frad/{__version__} (+urllib)"
_RETRY_STATUS = frozenset({408, 429})  # 4xx that mean "try again later"; every other 4xx is final
_MAX_BACKOFF_S = 60.0
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


class _Transient(Exception):
    """A failure worth retrying (5xx, connection lost); the .part prefix stays valid."""


class _Restart(Exception):
    """The .part cannot be continued (remote changed); discard it and start again from zero."""


@dataclass
class _PartState:
    """Contents of the ``<dest>.part.json`` sidecar: what the .part prefix was downloaded from."""

    url: str
    sha256: str
    etag: str | None = None
    last_modified: str | None = None
    total: int | None = None

    def if_range(self) -> str | None:
        """Validator for ``If-Range``: a strong ETag, else Last-Modified (weak ETags are not allowed)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


# --------------------------------------------------------------------------- download


def probe(url: str, timeout: float) -> str | None:
    """None if the host of ``url`` (or its proxy) accepts a TCP connection within ``timeout`` seconds, DNS
    included; else a short reason. Runs in a daemon thread, so a hanging resolver cannot block the caller
    (``urlopen``'s timeout does not cover name resolution)."""
    target = urllib.request.getproxies().get(urllib.parse.urlparse(url).scheme) or url
    parts = urllib.parse.urlparse(target if "://" in target else f"http://{target}")
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    result: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except Exception as err:  # OSError, or e.g. UnicodeError for a malformed host
            result.append(f"{type(err).__name__}: {err}")

    worker = threading.Thread(target=connect, name="frad-download-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    return result[0] if result else f"no answer from {host}:{port} within {timeout:g} s"


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Exclusive ``flock`` on ``folder`` itself: concurrent downloads into one folder (e.g. several stages
    fetching the same weights) take turns on the shared ``.part`` instead of interleaving; no lock file."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _discard(part: Path) -> None:
    """Remove a .part and its sidecar."""
    part.unlink(missing_ok=True)
    _sidecar(part).unlink(missing_ok=True)


def _load_state(part: Path) -> _PartState | None:
    try:
        return _PartState(**json.loads(_sidecar(part).read_text()))
    except (OSError, ValueError, TypeError):  # missing, unreadable or not our format
        return None


def _save_state(part: Path, state: _PartState) -> None:
    _sidecar(part).write_text(json.dumps(asdict(state)))


def _resume_point(part: Path, url: str, sha256: str, size: int | None) -> tuple[int, _PartState | None]:
    """Bytes of ``part`` that may be kept (0 = start over, the .part is discarded) and its sidecar."""
    if not part.exists():
        _sidecar(part).unlink(missing_ok=True)
        return 0, None
    state, offset = _load_state(part), part.stat().st_size
    limit = size if size is not None else state.total if state is not None else None
    reason = None
    if state is None:
        reason = "no readable sidecar"
    elif state.url != url or state.sha256 != sha256:
        reason = "it belongs to another URL or checksum"
    elif size is not None and state.total is not None and state.total != size:
        reason = f"its recorded total {state.total} differs from the expected {size} bytes"
    elif limit is not None and offset > limit:
        reason = f"it is larger ({offset} bytes) than the file ({limit} bytes)"
    if reason is not None:
        log.warning("discarding %s: %s; restarting from zero", part, reason)
        _discard(part)
        return 0, None
    return offset, state


def _parse_content_range(value: str | None) -> tuple[int, int | None] | None:
    """``bytes start-end/total`` → (start, total or None); None if absent/unparseable."""
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match is None:
        return None
    total = match.group(3)
    return int(match.group(1)), (None if total == "*" else int(total))


def _content_length(headers: http.client.HTTPMessage) -> int | None:
    try:
        return int(headers["Content-Length"])
    except (TypeError, ValueError):
        return None


def _open(url: str, headers: dict[str, str], timeout: float) -> http.client.HTTPResponse:
    """``urlopen`` mapping failures to :class:`_Transient` (retry) or :class:`DownloadError` (final)."""
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity", **headers}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        what = f"HTTP {err.code} {err.reason} from {url}"
        if err.code == 416:  # our Range is past the end: the .part is longer than the remote file
            raise _Restart(what) from None
        if err.code >= 500 or err.code in _RETRY_STATUS:
            raise _Transient(what) from None
        raise DownloadError(f"download failed: {what}; check the URL or download the file by hand") from None
    except urllib.error.URLError as err:
        raise _Transient(f"cannot reach {url}: {err.reason}") from None
    except (OSError, http.client.HTTPException) as err:  # timeout, reset, bad status line
        raise _Transient(f"connection to {url} failed: {err!r}") from None
    except ValueError as err:  # malformed URL
        raise DownloadError(f"invalid download URL {url!r}: {err}; fix the URL") from None


def _fetch(
    url: str, part: Path, sha256: str, size: int | None, timeout: float, chunk_size: int, bar: tqdm
) -> "hashlib._Hash":
    """One attempt: complete ``part`` (resuming when possible) and return its SHA-256 object."""
    offset, state = _resume_point(part, url, sha256, size)
    known_total = size if size is not None else state.total if state else None
    if offset and known_total is not None and offset == known_total:
        bar.reset(total=known_total)
        bar.update(offset)
        return hash_file(part)  # complete .part left by an interrupted run

    headers: dict[str, str] = {}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if state is not None and state.if_range():
            headers["If-Range"] = state.if_range()
    with _open(url, headers, timeout) as resp:
        status = resp.status or 200  # non-HTTP handlers (file://) report None
        if status == 206:
            crange = _parse_content_range(resp.headers.get("Content-Range"))
            if crange is None or crange[0] != offset:
                raise _Restart(f"unusable Content-Range {resp.headers.get('Content-Range')!r} from {url}")
            start, total = crange
            etag = resp.headers.get("ETag")
            if state is not None and state.total is not None and total is not None and total != state.total:
                raise _Restart(f"remote size changed from {state.total} to {total} bytes")
            if state is not None and state.etag and etag and etag != state.etag:
                raise _Restart(f"remote ETag changed from {state.etag} to {etag}")
        else:  # full body: fresh start, server ignored Range, or If-Range failed (remote changed)
            if offset:
                log.warning("%s: server sent the whole file (HTTP %s); restarting from zero", url, status)
            start, total = 0, _content_length(resp.headers)
        if size is not None and total is not None and total != size:
            _discard(part)
            raise DownloadError(
                f"{url} has {total} bytes but {size} were expected; the remote file changed — "
                "check the URL or update the expected size and checksum"
            )
        if start == 0:  # (re)start: new sidecar with this response's validators
            state = _PartState(url, sha256, resp.headers.get("ETag"), resp.headers.get("Last-Modified"), total)
            _save_state(part, state)
            hasher, mode = hashlib.sha256(), "wb"
        else:
            hasher, mode = hash_file(part), "ab"  # hash the kept prefix first
            log.info("resuming %s at byte %d", part, start)
        bar.reset(total=total)
        bar.update(start)
        received = _stream(resp, part, mode, hasher, chunk_size, bar, start)
    if total is not None and received < total:
        raise _Transient(f"connection closed after {received} of {total} bytes")
    return hasher


def _stream(
    resp: http.client.HTTPResponse,
    part: Path,
    mode: str,
    hasher: "hashlib._Hash",
    chunk_size: int,
    bar: tqdm,
    received: int,
) -> int:
    """Append the response body to ``part``; returns the .part size reached."""
    try:
        f = part.open(mode)
    except OSError as err:
        raise DownloadError(f"cannot write {part}: {err.strerror}; check permissions and free space") from None
    with f:
        while True:
            try:
                chunk = resp.read(chunk_size)
            except (OSError, http.client.HTTPException) as err:  # reset / timeout mid-body: prefix is valid
                f.flush()
                raise _Transient(f"connection lost after {received} bytes: {err!r}") from None
            if not chunk:
                return received
            try:
                f.write(chunk)
            except OSError as err:
                raise DownloadError(
                    f"cannot write {part}: {err.strerror}; free disk space and run again (it resumes)"
                ) from None
            hasher.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))


def download(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str,
    size: int | None = None,
    *,
    progress: bool = True,
    timeout: float = 30.0,
    retries: int = 3,
    chunk_size: int = 1 << 20,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` to ``dest`` and verify its SHA-256 (and ``size`` if given); returns ``dest``.

    Resumes an interrupted ``<dest>.part``; retries 5xx/408/429 and connection errors ``retries``
    times with exponential back-off (``backoff`` s, doubling); any other HTTP error is final.
    An existing ``dest`` with the right checksum is returned at once. ``sha256`` may be a prefix of the
    digest (at least 8 hex digits). Processes downloading into the same folder take turns.
    """
    dest, sha256 = Path(dest), normalize_sha256(sha256)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(dest.parent):
        return _download_locked(url, dest, sha256, size, progress, timeout, retries, chunk_size, backoff)


def _download_locked(
    url: str,
    dest: Path,
    sha256: str,
    size: int | None,
    progress: bool,
    timeout: float,
    retries: int,
    chunk_size: int,
    backoff: float,
) -> Path:
    part = dest.with_name(dest.name + ".part")
    if dest.is_file() and (size is None or dest.stat().st_size == size):
        if digest_matches(hash_file(dest).hexdigest(), sha256):
            return dest
        log.warning("%s exists but its checksum differs; downloading it again", dest)

    failures, last = 0, ""
    with tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name, disable=not progress) as bar:
        while True:
            try:
                hasher = _fetch(url, part, sha256, size, timeout, chunk_size, bar)
                break
            except (_Restart, _Transient) as err:
                if isinstance(err, _Restart):
                    log.warning("%s; restarting %s from zero", err, part)
                    if part.exists():  # dropping a kept prefix is free; a restart without one counts as a try
                        _discard(part)
                        continue
                failures, last = failures + 1, str(err)
                if failures > retries:
                    break
                delay = min(backoff * 2 ** (failures - 1), _MAX_BACKOFF_S)
                log.warning("%s; retry %d/%d in %.1f s", err, failures, retries, delay)
                time.sleep(delay)
    if failures > retries:
        kept = part.stat().st_size if part.exists() else 0
        hint = f"{part} keeps {kept} bytes; run again to resume" if kept else "run again later"
        attempts = f"{failures} attempt" + ("s" if failures > 1 else "")
        raise DownloadError(f"download of {url} failed after {attempts}: {last}; {hint}")

    actual_size = part.stat().st_size
    if size is not None and actual_size != size:
        _discard(part)
        raise DownloadError(
            f"size mismatch for {dest}: expected {size} bytes, got {actual_size}; "
            "the partial file was deleted — run again to download it anew"
        )
    actual = hasher.hexdigest()
    if not digest_matches(actual, sha256):
        _discard(part)
        raise DownloadError(
            f"checksum mismatch for {dest}: expected sha256 {sha256}, got {actual}; "
            "the file was deleted — run again to download it anew, or check the URL and expected checksum"
        )
    os.replace(part, dest)
    _sidecar(part).unlink(missing_ok=True)
    return dest


# --------------------------------------------------------------------------- mirrors


class NoMirrorError(DownloadError):
    """Every mirror failed: one block (a line per URL with its reason, then what to do), kept as written."""

    def __init__(self, message: str):
        Exception.__init__(self, message)


def download_first(
    urls: list[str] | tuple[str, ...],
    dest: str | os.PathLike[str],
    sha256: str,
    size: int | None = None,
    *,
    manual: str = "",
    probe_timeout: float = 10.0,
    **kwargs,
) -> Path:
    """Download ``dest`` from the first of ``urls`` (mirrors, tried in order) that serves the file with this
    SHA-256 (and ``size``); an existing verified ``dest`` is returned at once. An unreachable host is skipped after
    one connection attempt; an HTTP error, a wrong size or checksum moves on to the next mirror. When all fail:
    :class:`NoMirrorError` listing each URL with its reason, then ``manual`` (how to use a copy made by hand)."""
    dest = Path(dest)
    failures: list[tuple[str, str]] = []
    for url in urls:
        reason = probe(url, probe_timeout)
        if reason is None:
            try:
                return download(url, dest, sha256, size, **kwargs)
            except DownloadError as err:
                reason = str(err)
        log.warning("mirror %s failed: %s", url, reason)
        failures.append((url, reason))
    lines = [f"no mirror served {dest.name} (sha256 {normalize_sha256(sha256)}):"]
    lines += [f"  {url}: {reason}" for url, reason in failures] or ["  (no URL given)"]
    raise NoMirrorError("\n".join([*lines, *([manual] if manual else [])]))


@dataclass(frozen=True)
class UrlStatus:
    """What one URL answered: ``ok`` when it serves a file (of ``size`` bytes where that is known)."""

    url: str
    ok: bool
    status: str


def _human(n: int | None) -> str:
    if n is None:
        return "size not given"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def check_url(url: str, size: int | None = None, timeout: float = 8.0) -> UrlStatus:
    """One request for the first byte of ``url`` (``Range: bytes=0-0``, redirects followed): its HTTP status,
    the file size it announces, or why it did not answer."""
    reason = probe(url, timeout)
    if reason is not None:
        return UrlStatus(url, False, f"unreachable: {reason}")
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity", "Range": "bytes=0-0"}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            status, final = resp.status or 200, resp.geturl()
            crange = _parse_content_range(resp.headers.get("Content-Range"))
            total = crange[1] if crange else _content_length(resp.headers)
    except urllib.error.HTTPError as err:
        err.close()
        return UrlStatus(url, False, f"HTTP {err.code} {err.reason}")
    except urllib.error.URLError as err:
        why = err.reason
        if isinstance(why, (TimeoutError, socket.timeout)):
            return UrlStatus(url, False, f"no answer within {timeout:g} s")
        return UrlStatus(url, False, f"unreachable: {why}")
    except (TimeoutError, socket.timeout):
        return UrlStatus(url, False, f"no answer within {timeout:g} s")
    except (OSError, http.client.HTTPException, ValueError) as err:
        return UrlStatus(url, False, f"failed: {err!r}")
    moved = f", redirected to {final}" if final != url else ""
    if size is not None and total is not None and total != size:
        return UrlStatus(url, False, f"HTTP {status}: serves {total} bytes, not the expected {size}{moved}")
    return UrlStatus(url, True, f"HTTP {status}, {_human(total)}{moved}")


def check_urls(checks: list[tuple[str, int | None]], timeout: float = 8.0) -> list[UrlStatus]:
    """:func:`check_url` of every ``(url, size)`` at once, in daemon threads: the whole check ends within about
    ``timeout`` seconds, whatever the network does (a URL still waiting then reads "no answer")."""
    results: dict[int, UrlStatus] = {}
    deadline = time.monotonic() + timeout + 0.5

    def run(i: int, url: str, size: int | None) -> None:
        results[i] = check_url(url, size, timeout)

    threads = [
        threading.Thread(target=run, args=(i, url, size), name="frad-url-check", daemon=True)
        for i, (url, size) in enumerate(checks)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return [
        results.get(i) or UrlStatus(url, False, f"no answer within {timeout:g} s") for i, (url, _) in enumerate(checks)
    ]
