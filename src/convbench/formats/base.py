"""What a model format is to convbench, declared once: its converters per source framework,
the runtime that runs it, its targets (variants) and the packages it needs.

Plug-in modules (`formats/<name>.py`) hold no code that imports a framework: the registry, the
CLI, spec validation, the recorded environment and the tests read these declarations, and the
converters and runners named here are imported only when used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


#: Sample inputs a quantising target calibrates on unless told otherwise (a spec's
#: `convert: {target: {calibration_size: N}}`): drawn from the training split at the cell's seed.
CALIBRATION_SIZE = 200


@dataclass(frozen=True)
class Target:
    """A conversion target a user names (`--to`, a spec's `formats`): one format, with the
    converter options that make this variant (precision, compression, route)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    about: str = ""


@dataclass(frozen=True)
class Format:
    """One exchange format.

    `converters`: source format ("torch", "keras", "onnx") -> "module:Class" of its converter;
    `runtimes`: runtime name -> "module:Class" of its runner, the first the default;
    `targets`: the names users convert to; `packages`: distributions whose versions are
    recorded with every result (a converter that needs one the install lacks says so in its
    `requires`, and its cells are skipped with the install command); `cli`: converter option
    -> the `convbench assess` argument that sets it (None values unset); `variants`:
    "module:function" that turns a converted file into a compressed variant in place (a
    target's `variant` option), returning what to add to the artifact's meta.
    """

    name: str
    converters: dict[str, str]
    runtimes: dict[str, str]
    targets: tuple[Target, ...]
    packages: tuple[str, ...] = ()
    cli: dict[str, str] = field(default_factory=dict)
    variants: str | None = None

    @property
    def runtime(self) -> str:
        """The runtime a cell of this format runs on when the spec does not say."""
        return next(iter(self.runtimes))
