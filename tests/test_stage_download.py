"""The `download` and `prepare` stages against a local HTTP server serving an MVTec-layout .tar.xz."""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from pipeline_utils import TINY, dvc, env, repro, set_params, status

from frad.datasets.layout import index_category
from frad.datasets.synthetic import generate_category
from frad.errors import DownloadError
from pipeline import download as download_stage
from pipeline import prepare as prepare_stage
from pipeline.params import load_params
from pipeline.workspace import make_workspace

ROOT = Path(__file__).resolve().parent.parent

try:
    from http_fixture import FileServer, RouteServer
except ImportError:  # pragma: no cover
    from tests.http_fixture import FileServer, RouteServer

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


def _workspace(tmp_path, url: str | list[str], sha: str, source: str = "download", **extra):
    return make_workspace(
        tmp_path / "ws",
        {
            **TINY,
            "data.source": source,
            "data.categories": ["bottle"],
            "data.textures": [],
            "data.urls": {"mvtec_ad": url if isinstance(url, list) else [url]},
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


def test_unknown_mvtec_category_is_named_with_the_closest_before_any_stage_runs(archive, tmp_path, monkeypatch):
    ws = _archive_workspace(archive, tmp_path, monkeypatch, **{"data.categories": ["bottel"]})
    proc = dvc(ws, "repro", "prepare@bottel", check=False)
    assert proc.returncode != 0
    assert "'bottel' is not a MVTec AD category; did you mean bottle?" in proc.stderr + proc.stdout
    assert not (ws / "data/raw/mvtec_ad").exists() and not (ws / "data/datasets/bottel").exists()


def test_make_repro_path_takes_the_next_mirror_when_the_first_is_dead_and_runs_through_features(archive, tmp_path):
    """`make repro`'s path as far as it runs offline: a local server stands in for the mirrors; the first answers
    404, the second serves the archive; download, prepare and features run. Changing the mirror list afterwards
    reruns nothing: the archive's identity is its SHA-256."""
    sha = hashlib.sha256(archive).hexdigest()
    with FileServer(archive) as server:
        dead = server.url.rsplit("/", 1)[0] + "/moved-away.tar.xz"
        ws = _workspace(tmp_path, [dead, server.url], sha)
        ran = repro(ws, "features@bottle")
        statuses = [r["status"] for r in server.requests]
    assert ran == {"download", "prepare@bottle", "features@bottle"}
    assert statuses == [404, 200]
    assert (ws / "data/features/bottle/meta.json").is_file()
    set_params(ws, **{"data.urls": {"mvtec_ad": ["http://127.0.0.1:9/another-mirror.tar.xz"]}})
    assert not status(ws) & {"download", "prepare@bottle", "features@bottle"}
    assert repro(ws, "features@bottle") == set()


def test_link_check_imports_no_torch():
    """What `--check` runs (the stage module, its params, the weight URLs) is torch-free: offline it answers in about
    a second of start-up instead of the ~6 s that importing torch and torchvision take."""
    code = "import sys, pipeline.download; print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300
    )
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_link_check_names_every_url_with_its_answer_and_fails_without_a_serving_mirror(archive, tmp_path):
    """`python -m pipeline.download --check`: one line per URL (every dataset's mirrors, the backbone weights),
    non-zero when some dataset's archive has no mirror that serves it, within the timeout whatever the network."""
    with RouteServer(archive) as routes:
        ws = make_workspace(
            tmp_path / "ws",
            {
                **TINY,
                "data.urls": {"mvtec_ad": [routes.url("missing"), routes.url("ok")], "visa": [routes.url("stall")]},
                "data.sha256": hashlib.sha256(archive).hexdigest(),  # not the published archive: no size check
            },
            git=False,
        )
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.download", "--check", "--timeout", "2"],
            cwd=ws,
            env=env(),
            capture_output=True,
            text=True,
            timeout=300,  # never hangs: the stalled URL is bounded by --timeout; the rest is start-up on a busy machine
        )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert lines[0].startswith("FAIL  mvtec_ad") and routes.url("missing") in lines[0] and "HTTP 404" in lines[0]
    assert lines[1].startswith("ok    mvtec_ad") and "HTTP 206" in lines[1]
    assert lines[2].startswith("FAIL  visa") and "no answer within 2 s" in lines[2]
    assert "weights wide_resnet50_2" in lines[3] and "wide_resnet50_2-95faca4d.pth" in lines[3]
    assert "no mirror serves the VisA archive" in proc.stdout and "MVTec AD archive" not in proc.stdout
    asked = re.fullmatch(r"asked 4 URLs in ([0-9.]+) s \(at most 2 s each, all at once\)", lines[4])
    assert asked and float(asked[1]) < 2 + 3  # the stall waits once, in parallel with the others (the clock of the
    # check itself: the interpreter's start-up and imports are the machine's, and stretch with its load)
