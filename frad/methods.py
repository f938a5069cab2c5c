"""The registry of comparison methods (Tables 1–2): every method FRAD is compared with in the same harness.

A method is one package ``frad/<name>/``:

* ``__init__.py``: a frozen dataclass config whose fields are the method's settings — each field but ``seed``,
  ``layers`` and ``device`` is a params key ``compare.<name>.<field>`` (its type hint is the type params.yaml must
  give; ``__post_init__`` checks the ranges and raises :class:`frad.errors.ConfigError` naming the key); the
  default of ``layers`` is the backbone layers the method reads from the feature cache; optionally a method
  ``check_backbone(backbone, channels)``: a rule between its settings and the backbone (its name and channels per
  layer ``{layer: C_l}``). Torch-free: every stage validates params.yaml against it at load.
* ``method.py``: ``fit_and_score(train, test, config, *, image_size, sigma, batch_size, device) ->
  frad.harness.MethodResult``, imported by name only where a method runs, so that only its own ``compare`` items
  depend on its code;

plus its config's import and one line in :data:`METHODS`. Params validation, the ``compare`` stage family, the
report's columns and labels, its plots and the method tests all loop over this table.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Mapping

from .padim import PadimConfig
from .patchcore import PatchcoreConfig
from .rd import RDConfig

RUNTIME_FIELDS = ("seed", "layers", "device")
"""Config fields the harness sets (the stage's seed, the method's layers, ``train.device``), not params keys."""


@dataclass(frozen=True)
class Method:
    name: str  # params key compare.<name>, the stage item, data/scores/<category>/<name>/
    label: str  # column and plot label
    config: type  # the frozen settings dataclass of frad/<name>/__init__.py
    paper: str  # the method's own paper (cited in the report)
    trained: bool = False  # fits a network by gradient descent: its maps follow the optimisation's float rounding

    @property
    def code(self) -> ModuleType:
        """``frad.<name>.method``, imported on first use."""
        return importlib.import_module(f"frad.{self.name}.method")

    @property
    def keys(self) -> tuple[str, ...]:
        """The params keys of ``compare.<name>``, in the config's field order."""
        return tuple(f.name for f in dataclasses.fields(self.config) if f.name not in RUNTIME_FIELDS)

    @property
    def layers(self) -> tuple[int, ...]:
        """Backbone layers the method reads from the feature cache (the default of its config's ``layers``)."""
        return tuple(next(f.default for f in dataclasses.fields(self.config) if f.name == "layers"))

    def make_config(self, settings: Mapping[str, Any], seed: int = 0, device: str = "cpu") -> Any:
        """The config from the ``compare.<name>`` settings and the harness's seed (and device, if it has one)."""
        extra: dict[str, Any] = {"seed": seed}
        if "device" in {f.name for f in dataclasses.fields(self.config)}:
            extra["device"] = device
        return self.config(**settings, **extra)

    def check_backbone(self, config: Any, backbone: str, channels: Mapping[int, int]) -> None:
        check = getattr(config, "check_backbone", None)
        if check is not None:
            check(backbone, channels)

    def fit_and_score(self, *args: Any, **kwargs: Any) -> Any:
        return self.code.fit_and_score(*args, **kwargs)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("padim", "PaDiM", PadimConfig, "Defard et al., ICPR workshops 2021"),
        Method("patchcore", "PatchCore", PatchcoreConfig, "Roth et al., CVPR 2022"),
        Method("rd", "RD", RDConfig, "Deng & Li, CVPR 2022", trained=True),
    )
}
