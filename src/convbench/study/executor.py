"""Running a study's cells into a store: serially in this process, or each cell in a child
process of its own (`local`, `workers` at a time) with a time and a memory limit.

Finished cells already in the store are skipped, so an interrupted study resumes. Only this
process writes the store, one transaction per cell.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from typing import IO

from convbench.data.base import cache_dir
from convbench.limits import (STUDY_SECONDS, Limits, TimeLimitReached, memory_cap,
                              time_limit, time_message, where)
from convbench.progress import listening
from convbench.records import Category, CellResult, Status
from convbench.store import Store
from convbench.study.cell import Cell, contained
from convbench.study.display import StudyDisplay, console_stream, output_to

EXECUTORS = ("serial", "local", "ray")
__all__ = ["EXECUTORS", "Limits", "run_study", "log_path"]


def run_study(cells: list[Cell], store: Store, study: str = "", force: bool = False,
              executor: str = "serial", workers: int = 1,
              limits: Limits | None = None, address: str | None = None,
              cell_threads: int | None = None, retry_noisy: bool = False,
              console: IO[str] | None = None) -> list[CellResult]:
    """Run every cell not yet in `store` (all with `force`); return the new results.

    Every executor holds each cell to `limits` (memory, time; see `convbench.limits`; by
    default 75% of physical memory and `STUDY_SECONDS`).
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

    limits = limits or Limits.from_options(None, None, STUDY_SECONDS)
    try:
        if executor == "serial":
            for cell in todo:
                begin(cell)
                finish(_run_here(cell, limits, display))
        elif executor == "local":
            _run_local(todo, max(1, workers), limits, begin, finish, display, cell_threads)
        else:
            from convbench.study.ray_executor import run_on_ray

            run_on_ray(todo, max(1, workers), limits, begin, finish, address, cell_threads)
        from convbench.study.retime import retime

        retime(cells, store, display, noisy_too=retry_noisy)  # deferred timings, alone
        from convbench.study.explain_later import explain_stored

        explain_stored(cells, store, display)  # cells stored before `explain:` was on
    finally:
        display.close()
        if own_console and console is not sys.stderr:
            console.close()
    return done


def _run_here(cell, limits: Limits, display) -> CellResult:
    """The `serial` executor: one cell in this process, under its limits."""
    log = log_path(cell.key)
    with output_to(log), listening(lambda text, k=cell.key: display.step(k, text)):
        try:
            with memory_cap(limits.memory_bytes), time_limit(limits.seconds):
                result = cell.run(log)
        except TimeLimitReached as e:  # fired again after the cell's own guard had caught it
            now = time.time()
            result = CellResult(cell.key, Status.FAILED, Category.TIMEOUT,
                                time_message(e.seconds, "", cell.files()), started=now,
                                finished=now)
    result.info["log"] = log
    return contained(result, limits.memory_bytes)


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
    try:
        while pending or running:
            while pending and len(running) < workers:
                cell = _next(pending, [r[0] for r in running])
                parent, child = ctx.Pipe(duplex=False)
                log = log_path(cell.key)
                begin(cell)
                proc = ctx.Process(target=_child, args=(cell, child, limits.memory_bytes,
                                                        threads, log), daemon=True)
                proc.start()
                child.close()
                running.append((cell, proc, parent, time.monotonic(), log, {"step": ""}))
            time.sleep(0.05)
            still = []
            for run in running:
                result = _collect(*run, limits, display)
                if result is None:
                    still.append(run)
                else:
                    finish(result)
            running = still
    finally:  # interrupted (Ctrl-C): no cell, and no runtime host of one, outlives the study
        for _, proc, *_ in running:
            _stop(proc)


def _next(pending: list, running: list):
    """Take the next cell to start: the first that does not need an original a running cell is
    still training (it would only wait on that training's lock while a core sits idle)."""
    busy = {_untrained(c) for c in running} - {None}
    for i, cell in enumerate(pending):
        if _untrained(cell) not in busy:
            return pending.pop(i)
    return pending.pop(0)


def _untrained(cell) -> str | None:
    return cell.untrained() if hasattr(cell, "untrained") else None


def _stop(proc) -> None:
    """Kill a cell's process and its runtime hosts (its process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:  # not yet in a group of its own
        proc.kill()
    proc.join()


def _child(*args) -> None:  # the spawn target must be importable by name
    from convbench.study.worker import child_main

    child_main(*args)


def _collect(cell, proc, conn, start, log, state, limits: Limits,
             display) -> CellResult | None:
    """The cell's result if it has ended (well or not), else None; passes its steps on."""
    while conn.poll():  # a message, or the end of the pipe: the child has gone
        try:
            kind, payload = conn.recv()
        except EOFError:
            proc.join(timeout=30)
            code = proc.exitcode
            if code == -signal.SIGKILL:  # convbench did not send it: the kernel's OOM killer
                return failed(cell, Category.OUT_OF_MEMORY, f"the cell's process was killed "
                              f"(signal 9) {where(state['step'], cell.files())}, most likely by "
                              f"the system for want of memory; run fewer --workers or lower "
                              f"--memory-limit so that an allocation fails first", log, start)
            what = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            return failed(cell, Category.CRASH, f"the cell's process died ({what}) without a "
                           f"result; see its log {log}", log, start)
        if kind == "result":
            proc.join(timeout=30)
            return payload
        state["step"] = payload
        display.step(cell.key, payload)
    if limits.seconds is not None and time.monotonic() - start > limits.seconds:
        _stop(proc)
        return failed(cell, Category.TIMEOUT,
                      time_message(limits.seconds, state["step"], cell.files()), log, start)
    return None


def failed(cell: Cell, category: Category, message: str, log: str,
           start: float | None = None) -> CellResult:
    """A cell that ended without a result of its own; `start` (`time.monotonic()` when it
    started) dates it, so that its progress line says how long it ran."""
    now = time.time()
    began = now if start is None else now - (time.monotonic() - start)
    return CellResult(cell.key, Status.FAILED, category, message, info={"log": log},
                      started=began, finished=now)
