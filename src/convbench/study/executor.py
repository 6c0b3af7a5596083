"""Running a study's cells into a store: serially in this process, or each cell in a child
process of its own (`local`, `workers` at a time) with a time and a memory limit.

Finished cells already in the store are skipped, so an interrupted study resumes. Only this
process writes the store, one transaction per cell.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable

from convbench.data.base import cache_dir
from convbench.records import Category, CellResult, Status
from convbench.store import Store
from convbench.study.cell import Cell, run_cell

EXECUTORS = ("serial", "local", "ray")


@dataclass
class Limits:
    """Per-cell limits of the `local` executor (None: no limit)."""

    seconds: float | None = None
    memory_bytes: int | None = None


def run_study(cells: list[Cell], store: Store, study: str = "",
              on_result: Callable[[CellResult], None] | None = None, force: bool = False,
              executor: str = "serial", workers: int = 1,
              limits: Limits | None = None, address: str | None = None,
              cell_threads: int | None = None) -> list[CellResult]:
    """Run every cell not yet in `store` (all with `force`); return the new results.

    `cell_threads` caps each cell's compute threads (local, ray); by default the cores are
    shared out among the workers (a single worker keeps them all).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    todo = [c for c in cells if force or not store.has(c.key.id)]
    for c in cells:
        if c not in todo:
            print(f"{_label(c)}: already stored, skipped", file=sys.stderr)
    done: list[CellResult] = []
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc=f"study {study or ''}".strip(), unit="cell",
               file=sys.stderr, disable=None)

    def finish(result: CellResult) -> None:
        store.put(result, study)
        done.append(result)
        bar.update()
        extra = f" ({result.category.value})" if result.message else ""
        print(f"{_label_key(result.key)}: {result.status.value}{extra}", file=sys.stderr)
        if on_result:
            on_result(result)

    if executor == "serial":
        for cell in todo:
            print(f"{_label(cell)} ...", file=sys.stderr)
            finish(run_cell(cell))
    elif executor == "local":
        _run_local(todo, max(1, workers), limits or Limits(), finish, cell_threads)
    else:
        from convbench.study.ray_executor import run_on_ray

        run_on_ray(todo, max(1, workers), limits or Limits(), finish, address, cell_threads)
    bar.close()
    return done


def _label(cell: Cell) -> str:
    return _label_key(cell.key)


def _label_key(k) -> str:
    return f"{k.framework} {k.model} {k.dataset} -> {k.format} run {k.run}"


def thread_budget(workers: int, cell_threads: int | None) -> int | None:
    if cell_threads:
        return cell_threads
    return max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None


def _run_local(cells: list[Cell], workers: int, limits: Limits, finish,
               cell_threads: int | None = None) -> None:
    ctx = mp.get_context("spawn")
    threads = thread_budget(workers, cell_threads)
    pending, running = list(cells), []
    while pending or running:
        while pending and len(running) < workers:
            cell = pending.pop(0)
            parent, child = ctx.Pipe(duplex=False)
            log = str(cache_dir() / "logs" / f"{cell.key.id}.log")
            proc = ctx.Process(target=_child, args=(cell, child, limits.memory_bytes, threads,
                                                    log), daemon=True)
            proc.start()
            child.close()
            print(f"{_label(cell)} ... (process {proc.pid}, log {log})", file=sys.stderr)
            running.append((cell, proc, parent, time.monotonic(), log))
        time.sleep(0.05)
        still = []
        for cell, proc, conn, start, log in running:
            result = _collect(cell, proc, conn, start, log, limits)
            if result is None:
                still.append((cell, proc, conn, start, log))
            else:
                finish(result)
        running = still


def _child(*args) -> None:  # the spawn target must be importable by name
    from convbench.study.worker import child_main

    child_main(*args)


def _collect(cell, proc, conn, start, log, limits: Limits) -> CellResult | None:
    """The cell's result if it has ended (well or not), else None."""
    if conn.poll():  # a result, or the end of the pipe: the child has gone
        try:
            result = conn.recv()
        except EOFError:
            result = None
        proc.join(timeout=30)
        if result is not None:
            return result
        code = proc.exitcode
        what = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return failed(cell, Category.CRASH, f"the cell's process died ({what}) without a "
                       f"result; see its log {log}", log)
    if limits.seconds is not None and time.monotonic() - start > limits.seconds:
        proc.kill()
        proc.join()
        return failed(cell, Category.TIMEOUT, f"the cell ran past its time limit of "
                       f"{limits.seconds:g} s and was stopped", log)
    return None


def failed(cell: Cell, category: Category, message: str, log: str) -> CellResult:
    now = time.time()
    return CellResult(cell.key, Status.FAILED, category, message, info={"log": log},
                      started=now, finished=now)
