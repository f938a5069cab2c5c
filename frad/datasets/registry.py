"""The registry of benchmark datasets: one entry per dataset with its archive (mirrors tried in order, SHA-256 as
its identity, official page), its categories and their groups (which are textures), how its layout becomes the
validated layout that every stage reads (``frad.datasets.layout``), and its citation and licence.

``custom`` is the user's own data in that layout (a folder, categories as the folder has them). The FRAD paper's
tables (``in_paper``) are results on MVTec AD only. Import-free apart from the entries' facts: params validation
reads it before any work.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from . import mvtec_ad, visa


@dataclass(frozen=True)
class Dataset:
    name: str  # data.dataset, the folder under data/raw
    title: str  # as tables name it
    categories: tuple[str, ...]  # () = any (custom)
    textures: tuple[str, ...]
    groups: tuple[tuple[str, tuple[str, ...]], ...]  # (label, categories) averaged in Tables 1–2; () = texture/object
    mirrors: tuple[str, ...] = ()  # archive URLs, the official one first; the archive's identity is sha256
    sha256: str | None = None
    filename: str | None = None  # the archive's file name under data/raw
    size: int | None = None  # bytes, where published
    page: str | None = None  # where to download it by hand
    layout: str = "mvtec"  # mvtec: already the validated layout; visa: frad.datasets.visa converts it
    citation: str = ""
    licence: str = ""
    in_paper: bool = False  # the FRAD paper's Tables 1–4 are results on this dataset

    def check_category(self, category: str) -> None:
        """A ConfigError naming the closest category of this dataset, unless ``category`` is one of it."""
        if not self.categories or category in self.categories:
            return
        close = difflib.get_close_matches(category, self.categories, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]}?" if close else ""
        others = [d for d in DATASETS.values() if d is not self and category in d.categories]
        elsewhere = f"; it is a {others[0].title} category: data.dataset={others[0].name}" if others else ""
        raise ConfigError(
            f"data.categories: {category!r} is not a {self.title} category{hint}{elsewhere} "
            f"({self.title} has {', '.join(self.categories)})"
        )

    def materialise(self, source: str | os.PathLike, category: str, dest: str | os.PathLike) -> Path:
        """Put ``category`` of this dataset's layout at ``source`` into the validated layout at ``dest``: a
        relative link for MVTec's layout, a converted folder for others. Returns ``dest``."""
        source, dest = Path(source), Path(dest)
        if self.layout == "visa":
            return visa.convert_category(source, category, dest)
        from ..io import atomic_path

        target = Path(os.path.relpath((source / category).resolve(), dest.parent.resolve()))  # the repo can move
        with atomic_path(dest) as tmp:
            os.symlink(target, tmp, target_is_directory=True)
        return dest


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "mvtec_ad",
            "MVTec AD",
            mvtec_ad.MVTEC_CATEGORIES,
            mvtec_ad.MVTEC_TEXTURES,
            (("Texture", mvtec_ad.MVTEC_TEXTURES), ("Object", mvtec_ad.MVTEC_OBJECTS)),
            mvtec_ad.MIRRORS,
            mvtec_ad.SHA256,
            mvtec_ad.FILENAME,
            mvtec_ad.SIZE,
            mvtec_ad.PAGE,
            "mvtec",
            mvtec_ad.CITATION,
            mvtec_ad.LICENCE,
            in_paper=True,
        ),
        Dataset(
            "visa",
            "VisA",
            visa.CATEGORIES,
            (),
            visa.GROUPS,
            visa.MIRRORS,
            visa.SHA256,
            visa.FILENAME,
            None,
            visa.PAGE,
            "visa",
            visa.CITATION,
            visa.LICENCE,
        ),
        Dataset("custom", "your own data", (), (), (), citation="", licence="yours"),
    )
}


def get_dataset(name: str) -> Dataset:
    if name not in DATASETS:
        close = difflib.get_close_matches(str(name), list(DATASETS), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"data.dataset: unknown dataset {name!r}; choose from {', '.join(DATASETS)}{hint}")
    return DATASETS[name]
