"""Model formats, one plug-in module each (`Format`): everything else reads them from here.

A new format is its module here (added to `_PLUGINS`), its converters and runner, its tests and
a README row.
"""

from __future__ import annotations

import importlib

from convbench.formats.base import Format, Target
from convbench.registry import Registry

FORMATS: Registry[Format] = Registry("format")

_PLUGINS = ("onnx", "coreml", "openvino", "litert", "executorch")

for _name in _PLUGINS:
    FORMATS.register(_name, importlib.import_module(f"convbench.formats.{_name}").FORMAT)


def targets() -> dict[str, tuple[Format, Target]]:
    """Every conversion target by name, with its format."""
    return {t.name: (f, t) for name in _PLUGINS for f in [FORMATS.get(name)]
            for t in f.targets}


def packages() -> tuple[str, ...]:
    """Every format's packages (for the recorded environment)."""
    return tuple(p for name in _PLUGINS for p in FORMATS.get(name).packages)


__all__ = ["FORMATS", "Format", "Target", "packages", "targets"]
