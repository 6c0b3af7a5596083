"""A typed registry with lazy entries and "did you mean" errors.

Each kind of plug-in (dataset, converter, runner, ...) has one `Registry`. An entry is registered
where it is defined, with a decorator, or lazily as a dotted path "module:attr" so that looking up
one entry never imports the modules of the others.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that no registry entry has; the message suggests the closest ones."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want plain text
        return str(self.args[0])


def suggest(name: str, choices: list[str]) -> str:
    """Return a ' Did you mean ...?' hint, or '' when nothing is close."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.7)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class Registry(Generic[T]):
    """Name -> object, where objects may be given as lazy "module:attr" paths."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, obj: T | None = None):
        """Register `obj` under `name`; used bare as a decorator when `obj` is None."""
        if obj is not None:
            self._add(name, obj)
            return obj

        def deco(o: T) -> T:
            self._add(name, o)
            return o

        return deco

    def register_lazy(self, name: str, path: str) -> None:
        """Register "package.module:attr", imported on first `get(name)`."""
        self._add(name, path)

    def _add(self, name: str, obj: T | str) -> None:
        old = self._entries.get(name)
        if old is not None and not isinstance(old, str) and old is not obj:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        try:
            obj = self._entries[name]
        except KeyError:
            names = sorted(self._entries)
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{suggest(name, names)} Known: {', '.join(names)}"
            ) from None
        if isinstance(obj, str):
            module, _, attr = obj.partition(":")
            obj = getattr(importlib.import_module(module), attr)
            self._entries[name] = obj
        return obj

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
