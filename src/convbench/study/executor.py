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
from typing import IO

from convbench.data.base import cache_dir
from convbench.progress import listening
from convbench.records import Category, CellResult, Status
from convbench.store import Store
from convbench.study.cell import Cell, run_cell
from convbench.study.display import StudyDisplay, console_stream, output_to

EXECUTORS = ("serial", "local", "ray")


@dataclass
class Limits:
    """Per-cell limits of the `local` executor (None: no limit)."""

    seconds: float | None = None
    memory_bytes: int | None = None


def run_study(cells: list[Cell], store: Store, study: str = "", force: bool = False,
              executor: str = "serial", workers: int = 1,
              limits: Limits | None = None, address: str | None = None,
              cell_threads: int | None = None, retry_noisy: bool = False,
              console: IO[str] | None = None) -> list[CellResult]:
    """Run every cell not yet in `store` (all with `force`); return the new results.

    `cell_threads` caps each cell's compute threads (local, ray); by default the cores are
    shared out among the workers (a single worker keeps them all). Cells whose timing was
    deferred (other cells kept the machine busy) are timed at the end, alone; with
    `retry_noisy`, so are stored cells whose latency is marked noisy (nothing else reruns). The
    study's progress goes to `console` (default: this process's stderr); each cell's own
    output to its log file.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    todo = [c for c in cells if force or not store.has(c.key.id)]
    own_console = console is None
    console = console or console_stream()
    display = StudyDisplay(len(todo), study, console)
    if len(todo) < len(cells):
        display.note(f"{len(cells) - len(todo)} of {len(cells)} cells already in "
                     f"{store.path} (skipped; --force runs them again)")
    done: list[CellResult] = []

    def finish(result: CellResult) -> None:
        store.put(result, study)
        done.append(result)
        display.finish(result)

    def begin(cell: Cell) -> None:
        store.begin(cell.key.id)
        display.start(cell.key)

    try:
        if executor == "serial":
            for cell in todo:
                begin(cell)
                log = log_path(cell.key)
                with output_to(log), listening(lambda text, k=cell.key: display.step(k, text)):
                    result = run_cell(cell, log)
                result.info["log"] = log
                finish(result)
        elif executor == "local":
            _run_local(todo, max(1, workers), limits or Limits(), begin, finish, display,
                       cell_threads)
        else:
            from convbench.study.ray_executor import run_on_ray

            run_on_ray(todo, max(1, workers), limits or Limits(), begin, finish, address,
                       cell_threads)
        from convbench.study.retime import retime

        retime(cells, store, display, noisy_too=retry_noisy)  # deferred timings, alone
    finally:
        display.close()
        if own_console and console is not sys.stderr:
            console.close()
    return done


def log_path(key) -> str:
    """Where a cell's output (its frameworks' included) goes."""
    return str(cache_dir() / "logs" / f"{key.id}.log")


def thread_budget(workers: int, cell_threads: int | None) -> int | None:
    if cell_threads:
        return cell_threads
    return max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None


def _run_local(cells: list[Cell], workers: int, limits: Limits, begin, finish, display,
               cell_threads: int | None = None) -> None:
    ctx = mp.get_context("spawn")
    threads = thread_budget(workers, cell_threads)
    pending, running = list(cells), []
    while pending or running:
        while pending and len(running) < workers:
            cell = pending.pop(0)
            parent, child = ctx.Pipe(duplex=False)
            log = log_path(cell.key)
            begin(cell)
            proc = ctx.Process(target=_child, args=(cell, child, limits.memory_bytes, threads,
                                                    log), daemon=True)
            proc.start()
            child.close()
            running.append((cell, proc, parent, time.monotonic(), log))
        time.sleep(0.05)
        still = []
        for cell, proc, conn, start, log in running:
            result = _collect(cell, proc, conn, start, log, limits, display)
            if result is None:
                still.append((cell, proc, conn, start, log))
            else:
                finish(result)
        running = still


def _child(*args) -> None:  # the spawn target must be importable by name
    from convbench.study.worker import child_main

    child_main(*args)


def _collect(cell, proc, conn, start, log, limits: Limits, display) -> CellResult | None:
    """The cell's result if it has ended (well or not), else None; passes its steps on."""
    while conn.poll():  # a message, or the end of the pipe: the child has gone
        try:
            kind, payload = conn.recv()
        except EOFError:
            proc.join(timeout=30)
            code = proc.exitcode
            what = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            return failed(cell, Category.CRASH, f"the cell's process died ({what}) without a "
                           f"result; see its log {log}", log)
        if kind == "result":
            proc.join(timeout=30)
            return payload
        display.step(cell.key, payload)
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
