"""RQ2 cost of running each model: load time, peak memory and latency, each model in a fresh
process of its own (`RuntimeHost`), the two timed in alternating blocks under the machine's
timing lock.

Per batch size: both models warm up until their time per batch settles; then blocks of runs
(about `block_s` each) alternate between them, the first model changing every round, and
before each block the other model's process is left to go idle (runtimes' threads spin after a
run). Blocks go on until both medians' 95% intervals are within +-`target_ci` or the time cap.
Around each block the machine's busy CPU time is read, so the CPU other processes took while a
model ran is known and stored with its figure.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convbench.measures.host import HostError, RuntimeHost
from convbench.measures.latency import Figure, LatencyOptions
from convbench.measures.machine import (MachineBusy, cpu_count, cpus, machine_busy_s,
                                        process_sched, timing_phase, wait_idle)
from convbench.records import Artifact, Metric, Outcome, Status


@dataclass(frozen=True)
class CostOptions:
    """`wait`: seconds to wait for other convbench processes' compute phases to end before
    timing (None: as long as it takes); past it the measures are deferred (`DEFERRED`), and
    a study times such cells at its end, alone."""

    latency: LatencyOptions = field(default_factory=LatencyOptions)
    memory: bool = True
    wait: float | None = 10.0


#: The message of a cost measure put off because the machine stayed busy; a study times such
#: cells again at its end.
DEFERRED = "deferred: other cells kept the machine busy; timed when the study's cells are done"
MEASURES = ("load_time", "memory", "latency")


@dataclass(frozen=True)
class Model:
    """One side of the comparison: its file, the runtime that runs it, that runtime's options
    and the inputs in the model's own layout."""

    artifact: Artifact
    runtime: str
    x: np.ndarray
    options: dict[str, Any] = field(default_factory=dict)


def measure_cost(models: dict[str, Model], opts: CostOptions, threads: int | None = None,
                 log: str | None = None) -> tuple[list[Metric], list[Outcome], dict[str, Any]]:
    """Load time, memory and latency of each model (keyed by role) as `Metric`s, the outcome
    of each measure (a failure is recorded with its reason, never raised) and what to keep
    about how they were taken."""
    lat = opts.latency
    if not lat.batch_sizes and not opts.memory:
        return [], [], {}
    threads = threads or cpu_count()
    metrics: list[Metric] = []
    failed: dict[str, list[str]] = {what: [] for what in MEASURES}
    info: dict[str, Any] = {"threads": threads, "cpus": cpu_count(), **lat.thresholds()}
    try:
        with timing_phase(opts.wait) as waited:
            info.update(lock_wait_s=waited, timed_from=time.time())
            try:
                _measure(models, opts, threads, log, metrics, failed, info)
            finally:
                info["timed_to"] = time.time()
    except MachineBusy:
        return [], [Outcome("measure", what, Status.SKIPPED, DEFERRED) for what in MEASURES], \
            info
    outcomes = [Outcome("measure", what, Status.FAILED, "; ".join(why))
                for what, why in failed.items() if why]
    return metrics, outcomes, info


def _measure(models: dict[str, Model], opts: CostOptions, threads: int, log: str | None,
             metrics: list[Metric], failed: dict[str, list[str]], info: dict) -> None:
    """The measures proper, with the machine held: into `metrics`, `failed` and `info`."""
    lat = opts.latency
    # started together, the hosts import their runtimes in parallel; loads are timed only
    # once both imports are done
    hosts: dict[str, RuntimeHost] = {}
    used: dict[str, int] = {}

    largest = max(lat.batch_sizes, default=1)

    def start(role, m):  # the largest batch is all it runs (smaller ones are its first rows)
        hosts[role] = RuntimeHost(m.artifact, m.runtime, m.x[:largest], threads, m.options, log)

    def load(role, host):
        got = host.call("load")
        metrics.append(Metric("load_time", got["load_s"], "s", role=role))
        used[role] = got["threads"] or threads
        info[f"runner_{role}"] = got["runner"]

    def memory(role, host):
        got = host.call("memory", batch=largest)
        metrics.extend(Metric("memory", got[k], "bytes", stat=stat, role=role)
                       for stat, k in (("peak", "peak_rss"), ("import", "import_rss")))
        metrics.append(Metric("memory", got["peak_rss"] - got["import_rss"], "bytes",
                              stat="model", role=role))

    try:
        _each(dict(models), start, failed, list(failed))
        _each(hosts, lambda role, host: host.wait_ready(), failed, list(failed), drop=True)
        _each(hosts, load, failed, list(failed), drop=True)
        if opts.memory:
            _each(hosts, memory, failed, ["memory"])
        if lat.batch_sizes and hosts:
            metrics += _latency(hosts, lat, used, failed["latency"])
    finally:
        for host in hosts.values():
            host.close()


def _each(items: dict[str, Any], fn, failed: dict[str, list[str]], measures: list[str],
          drop: bool = False) -> None:
    """`fn(role, item)` for each role; a failure is noted against `measures` (and, with
    `drop`, the item, a host, is closed and left out of what follows)."""
    for role in list(items):
        try:
            fn(role, items[role])
        except Exception as e:  # noqa: BLE001 - a measure records, never raises
            for what in measures:
                failed[what].append(f"{role}: {_why(e)}")
            if drop:
                items.pop(role).close()


def _why(e: Exception) -> str:
    return str(e) if isinstance(e, HostError) else f"{type(e).__name__}: {e}"


def _latency(hosts: dict[str, RuntimeHost], opts: LatencyOptions, threads: dict[str, int],
             failed: list[str]) -> list[Metric]:
    """Every batch size's figures; a batch size that fails is noted in `failed` and the
    others keep theirs."""
    wait_idle(os.getpid())  # this process's own framework threads too
    out: list[Metric] = []
    for bs in opts.batch_sizes:
        try:
            figures = _time_batch(hosts, opts, bs)
        except Exception as e:  # noqa: BLE001 - a measure records, never raises
            failed.append(f"batch {bs}: {_why(e)}")
            continue
        for role, f in figures.items():
            out += f.metrics(opts, len(cpus()), threads[role], role=role, batch_size=bs)
    return out


def _time_batch(hosts: dict[str, RuntimeHost], opts: LatencyOptions,
                bs: int) -> dict[str, Figure]:
    figures = {role: Figure() for role in hosts}
    block_n = {}
    for role, host in hosts.items():
        warm = host.call("warm", batch=bs, min_runs=opts.warmup, settle=opts.settle,
                         cap_s=opts.time_cap / 4)["samples"]
        wait_idle(host.pid)
        figures[role].warmup_runs = len(warm)
        per_run = float(np.median(warm[-5:]))
        block_n[role] = int(min(1000, max(1, math.ceil(opts.block_s / max(per_run, 1e-9)))))
    spent, order, on = 0.0, list(hosts), cpus()
    while not all(f.precise(opts) for f in figures.values()):
        # past the cap, only until every figure has its minimum of blocks (slow models)
        short = any(len(f.blocks) < Figure.MIN_BLOCKS for f in figures.values())
        if spent >= opts.time_cap and (not short or spent >= 10 * opts.time_cap):
            break
        for role in order:
            host = hosts[role]
            # the machine's busy time is read right around the block, the processes' own
            # outside it: what they do in between counts as theirs, never as others'
            own0, wait0 = process_sched(host.pid)
            me0 = time.thread_time()  # this thread only: the process's others compete too
            busy0 = machine_busy_s(on)
            got = host.call("block", batch=bs, n=block_n[role])
            busy = machine_busy_s(on) - busy0
            own, wait = (a - b for a, b in zip(process_sched(host.pid), (own0, wait0)))
            others = busy - own - (time.thread_time() - me0)
            figures[role].add_block(got["samples"], got["cpu_s"], got["wall_s"], others, wait)
            spent += got["wall_s"] + wait_idle(host.pid)
        order.reverse()  # neither model always runs right after the other
    return figures
