"""What a cell may use: a memory cap and a time limit, on by default wherever cells run.

The memory cap is the process's data limit (`RLIMIT_DATA`: heap and private mappings, the memory
a model's tensors take; shared libraries and reserved address space do not count), so an
allocation past it fails at once instead of swapping the machine; child processes (the runtime
hosts) inherit it. A cell in a process of its own (`local`, `ray`, `assess`) is killed at its
time limit; a cell in the study's own process (`serial`) is stopped at the next Python step
after it (one native call, a single inference, runs to its end).
"""

from __future__ import annotations

import resource
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from convbench.files import physical_memory, size_text

MEMORY_FRACTION = 0.75  # of physical memory, the default cap
STUDY_SECONDS = 12 * 3600.0  # default per cell of a study (the paper preset's largest fit)
ASSESS_SECONDS = 3600.0  # default per target of an assessment

# How running out of memory shows in Python, numpy, native libraries and the loader.
OUT_OF_MEMORY = ("memoryerror", "cannot allocate memory", "can't allocate memory",
                 "failed to allocate", "failed to map segment", "bad_alloc", "out of memory",
                 "unable to allocate", "resource exhausted")


def default_memory() -> int:
    return int(MEMORY_FRACTION * physical_memory())


@dataclass(frozen=True)
class Limits:
    """Per-cell limits (None: no limit)."""

    seconds: float | None = None
    memory_bytes: int | None = None

    @classmethod
    def from_options(cls, memory_gib: float | None, seconds: float | None,
                     default_seconds: float, workers: int = 1) -> "Limits":
        """From the command line: None means the default (the memory shared out among the
        cells that run at once), 0 means no limit."""
        for name, value in (("--memory-limit", memory_gib), ("--time-limit", seconds)):
            if value is not None and value < 0:
                raise ValueError(f"{name} {value:g}: give a positive number, or 0 for none")
        memory = (default_memory() // max(1, workers) if memory_gib is None
                  else int(memory_gib * (1 << 30)))
        seconds = default_seconds if seconds is None else seconds
        return cls(seconds or None, memory or None)


class TimeLimitReached(BaseException):
    """A cell ran past its time limit (raised once, in the cell's own thread). A
    `BaseException`, as `KeyboardInterrupt` is: the `except Exception` that turns a converter's
    or a runtime's failure into a recorded outcome must not take it for one."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"past the time limit of {seconds:g} s")
        self.seconds = seconds


@contextmanager
def memory_cap(limit: int | None) -> Iterator[None]:
    """Cap this process's (and its future children's) data memory at `limit` bytes while the
    block runs (a stricter cap already set, say by `ulimit -d`, stays); the previous cap comes
    back after."""
    if not limit:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    new = min([limit] + [v for v in (soft, hard) if v != resource.RLIM_INFINITY])
    resource.setrlimit(resource.RLIMIT_DATA, (new, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise `TimeLimitReached` in this (main) thread once `seconds` have passed. Signals
    reach only the main thread: elsewhere there is no limit (run cells in processes of their
    own, `local`, for one). A timer set outside is restored after."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(signum, frame):
        raise TimeLimitReached(seconds)

    previous = signal.signal(signal.SIGALRM, fire)
    outer = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer[0]:
            signal.setitimer(signal.ITIMER_REAL, *outer)


def die_with_parent() -> None:
    """Have the kernel kill this process when its parent dies (Linux), so that a cell's
    runtime hosts do not outlive a cell that was stopped or crashed."""
    import ctypes
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent had already gone
        os._exit(1)


def check_fits(shape, count: int, itemsize: int, limit: int | None, what: str) -> None:
    """Refuse inputs of the shape a model declares before any are made, when `count` of them
    (and a working copy) would not fit the memory cap."""
    import math

    need = 2 * count * itemsize * math.prod(int(d) for d in shape)
    cap = limit or physical_memory()
    if need > cap:
        dims = "x".join(str(int(d)) for d in shape)
        raise ValueError(f"the model declares inputs of {dims}: {what} would take "
                         f"{size_text(need)}, above the memory cap of {size_text(cap)}; check the "
                         f"model's input shape, take fewer samples (--n), or raise --memory-limit")


def out_of_memory(message: str) -> bool:
    return any(s in message.lower() for s in OUT_OF_MEMORY)


def where(step: str, files: list[str]) -> str:
    """"while converting (model.keras)": the step a cell was in, and its model files."""
    return " ".join(p for p in (f"while {step}" if step else "",
                                f"({', '.join(files)})" if files else "") if p)


def memory_message(limit: int | None, step: str, files: list[str], detail: str) -> str:
    cap = f"the memory cap of {size_text(limit)}" if limit else "the machine's memory"
    import re

    first = (re.sub(r"\x1b\[[0-9;]*m", "", detail).strip().splitlines() or [""])[0][:300]
    return (f"out of memory {where(step, files)}: {cap} was reached ({first}); if the model "
            f"is genuine, raise it with --memory-limit GIB (0: no cap)")


def time_message(seconds: float, step: str, files: list[str]) -> str:
    return (f"stopped {where(step, files)}: past its time limit of {seconds:g} s; if the model "
            f"is genuine, raise it with --time-limit SECONDS (0: no limit)")
