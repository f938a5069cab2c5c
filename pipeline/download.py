"""Stage `download`: obtain the raw dataset into data/raw (persistent, so a finished download survives reruns).

data.source = mvtec: download the official archive (resumable, checksum-verified) and extract it safely;
archive: verify and extract a local copy; folder, synthetic: nothing to fetch (recorded in SOURCE.json).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from frad.datasets.archive import safe_extract
from frad.datasets.checksum import verify_sha256
from frad.datasets.download import MVTEC_FILENAME, MVTEC_SIZE, MVTEC_URL, download
from frad.errors import DownloadError
from frad.io import write_json

from .common import RAW, stage_main, usage
from .params import Params, load_params

EXTRACTED = RAW / "mvtec_ad"
SOURCE_FILE = RAW / "SOURCE.json"


def _extract(archive: Path, sha256: str) -> None:
    marker = EXTRACTED / ".extracted_from"
    if marker.is_file() and marker.read_text().strip() == sha256:
        return  # already extracted from this very archive
    if EXTRACTED.exists():
        shutil.rmtree(EXTRACTED)
    safe_extract(archive, EXTRACTED)
    marker.write_text(sha256 + "\n")


def run(params: Params) -> None:
    d = params.data
    RAW.mkdir(parents=True, exist_ok=True)
    source = d.source
    record = {"source": source}
    if source == "mvtec":
        archive = download(d.url, RAW / MVTEC_FILENAME, d.sha256, size=MVTEC_SIZE if d.url == MVTEC_URL else None)
        _extract(archive, d.sha256)
        record.update(url=d.url, sha256=d.sha256)
    elif source == "archive":
        archive = Path(d.archive)
        if not archive.is_file():
            raise DownloadError(
                f"data.archive={archive} does not exist; put a copy of {MVTEC_FILENAME} there or set data.source: mvtec to download it"
            )
        verify_sha256(archive, d.sha256)
        _extract(archive, d.sha256)
        record.update(archive=str(archive), sha256=d.sha256)
    write_json(SOURCE_FILE, record)


@stage_main
def main(args: list[str]) -> None:
    usage(args, 0, "python -m pipeline.download")
    run(load_params())


if __name__ == "__main__":
    main()
