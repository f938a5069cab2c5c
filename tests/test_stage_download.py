"""The `download` and `prepare` stages against a local HTTP server serving an MVTec-layout .tar.xz."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

import pytest
from pipeline_utils import TINY, dvc, repro

from frad.datasets.layout import index_category
from frad.datasets.synthetic import generate_category
from frad.errors import DownloadError
from pipeline import download as download_stage
from pipeline import prepare as prepare_stage
from pipeline.params import load_params
from pipeline.workspace import make_workspace

try:
    from http_fixture import FileServer
except ImportError:  # pragma: no cover
    from tests.http_fixture import FileServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> bytes:
    """A small .tar.xz laid out like the official archive: <category>/train/good/..., license.txt at the top."""
    root = tmp_path_factory.mktemp("arch")
    generate_category(root, "bottle", seed=0, n_train=4, n_test_good=2, n_test_defect_per_type=1, size=64)
    (root / "license.txt").write_text("test archive\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        tar.add(root / "bottle", arcname="bottle")
        tar.add(root / "license.txt", arcname="license.txt")
    return buf.getvalue()


def _workspace(tmp_path, url: str, sha: str, source: str = "mvtec", **extra):
    return make_workspace(
        tmp_path / "ws",
        {
            **TINY,
            "data.source": source,
            "data.categories": ["bottle"],
            "data.textures": [],
            "data.url": url,
            "data.sha256": sha,
            **extra,
        },
    )


def _archive_workspace(archive: bytes, tmp_path, monkeypatch, sha: str | None = None, **extra):
    """Workspace with data.source: archive on a local copy of ``archive``, entered with chdir."""
    local = tmp_path / "copy.tar.xz"
    local.write_bytes(archive)
    ws = _workspace(
        tmp_path,
        "http://127.0.0.1:9/unused",
        sha or hashlib.sha256(archive).hexdigest(),
        source="archive",
        **{"data.archive": str(local), **extra},
    )
    monkeypatch.chdir(ws)
    return ws


def test_dvc_download_resumes_an_interrupted_transfer_then_prepares(archive, tmp_path):
    sha = hashlib.sha256(archive).hexdigest()
    with FileServer(archive) as server:
        server.reset_after, server.reset_times, server.reset_kind = len(archive) // 2, 1, "fin"
        ws = _workspace(tmp_path, server.url, sha)
        ran = repro(ws, "prepare@bottle")
        ranges = [r["range"] for r in server.requests]
    assert ran == {"download", "prepare@bottle"}
    assert ranges[0] is None and ranges[1] == f"bytes={len(archive) // 2}-"  # resumed, not restarted
    assert (ws / "data/raw/mvtec_anomaly_detection.tar.xz").read_bytes() == archive
    link = ws / "data/datasets/bottle"
    assert link.is_symlink() and os.readlink(link) == "../raw/mvtec_ad/bottle"  # relative link, nothing copied
    index = index_category(ws / "data/datasets", "bottle")
    assert len(index.train) == 4 and len(index.test) == 2 + 3
    assert repro(ws, "prepare@bottle") == set()  # finished download is not fetched again


def test_corrupted_download_is_rejected_and_nothing_is_extracted(archive, tmp_path, monkeypatch):
    sha = hashlib.sha256(archive).hexdigest()
    with FileServer(archive) as server:
        server.corrupt = True
        ws = _workspace(tmp_path, server.url, sha)
        monkeypatch.chdir(ws)
        with pytest.raises(DownloadError, match="(?i)sha-?256|checksum"):
            download_stage.run(load_params())
    assert not (ws / "data/raw/mvtec_ad").exists()
    assert not (ws / "data/raw/mvtec_anomaly_detection.tar.xz").exists()
    assert not (ws / "data/raw/SOURCE.json").exists()


def test_archive_source_verifies_local_copy_and_extracts(archive, tmp_path, monkeypatch):
    ws = _archive_workspace(archive, tmp_path, monkeypatch)
    params = load_params()
    download_stage.run(params)
    prepare_stage.run(params, "bottle")
    assert (ws / "data/raw/mvtec_ad/bottle/train/good").is_dir()
    assert len(index_category(ws / "data/datasets", "bottle").train) == 4


def test_archive_source_with_wrong_checksum_fails(archive, tmp_path, monkeypatch):
    ws = _archive_workspace(archive, tmp_path, monkeypatch, sha="0" * 64)
    with pytest.raises(DownloadError):
        download_stage.run(load_params())
    assert not (ws / "data/raw/mvtec_ad").exists()


def test_unknown_mvtec_category_is_named(archive, tmp_path, monkeypatch):
    ws = _archive_workspace(archive, tmp_path, monkeypatch, **{"data.categories": ["bottel"]})
    params = load_params()
    download_stage.run(params)
    proc = dvc(ws, "repro", "prepare@bottel", check=False)
    assert proc.returncode != 0
    assert "error: unknown category 'bottel'" in proc.stderr + proc.stdout
    assert not (ws / "data/datasets/bottel").exists()
