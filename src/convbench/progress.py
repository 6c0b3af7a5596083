"""What a running cell is doing now, for whoever shows the study's progress.

Code deep in a cell calls `step("timing")`; the executor that runs the cell decides where it
goes (the progress display, or the pipe to the study's process). Without a listener, nothing.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

_listener: list[Callable[[str], None]] = []
_current = [""]
_since = [0.0]
_spent: dict[str, float] = {}


def step(text: str) -> None:
    """Say what the current cell is doing (a few words: "training", "attack fgsm")."""
    _close()
    _current[0], _since[0] = text, time.perf_counter()
    for fn in _listener[-1:]:
        try:
            fn(text)
        except Exception:  # noqa: BLE001 - a display that fails must not fail the cell
            pass


@contextmanager
def listening(fn: Callable[[str], None]) -> Iterator[None]:
    """Send this process's `step`s to `fn` while the block runs."""
    _listener.append(fn)
    try:
        yield
    finally:
        _listener.remove(fn)


def current() -> str:
    """The last step this process said (what a failure interrupted)."""
    return _current[0]


def spent() -> dict[str, float]:
    """Seconds spent in each step since the last `reset`, the current one up to now."""
    _close()
    _since[0] = time.perf_counter()
    return {k: round(v, 3) for k, v in _spent.items()}


def _close() -> None:
    if _current[0]:
        _spent[_current[0]] = _spent.get(_current[0], 0.0) + time.perf_counter() - _since[0]


def reset() -> None:
    _current[0] = ""
    _spent.clear()
