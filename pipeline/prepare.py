"""Stage `prepare` (one per category): put a validated category at data/datasets/<category> (the MVTec AD layout
every later stage reads, ``frad.datasets.layout``).

synthetic: generate it there; download, archive: from the extracted archive in data/raw/<dataset>; folder: from
<data.root>/<category>. A dataset in MVTec AD's layout is linked (nothing copied: DVC hashes through the link, so
a change in the data reruns what depends on it); another layout (VisA) is converted by its registry entry, its
images linked and its masks binarised.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from frad.datasets.layout import check_files, index_category
from frad.datasets.synthetic import generate_category
from frad.errors import DataError

from .common import DATASETS, stage_main, usage
from .download import extracted
from .params import Params, load_params


def run(params: Params, category: str) -> Path:
    d = params.data
    out = DATASETS / category
    if d.source == "synthetic":
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
        return out
    d.spec.check_category(category)
    if d.source == "folder":
        root = Path(d.root).expanduser().resolve()
        if not root.is_dir():
            raise DataError(
                f"data.root={d.root} is not a folder; point it at {d.spec.title}'s folder (data.source: folder)"
            )
    else:
        root = extracted(d.dataset)
    if d.spec.layout == "mvtec":
        # Validate the real files before linking: an unknown name lists the ones present, a bad file is named by its
        # real path, and a failure leaves no link behind.
        check_files(index_category(root, category))
        d.spec.materialise(root, category, out)
    else:
        d.spec.materialise(root, category, out)
        try:
            check_files(index_category(DATASETS, category))
        except DataError:
            shutil.rmtree(out)  # no output that looks finished
            raise
    return out


@stage_main
def main(args: list[str]) -> None:
    (category,) = usage(args, 1, "python -m pipeline.prepare <category>")
    run(load_params(), category)


if __name__ == "__main__":
    main()
