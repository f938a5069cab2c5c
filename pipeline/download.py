"""Stage `download`: obtain the selected dataset's archive into data/raw and extract it (persistent, so a finished
download survives reruns); and `python -m pipeline.download --check`, which asks every URL the pipeline may fetch
whether it answers.

data.source = download: the archive from the first of the dataset's mirrors (``data.urls.<dataset>``) that serves
it (resumable, checksum-verified); archive: verify a local copy (``data.archive``); folder, synthetic: nothing to
fetch (recorded in SOURCE.json). The archive's identity is its SHA-256 (``data.sha256``), not where it came from:
this stage depends on the checksum, not on the mirror list.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from frad.datasets.archive import safe_extract
from frad.datasets.checksum import verify_sha256
from frad.datasets.download import check_urls, download_first
from frad.datasets.registry import DATASETS, Dataset
from frad.errors import DownloadError
from frad.io import write_json
from frad.weight_urls import WEIGHT_URLS

from .common import RAW, stage_main
from .params import DataParams, Params, load_params

SOURCE_FILE = RAW / "SOURCE.json"


def extracted(dataset: str) -> Path:
    """Where the archive of ``dataset`` is extracted (its released layout)."""
    return RAW / dataset


def _extract(archive: Path, sha256: str, dataset: str) -> None:
    target = extracted(dataset)
    marker = target / ".extracted_from"
    if marker.is_file() and marker.read_text().strip() == sha256:
        return  # already extracted from this very archive
    if target.exists():
        shutil.rmtree(target)
    safe_extract(archive, target)
    marker.write_text(sha256 + "\n")


def by_hand(spec: Dataset) -> str:
    """What to do when no mirror answers: the official page and the exact params lines for a copy made by hand."""
    return "\n".join(
        [
            f"Download {spec.filename} by hand from {spec.page}, then set in params.yaml (or pass with dvc exp run -S):",
            "  data:",
            f"    dataset: {spec.name}",
            "    source: archive",
            f"    archive: /path/to/{spec.filename}",
            f"or add a working mirror of the same archive (sha256 {spec.sha256}) to data.urls.{spec.name}.",
        ]
    )


def run(params: Params) -> None:
    d = params.data
    spec = d.spec
    RAW.mkdir(parents=True, exist_ok=True)
    record: dict = {"dataset": d.dataset, "source": d.source}
    sha = d.archive_sha256
    if d.source == "download":
        size = spec.size if sha == spec.sha256 else None  # another archive (data.sha256) has another size
        archive = download_first(list(d.mirrors), RAW / spec.filename, sha, size, manual=by_hand(spec))
        _extract(archive, sha, d.dataset)
        record.update(sha256=sha)
    elif d.source == "archive":
        archive = Path(d.archive)
        if not archive.is_file():
            raise DownloadError(
                f"data.archive={archive} does not exist; put a copy of {spec.filename} there or set "
                "data.source: download to download it"
            )
        verify_sha256(archive, sha)
        _extract(archive, sha, d.dataset)
        record.update(archive=str(archive), sha256=sha)
    write_json(SOURCE_FILE, record)


def check(data: DataParams, timeout: float) -> int:
    """One line per URL the pipeline may fetch (every dataset's mirrors, the backbone weights) with its status;
    1 when some dataset's archive has no mirror that serves it."""
    checks: list[tuple[str, str, int | None]] = []  # (what, url, expected size)
    for name, spec in DATASETS.items():
        if not spec.sha256:
            continue
        size = spec.size if name != data.dataset or data.archive_sha256 == spec.sha256 else None
        checks += [(name, url, size) for url in data.urls.get(name, spec.mirrors)]
    checks += [(f"weights {name}", url, None) for name, url in WEIGHT_URLS.items()]
    t0 = time.perf_counter()
    results = check_urls([(url, size) for _, url, size in checks], timeout)
    took = time.perf_counter() - t0
    width = max(len(what) for what, _, _ in checks)
    for (what, url, _), r in zip(checks, results):
        print(f"{'ok  ' if r.ok else 'FAIL'}  {what:<{width}}  {url}  {r.status}", flush=True)
    print(f"asked {len(checks)} URLs in {took:.1f} s (at most {timeout:g} s each, all at once)", flush=True)
    datasets = {what for what, _, _ in checks if not what.startswith("weights ")}
    dead = sorted(n for n in datasets if not any(r.ok for (w, _, _), r in zip(checks, results) if w == n))
    if all(r.status.startswith("unreachable") for r in results):
        print("offline: no host of any URL could be reached", flush=True)
    for name in dead:  # what to do, for the selected dataset
        more = f"; {by_hand(DATASETS[name])}" if name == data.dataset else ""
        print(f"no mirror serves the {DATASETS[name].title} archive{more}", flush=True)
    return 1 if dead else 0


@stage_main
def main(args: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m pipeline.download", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="ask every URL the pipeline may fetch; fetch nothing")
    ap.add_argument("--timeout", type=float, default=8.0, help="seconds to wait for each URL (--check)")
    opts = ap.parse_args(args)
    params = load_params()
    if opts.check:
        sys.exit(check(params.data, opts.timeout))
    run(params)


if __name__ == "__main__":
    main()
