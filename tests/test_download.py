"""frad.datasets.download, frad.datasets.checksum: resumable checksummed download against a local fault-injecting server;
frad.datasets.archive: safe extraction."""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
import time
from pathlib import Path

import pytest

from frad.datasets.archive import list_top_dirs, safe_extract
from frad.datasets.checksum import verify_sha256
from frad.datasets.download import NoMirrorError, check_urls, download, download_first
from frad.errors import DownloadError

try:  # tests/ is a rootdir-less folder (pytest puts it on sys.path) or a package
    from http_fixture import FileServer, RouteServer
except ImportError:  # pragma: no cover
    from tests.http_fixture import FileServer, RouteServer

K = 3000  # bytes sent before an injected connection reset
FAST = {"progress": False, "backoff": 0.0, "chunk_size": 1024, "timeout": 5.0}

# A fake MVTec-like tree: category folders with train/test/ground_truth and a top-level license.
_RNG = random.Random(0)
TREE: dict[str, bytes] = {
    "bottle/train/good/000.png": _RNG.randbytes(4000),
    "bottle/test/good/000.png": _RNG.randbytes(3000),
    "bottle/test/broken_large/000.png": _RNG.randbytes(3000),
    "bottle/ground_truth/broken_large/000_mask.png": _RNG.randbytes(500),
    "grid/train/good/000.png": _RNG.randbytes(2000),
    "license.txt": b"CC BY-NC-SA 4.0\n",
}


def _tar_xz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """Deterministic .tar.xz from (TarInfo, data) pairs; directories are implied by the paths."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for info, data in members:
            info.mtime = 1_600_000_000
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


def _fake_mvtec(prefix: str = "") -> bytes:
    return _tar_xz([_file(prefix + name, data) for name, data in TREE.items()])


ARCHIVE = _fake_mvtec()
SHA = hashlib.sha256(ARCHIVE).hexdigest()


@pytest.fixture
def server():
    with FileServer(ARCHIVE) as srv:
        yield srv


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part.json")


def _write_part(dest: Path, data: bytes, url: str, etag: str | None = '"v1"', total: int | None = None) -> None:
    """Leave a .part + sidecar as an interrupted earlier run would have."""
    _part(dest).write_bytes(data)
    _sidecar(dest).write_text(
        json.dumps(
            {
                "url": url,
                "sha256": SHA,
                "etag": etag,
                "last_modified": None,
                "total": len(ARCHIVE) if total is None else total,
            }
        )
    )


def _assert_one_line(err: pytest.ExceptionInfo[DownloadError], *needles: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


# --------------------------------------------------------------------------- constants


def test_registry_describes_each_official_archive_and_params_list_its_mirrors():
    from frad.datasets.registry import DATASETS
    from pipeline.params import load_params
    from pipeline.workspace import PROJECT

    mvtec = DATASETS["mvtec_ad"]
    assert mvtec.size == 5_264_982_680 and mvtec.sha256.startswith("cf4313b1") and mvtec.sha256.endswith("cd3d")
    assert "shares/38536/3830184030e49fe74747669442f0f282" not in " ".join(mvtec.mirrors)  # HTTP 404 since 2025
    assert DATASETS["visa"].sha256 == "2eb8690c803ab37de0324772964100169ec8ba1fa3f7e94291c9ca673f40f362"
    data = load_params(PROJECT / "params.yaml").data
    for name, spec in DATASETS.items():
        if spec.sha256 is None:
            continue
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0 and spec.page.startswith("https://")
        assert spec.mirrors and all(u.startswith("https://") and u.endswith("/" + spec.filename) for u in spec.mirrors)
        assert data.urls[name] == spec.mirrors, name  # params.yaml lists the registry's mirrors, official first


# --------------------------------------------------------------------------- download


def test_download_plain_verifies_checksum_and_leaves_no_part(server, tmp_path):
    dest = tmp_path / "sub" / "a.tar.xz"
    assert download(server.url, dest, SHA, len(ARCHIVE), **FAST) == dest
    assert dest.read_bytes() == ARCHIVE
    assert not _part(dest).exists() and not _sidecar(dest).exists()
    assert [(r["range"], r["status"]) for r in server.requests] == [(None, 200)]


def test_download_existing_file_with_right_checksum_is_not_fetched(server, tmp_path):
    dest = tmp_path / "a.tar.xz"
    dest.write_bytes(ARCHIVE)
    assert download(server.url, dest, SHA.upper(), len(ARCHIVE), **FAST) == dest
    assert server.requests == []


def test_download_existing_file_with_wrong_checksum_is_replaced(server, tmp_path):
    dest = tmp_path / "a.tar.xz"
    dest.write_bytes(b"stale" * 10)
    download(server.url, dest, SHA, **FAST)
    assert dest.read_bytes() == ARCHIVE and len(server.requests) == 1


DROPS = pytest.mark.parametrize("kind", ["fin", "rst"], ids=["clean_close", "tcp_reset"])


def _range_start(request: dict) -> int | None:
    return None if request["range"] is None else int(request["range"][len("bytes=") : -1])


@DROPS
def test_download_resumes_with_range_after_connection_drop(server, tmp_path, kind):
    server.reset_after, server.reset_times, server.reset_kind = K, 1, kind
    dest = tmp_path / "a.tar.xz"
    download(server.url, dest, SHA, len(ARCHIVE), **FAST)
    assert dest.read_bytes() == ARCHIVE
    first, retry = server.requests
    assert first == {"range": None, "if_range": None, "status": f"200+{kind}"}
    if kind == "fin":  # the client got exactly K bytes and asks for the rest
        assert retry == {"range": f"bytes={K}-", "if_range": '"v1"', "status": 206}
    else:  # an RST may discard bytes the client had not read yet: it resumes from what it kept
        kept = _range_start(retry)
        assert (kept is None and retry["status"] == 200) or (0 < kept <= K and retry["status"] == 206)


def test_download_rerun_resumes_part_left_by_failed_run(server, tmp_path):
    server.reset_after, server.reset_times, server.reset_kind = K, 1, "fin"
    dest = tmp_path / "a.tar.xz"
    with pytest.raises(DownloadError) as err:
        download(server.url, dest, SHA, len(ARCHIVE), retries=0, **FAST)
    _assert_one_line(err, server.url, str(_part(dest)), f"keeps {K} bytes", "run again to resume")
    assert _part(dest).read_bytes() == ARCHIVE[:K] and _sidecar(dest).exists()
    download(server.url, dest, SHA, len(ARCHIVE), **FAST)
    assert dest.read_bytes() == ARCHIVE and not _part(dest).exists()
    assert server.requests[-1]["range"] == f"bytes={K}-"


def test_download_complete_part_is_verified_without_request(server, tmp_path):
    dest = tmp_path / "a.tar.xz"
    _write_part(dest, ARCHIVE, server.url)
    download(server.url, dest, SHA, **FAST)
    assert dest.read_bytes() == ARCHIVE and server.requests == []


def test_download_corrupted_content_is_rejected_and_removed(server, tmp_path):
    server.corrupt = True
    dest = tmp_path / "a.tar.xz"
    with pytest.raises(DownloadError) as err:
        download(server.url, dest, SHA, len(ARCHIVE), **FAST)
    bad = hashlib.sha256(
        ARCHIVE[: len(ARCHIVE) // 2] + bytes([ARCHIVE[len(ARCHIVE) // 2] ^ 0xFF]) + ARCHIVE[len(ARCHIVE) // 2 + 1 :]
    ).hexdigest()
    _assert_one_line(err, "checksum mismatch", str(dest), SHA, bad, "run again")
    assert not dest.exists() and not _part(dest).exists() and not _sidecar(dest).exists()


def test_download_stale_part_with_changed_validator_restarts_from_zero(server, tmp_path):
    dest = tmp_path / "a.tar.xz"
    _write_part(dest, b"old bytes of a previous upstream version", server.url, etag='"v0"')
    download(server.url, dest, SHA, len(ARCHIVE), **FAST)
    assert dest.read_bytes() == ARCHIVE
    (only,) = server.requests
    assert only["if_range"] == '"v0"' and only["range"] is not None and only["status"] == 200


def test_download_remote_change_between_attempts_restarts_from_zero(tmp_path):
    new = _fake_mvtec(prefix="v2/")
    with FileServer(ARCHIVE) as srv:
        srv.reset_after, srv.reset_times, srv.reset_kind = K, 1, "fin"
        srv.next_version = (new, '"v2"')
        dest = tmp_path / "a.tar.xz"
        download(srv.url, dest, hashlib.sha256(new).hexdigest(), **FAST)
    assert dest.read_bytes() == new
    first, retry = srv.requests
    assert retry == {"range": f"bytes={K}-", "if_range": '"v1"', "status": 200}


def test_download_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.reset_after, server.reset_times, server.reset_kind = K, 1, "fin"
    server.honor_range = False
    dest = tmp_path / "a.tar.xz"
    download(server.url, dest, SHA, len(ARCHIVE), **FAST)
    assert dest.read_bytes() == ARCHIVE
    assert [(r["range"], r["status"]) for r in server.requests] == [(None, "200+fin"), (f"bytes={K}-", 200)]


def test_download_part_larger_than_expected_size_is_discarded(server, tmp_path):
    dest = tmp_path / "a.tar.xz"
    _write_part(dest, ARCHIVE + b"trailing junk", server.url)
    download(server.url, dest, SHA, len(ARCHIVE), **FAST)
    assert dest.read_bytes() == ARCHIVE
    assert [r["range"] for r in server.requests] == [None]


def test_download_part_whose_total_differs_from_server_is_discarded(server, tmp_path):
    dest = tmp_path / "a.tar.xz"
    _write_part(dest, ARCHIVE[:K], server.url, total=len(ARCHIVE) + 7)
    download(server.url, dest, SHA, **FAST)  # no expected size: the sidecar total is all we know
    assert dest.read_bytes() == ARCHIVE
    assert [(r["range"], r["status"]) for r in server.requests] == [(f"bytes={K}-", 206), (None, 200)]


def test_download_range_not_satisfiable_restarts_from_zero(server, tmp_path):
    dest = tmp_path / "a.tar.xz"
    _write_part(dest, b"x" * (len(ARCHIVE) + 5), server.url, total=None)
    _sidecar(dest).write_text(json.dumps({"url": server.url, "sha256": SHA}))  # total unknown
    download(server.url, dest, SHA, **FAST)
    assert dest.read_bytes() == ARCHIVE
    assert [r["status"] for r in server.requests] == [416, 200]


def test_download_remote_size_differing_from_expected_fails_fast(server, tmp_path):
    dest = tmp_path / "a.tar.xz"
    with pytest.raises(DownloadError) as err:
        download(server.url, dest, SHA, len(ARCHIVE) + 1, **FAST)
    _assert_one_line(err, server.url, str(len(ARCHIVE)), str(len(ARCHIVE) + 1))
    assert not dest.exists() and not _part(dest).exists() and len(server.requests) == 1


def test_download_http_404_is_one_line_error_without_retry(server, tmp_path):
    dest = tmp_path / "a.tar.xz"
    url = server.url.replace(server.name, "missing.tar.xz")
    with pytest.raises(DownloadError) as err:
        download(url, dest, SHA, **FAST)
    _assert_one_line(err, url, "HTTP 404")
    assert len(server.requests) == 1 and not dest.exists() and not _part(dest).exists()


def test_download_persistent_http_500_fails_after_retries(server, tmp_path):
    server.fail_status, server.fail_times = 500, -1
    dest = tmp_path / "a.tar.xz"
    with pytest.raises(DownloadError) as err:
        download(server.url, dest, SHA, retries=2, **FAST)
    _assert_one_line(err, server.url, "HTTP 500", "after 3 attempts", "run again")
    assert len(server.requests) == 3 and not dest.exists()


def test_download_transient_http_500_recovers(server, tmp_path):
    server.fail_status, server.fail_times = 500, 1
    dest = tmp_path / "a.tar.xz"
    download(server.url, dest, SHA, len(ARCHIVE), **FAST)
    assert dest.read_bytes() == ARCHIVE
    assert [r["status"] for r in server.requests] == [500, 200]


@DROPS
def test_download_reset_on_every_attempt_fails_and_keeps_part(server, tmp_path, kind):
    server.reset_after, server.reset_times, server.reset_kind = K, -1, kind
    dest = tmp_path / "a.tar.xz"
    with pytest.raises(DownloadError) as err:
        download(server.url, dest, SHA, len(ARCHIVE), retries=2, **FAST)
    _assert_one_line(err, server.url, "after 3 attempts", "run again")
    kept = _part(dest).read_bytes()
    assert kept == ARCHIVE[: len(kept)] and _sidecar(dest).exists() and not dest.exists()
    assert len(server.requests) == 3
    if kind == "fin":  # each attempt adds exactly K bytes, resuming where the last one stopped
        assert len(kept) == 3 * K and f"keeps {3 * K} bytes; run again to resume" in str(err.value)
        assert [r["range"] for r in server.requests] == [None, f"bytes={K}-", f"bytes={2 * K}-"]
    else:
        assert len(kept) <= 3 * K


def test_download_connection_refused_fails_after_retries(tmp_path):
    with FileServer(ARCHIVE) as srv:
        url = srv.url
    dest = tmp_path / "a.tar.xz"
    with pytest.raises(DownloadError) as err:
        download(url, dest, SHA, retries=1, **FAST)
    _assert_one_line(err, url, "after 2 attempts", "run again later")


def test_download_invalid_sha256_is_rejected(server, tmp_path):
    with pytest.raises(DownloadError) as err:
        download(server.url, tmp_path / "a", "abc", **FAST)
    _assert_one_line(err, "invalid sha256", "'abc'")
    assert server.requests == []


def test_download_malformed_url_is_rejected(tmp_path):
    with pytest.raises(DownloadError) as err:
        download("not-a-url", tmp_path / "a", SHA, **FAST)
    _assert_one_line(err, "invalid download URL", "'not-a-url'")


def test_verify_sha256_accepts_match_and_names_file_on_mismatch(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(ARCHIVE)
    verify_sha256(path, SHA)
    with pytest.raises(DownloadError) as err:
        verify_sha256(path, "0" * 64)
    _assert_one_line(err, str(path), "0" * 64, SHA)
    with pytest.raises(DownloadError, match="not found"):
        verify_sha256(tmp_path / "missing", SHA)


# --------------------------------------------------------------------------- extraction


def _archive(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "in.tar.xz"
    path.write_bytes(data)
    return path


def _assert_nothing_extracted(target: Path, archive: Path) -> None:
    """No target and no leftover temporary sibling: only the archive remains next to it."""
    assert not target.exists()
    assert sorted(p.name for p in target.parent.iterdir()) == [archive.name]


def _refused(tmp_path: Path, bad: tuple[tarfile.TarInfo, bytes | None], *needles: str) -> None:
    """A good member, then ``bad``: extraction must fail naming ``bad`` and leave nothing behind."""
    archive = _archive(tmp_path, _tar_xz([_file("bottle/ok.png", b"ok"), bad]))
    target = tmp_path / "out"
    with pytest.raises(DownloadError) as err:
        safe_extract(archive, target)
    _assert_one_line(err, repr(bad[0].name), str(archive), *needles)
    _assert_nothing_extracted(target, archive)


def test_safe_extract_extracts_tree_and_leaves_no_temporary(tmp_path):
    archive = _archive(tmp_path, ARCHIVE)
    target = tmp_path / "mvtec"
    assert safe_extract(archive, target) == target
    for name, data in TREE.items():
        assert (target / name).read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tar.xz", "mvtec"]


def test_safe_extract_strip_prefix_drops_top_directory(tmp_path):
    archive = _archive(tmp_path, _fake_mvtec(prefix="mvtec_anomaly_detection/"))
    assert list_top_dirs(archive) == ["mvtec_anomaly_detection"]
    target = safe_extract(archive, tmp_path / "mvtec", strip_prefix="mvtec_anomaly_detection")
    assert (target / "bottle/train/good/000.png").read_bytes() == TREE["bottle/train/good/000.png"]


def test_safe_extract_strip_prefix_matching_nothing_fails(tmp_path):
    archive = _archive(tmp_path, ARCHIVE)
    target = tmp_path / "out"
    with pytest.raises(DownloadError) as err:
        safe_extract(archive, target, strip_prefix="nope")
    _assert_one_line(err, "'nope'", "bottle, grid")
    _assert_nothing_extracted(target, archive)


def test_safe_extract_allows_symlink_inside_target(tmp_path):
    link = _special("b/link.png", tarfile.SYMTYPE, "../a/x.png")
    archive = _archive(tmp_path, _tar_xz([_file("a/x.png", b"x"), link]))
    target = safe_extract(archive, tmp_path / "out")
    assert (target / "b/link.png").read_bytes() == b"x"


def test_safe_extract_refuses_existing_nonempty_target(tmp_path):
    archive = _archive(tmp_path, ARCHIVE)
    target = tmp_path / "out"
    (target / "keep").mkdir(parents=True)
    with pytest.raises(DownloadError) as err:
        safe_extract(archive, target)
    _assert_one_line(err, str(target), "delete it")
    assert [p.name for p in target.iterdir()] == ["keep"]


def test_safe_extract_truncated_archive(tmp_path):
    archive = _archive(tmp_path, ARCHIVE[: len(ARCHIVE) * 2 // 3])
    target = tmp_path / "out"
    with pytest.raises(DownloadError) as err:
        safe_extract(archive, target)
    _assert_one_line(err, "archive is truncated or corrupt", str(archive), "delete it and download again")
    _assert_nothing_extracted(target, archive)


def test_safe_extract_not_an_archive(tmp_path):
    archive = _archive(tmp_path, b"<html>login required</html>")
    target = tmp_path / "out"
    with pytest.raises(DownloadError) as err:
        safe_extract(archive, target)
    _assert_one_line(err, "archive is truncated or corrupt", str(archive))
    _assert_nothing_extracted(target, archive)


def test_safe_extract_refuses_absolute_path_member(tmp_path):
    _refused(tmp_path, _file("/tmp/frad-evil.txt", b"evil"), "absolute path")
    assert not Path("/tmp/frad-evil.txt").exists()


def test_safe_extract_refuses_dotdot_member(tmp_path):
    _refused(tmp_path, _file("bottle/../../evil.txt", b"evil"), "'..'")
    assert not (tmp_path.parent / "evil.txt").exists()


def test_safe_extract_refuses_symlink_pointing_outside(tmp_path):
    _refused(tmp_path, _special("bottle/link", tarfile.SYMTYPE, "../../outside"), "symlink", "leaves the target")


def test_safe_extract_refuses_absolute_symlink(tmp_path):
    _refused(tmp_path, _special("bottle/link", tarfile.SYMTYPE, "/etc/passwd"), "absolute")


def test_safe_extract_refuses_hardlink_pointing_outside(tmp_path):
    _refused(tmp_path, _special("bottle/hard", tarfile.LNKTYPE, "../outside.txt"), "hardlink", "leaves the target")


def test_safe_extract_refuses_device_file_member(tmp_path):
    _refused(tmp_path, _special("bottle/dev", tarfile.CHRTYPE), "device file")


def test_safe_extract_refuses_fifo_member(tmp_path):
    _refused(tmp_path, _special("bottle/pipe", tarfile.FIFOTYPE), "fifo")


def test_list_top_dirs_lists_categories_and_flags_truncation(tmp_path):
    assert list_top_dirs(_archive(tmp_path, ARCHIVE)) == ["bottle", "grid"]
    with pytest.raises(DownloadError, match="truncated or corrupt"):
        list_top_dirs(_archive(tmp_path, ARCHIVE[:200]))


# --------------------------------------------------------------------------- mirrors and the link check


def test_download_first_moves_past_dead_mirrors_to_one_that_serves_the_archive(server, tmp_path):
    with RouteServer(ARCHIVE) as routes:
        dead = [routes.url("missing"), routes.url("forbidden"), "http://127.0.0.1:9/closed-port"]
        got = download_first([*dead, server.url], tmp_path / "a.tar.xz", SHA, len(ARCHIVE), **FAST)
    assert got.read_bytes() == ARCHIVE


def test_download_first_rejects_a_mirror_serving_other_bytes_and_takes_the_next(server, tmp_path):
    with FileServer(ARCHIVE[::-1]) as other:
        got = download_first([other.url, server.url], tmp_path / "a.tar.xz", SHA, **FAST)
    assert got.read_bytes() == ARCHIVE and not _part(tmp_path / "a.tar.xz").exists()


def test_when_every_mirror_fails_one_block_names_each_url_and_what_to_do(tmp_path):
    with RouteServer(ARCHIVE) as routes:
        urls = [routes.url("missing"), routes.url("forbidden"), "http://127.0.0.1:9/closed-port"]
        with pytest.raises(NoMirrorError) as err:
            download_first(urls, tmp_path / "a.tar.xz", SHA, manual="Download it by hand from PAGE", **FAST)
    lines = str(err.value).splitlines()
    assert lines[0].startswith("no mirror served a.tar.xz") and lines[-1] == "Download it by hand from PAGE"
    assert "404" in lines[1] and urls[0] in lines[1] and "403" in lines[2] and urls[2] in lines[3]
    assert "unreachable" in lines[3] or "refused" in lines[3].lower()
    assert not list(tmp_path.iterdir())  # nothing downloaded, nothing half-written


def test_link_check_reports_each_answer_and_never_hangs():
    with RouteServer(ARCHIVE) as routes:
        names = ("ok", "missing", "forbidden", "moved", "stall")
        t0 = time.monotonic()
        got = check_urls([(routes.url(n), len(ARCHIVE)) for n in names] + [(routes.url("ok"), 7)], timeout=1.5)
        took = time.monotonic() - t0
    ok, missing, forbidden, moved, stall, wrong_size = got
    assert ok.ok and ok.status.startswith("HTTP 206") and "redirected" not in ok.status
    assert not missing.ok and missing.status.startswith("HTTP 404")
    assert not forbidden.ok and forbidden.status.startswith("HTTP 403")
    assert moved.ok and "redirected to" in moved.status and moved.status.endswith("/ok")
    assert not stall.ok and stall.status == "no answer within 1.5 s"
    assert not wrong_size.ok and f"serves {len(ARCHIVE)} bytes, not the expected 7" in wrong_size.status
    assert took < 3.5  # the stalled URL waits once, in parallel with the others
