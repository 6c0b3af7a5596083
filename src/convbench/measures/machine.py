"""What the machine is doing while convbench times something: CPU used by a process and by
everything else, a wait until a runtime's threads are idle, and the machine-wide phase locks
that keep a study's own cells from computing while one of them times.

Locks: a timing phase holds `timing.lock` exclusively; compute phases (training, converting,
accuracy passes, attacks) hold it shared. A timing phase first takes the `turnstile`, so that
no new compute phase starts while it waits for the running ones to end (a timer is never
starved), and compute phases pass through the turnstile on their way in. The lock files live
in the system's temporary directory: one set per machine (per node under Ray), shared by every
convbench process of every study (`CONVBENCH_LOCK_DIR` puts them elsewhere: the tests use
their own).
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

def lock_dir() -> Path:
    return Path(os.environ.get("CONVBENCH_LOCK_DIR")
                or Path(tempfile.gettempdir()) / "convbench-locks")


def cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask, where the OS has one)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return list(range(os.cpu_count() or 1))


def cpu_count() -> int:
    return len(cpus())


def thread_env(threads: int | None) -> dict[str, str]:
    """Environment variables that give native thread pools (OpenMP, MKL, OpenBLAS,
    TensorFlow) `threads` threads; none when it is None."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
    return {n: str(threads) for n in names} if threads else {}


def machine_busy_s(on: list[int] | None = None) -> float:
    """CPU seconds the CPUs `on` (default: this process's) have spent busy since boot,
    whoever ran there (time the hypervisor gave to other guests included: a timed run loses
    it just the same)."""
    import psutil

    on = cpus() if on is None else on
    per_cpu = psutil.cpu_times(percpu=True)
    busy = 0.0
    for i in on:
        if i >= len(per_cpu):
            continue
        t = per_cpu[i]
        total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
        busy += total - t.idle - getattr(t, "iowait", 0.0)  # guest: counted in user already
    return busy


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


def _open(name: str) -> int:
    """A descriptor of lock file `name` (created, readable by every user, if absent): flock
    works on read-only descriptors, so another user's file serves as well as one's own."""
    d = lock_dir()
    d.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(d, 0o1777)  # every user's convbench shares the machine's locks
    except OSError:
        pass
    path = d / name
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            os.fchmod(fd, 0o644)
        except OSError:
            pass
        return fd


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


def _through_turnstile(fd: int, mode: int, deadline: float | None = None) -> None:
    """Take `mode` on the timing lock, passing through the turnstile first."""
    gate = _open("turnstile.lock")
    try:
        _take(gate, fcntl.LOCK_EX, deadline)
        try:
            _take(fd, mode, deadline)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
    finally:
        os.close(gate)


# this process's phases: its compute phase (re-entrant) and whether it is timing
_compute: dict = {"depth": 0, "fd": None, "timing": False}


@contextmanager
def timing_phase(timeout: float | None = None) -> Iterator[float]:
    """Hold the machine for timing: wait for running compute phases of every convbench
    process to end, keep new ones out, exclude other timers. Yields the seconds it waited (nan
    when the lock files cannot be used: the timing then runs unguarded, and says so); raises
    `MachineBusy` after `timeout` seconds (None: wait as long as it takes). Inside this
    process's own compute phase, that phase steps aside while the timing runs."""
    t0 = time.perf_counter()
    outer = _compute["fd"]
    if outer is not None:
        fcntl.flock(outer, fcntl.LOCK_UN)
    try:
        fd = _open("timing.lock")
    except OSError:
        fd = None
    try:
        if fd is not None:
            _through_turnstile(fd, fcntl.LOCK_EX,
                               None if timeout is None else time.monotonic() + timeout)
        _compute["timing"] = True
        yield time.perf_counter() - t0 if fd is not None else math.nan
    finally:
        _compute["timing"] = False
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        if outer is not None:
            _through_turnstile(outer, fcntl.LOCK_SH)


@contextmanager
def compute_phase() -> Iterator[None]:
    """Mark a stretch of heavy computation: it waits while any convbench process times, and a
    timer waits for it to end. Compute phases run alongside each other (and nest) freely;
    inside this process's own timing phase, which holds the machine already, one is a no-op."""
    if _compute["timing"]:
        yield
        return
    if _compute["depth"] == 0:
        try:
            fd = _open("timing.lock")
        except OSError:  # no usable lock files: compute unguarded rather than not at all
            fd = None
        if fd is not None:
            _through_turnstile(fd, fcntl.LOCK_SH)
        _compute["fd"] = fd
    _compute["depth"] += 1
    try:
        yield
    finally:
        _compute["depth"] -= 1
        if _compute["depth"] == 0:
            fd, _compute["fd"] = _compute["fd"], None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
