"""What the machine is doing while convbench times something: CPU used by a process and by
everything else, a wait until a runtime's threads are idle, and the machine-wide phase locks
that keep a study's own cells from computing while one of them times.

Locks: a timing phase holds `timing.lock` exclusively; compute phases (training, converting,
accuracy passes, attacks) hold it shared. A timing phase first takes the `turnstile`, so that
no new compute phase starts while it waits for the running ones to end (a timer is never
starved), and compute phases pass through the turnstile on their way in. The lock files live
in the system's temporary directory: one set per machine (per node under Ray), shared by every
convbench process of every study.
"""

from __future__ import annotations

import fcntl
import math
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_DIR = Path(tempfile.gettempdir()) / "convbench-locks"


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (all CPUs; includes time the
    hypervisor gave to other guests, which a timed run loses just the same)."""
    import psutil

    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    total = sum(t)
    for part in ("guest", "guest_nice"):  # already counted in user / nice on Linux
        total -= getattr(t, part, 0.0)
    return total - idle


def process_sched(pid: int) -> tuple[float, float]:
    """(CPU seconds used, seconds spent runnable but waiting for a CPU) so far, summed over
    the threads of process `pid`. On Linux from each thread's schedstat (nanoseconds); the
    wait is how much other work on the machine held the process back. Elsewhere the CPU time
    in clock ticks and no wait (nan)."""
    task = Path(f"/proc/{pid}/task")
    if task.is_dir():
        cpu = wait = 0
        for tid in os.listdir(task):
            try:
                fields = (task / tid / "schedstat").read_text().split()
                cpu, wait = cpu + int(fields[0]), wait + int(fields[1])
            except (OSError, ValueError, IndexError):  # a thread that just ended
                pass
        return cpu / 1e9, wait / 1e9
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system, math.nan


def process_cpu_s(pid: int) -> float:
    """CPU seconds used so far by all threads of process `pid`."""
    return process_sched(pid)[0]


def wait_idle(pid: int, window: float = 0.01, busy_share: float = 0.1,
              cap: float = 0.5) -> float:
    """Wait until process `pid` uses less than `busy_share` of one CPU over `window` seconds
    (runtimes' worker threads spin for a while after a run, slowing whatever runs next), at
    most `cap` seconds; return the seconds waited."""
    if not Path(f"/proc/{pid}/task").is_dir():
        window = max(window, 0.05)  # tick-resolution CPU times need a longer look
    start = time.perf_counter()
    before = process_cpu_s(pid)
    while time.perf_counter() - start < cap:
        time.sleep(window)
        now = process_cpu_s(pid)
        if now - before < busy_share * window:
            break
        before = now
    return time.perf_counter() - start


def _open(name: str):
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(LOCK_DIR, 0o1777)  # every user's convbench shares the machine's locks
    except OSError:
        pass
    return open(LOCK_DIR / name, "a")


class MachineBusy(RuntimeError):
    """Other convbench processes kept computing for longer than a timer would wait."""


def _take(fh, mode: int, deadline: float | None) -> None:
    if deadline is None:
        fcntl.flock(fh, mode)
        return
    while True:
        try:
            fcntl.flock(fh, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise MachineBusy("other convbench processes are computing") from None
            time.sleep(0.05)


def _through_turnstile(fh, mode: int, deadline: float | None = None) -> None:
    """Take `mode` on the timing lock, passing through the turnstile first."""
    with _open("turnstile.lock") as gate:
        _take(gate, fcntl.LOCK_EX, deadline)
        try:
            _take(fh, mode, deadline)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)


_compute = {"depth": 0, "fh": None}  # this process's compute phase (re-entrant)


@contextmanager
def timing_phase(timeout: float | None = None) -> Iterator[float]:
    """Hold the machine for timing: wait for running compute phases of every convbench
    process to end, keep new ones out, exclude other timers. Yields the seconds it waited;
    raises `MachineBusy` after `timeout` seconds (None: wait as long as it takes). Inside this
    process's own compute phase, that phase steps aside while the timing runs."""
    t0 = time.perf_counter()
    outer = _compute["fh"]
    if outer is not None:
        fcntl.flock(outer, fcntl.LOCK_UN)
    fh = _open("timing.lock")
    try:
        _through_turnstile(fh, fcntl.LOCK_EX,
                           None if timeout is None else time.monotonic() + timeout)
        yield time.perf_counter() - t0
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()
        if outer is not None:
            _through_turnstile(outer, fcntl.LOCK_SH)


@contextmanager
def compute_phase() -> Iterator[None]:
    """Mark a stretch of heavy computation: it waits while any convbench process times, and a
    timer waits for it to end. Compute phases run alongside each other (and nest) freely."""
    if _compute["depth"] == 0:
        fh = _open("timing.lock")
        _through_turnstile(fh, fcntl.LOCK_SH)
        _compute["fh"] = fh
    _compute["depth"] += 1
    try:
        yield
    finally:
        _compute["depth"] -= 1
        if _compute["depth"] == 0:
            fh, _compute["fh"] = _compute["fh"], None
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()
