"""Stage `prepare` (one per category): put a validated MVTec-layout category at data/datasets/<category>.

synthetic: generate it there; folder: link it to <data.root>/<category>; mvtec, archive: link it to the
extracted archive in data/raw. DVC hashes through the link, so a change in the linked data reruns what
depends on it, and nothing is copied.
"""

from __future__ import annotations

import os
from pathlib import Path

from frad.datasets.layout import check_files, index_category
from frad.datasets.mvtec_ad import MVTEC_CATEGORIES
from frad.datasets.synthetic import generate_category
from frad.errors import DataError
from frad.io import atomic_path

from .common import DATASETS, stage_main, usage
from .download import EXTRACTED
from .params import Params, load_params


def _link(target: Path, link: Path) -> None:
    """Atomically point ``link`` at ``target`` (a temporary link renamed over the old one)."""
    with atomic_path(link) as tmp:
        os.symlink(target, tmp, target_is_directory=True)


def run(params: Params, category: str) -> Path:
    d = params.data
    out = DATASETS / category
    source = d.source
    if source == "synthetic":
        s = d.synthetic
        generate_category(
            DATASETS,
            category,
            s.seed,
            n_train=s.n_train,
            n_test_good=s.n_test_good,
            n_test_defect_per_type=s.n_test_defect,
            size=s.size,
        )
        check_files(index_category(DATASETS, category))
    else:
        if source == "folder":
            root = Path(d.root).expanduser().resolve()
            if not root.is_dir():
                raise DataError(
                    f"data.root={d.root} is not a folder; point it at an MVTec-AD-layout root (data.source: folder)"
                )
            real = root / category
            link_target = real
        else:
            if category not in MVTEC_CATEGORIES:
                raise DataError(
                    f"unknown category {category!r} in data.categories: MVTec AD has {', '.join(MVTEC_CATEGORIES)}"
                )
            real = EXTRACTED / category
            link_target = Path(os.path.relpath(real.resolve(), DATASETS.resolve()))  # relative: the repo can move
        # Validate the real files before linking: an unknown name lists the ones present, a bad file is named
        # by its real path, and a failure leaves no link behind.
        check_files(index_category(real.parent, category))
        _link(link_target, out)
    return out


@stage_main
def main(args: list[str]) -> None:
    (category,) = usage(args, 1, "python -m pipeline.prepare <category>")
    run(load_params(), category)


if __name__ == "__main__":
    main()
