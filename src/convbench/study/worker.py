"""Running one cell in a child process of its own: isolation for memory, crashes and time.

The `local` executor starts `child_main` with the spawn method, so the child shares no state
with it; the `ray` executor runs `run_isolated` as a task in a fresh Ray worker. Either way the
process optionally caps its address space, gives its thread budget to the frameworks, writes
its output to the cell's log file and returns the `CellResult`; the study's process alone
writes the store.
"""

from __future__ import annotations

import os
from pathlib import Path

from convbench.records import Category, CellResult, Status


# How running out of address space shows in Python, numpy, native libraries and the loader.
_OUT_OF_MEMORY = ("memoryerror", "cannot allocate memory", "failed to map segment", "bad_alloc",
                  "out of memory", "unable to allocate")


def child_main(cell, conn, memory_limit: int | None, threads: int | None, log: str) -> None:
    """The `local` executor's child: run the cell, send its steps and its result to the
    parent (as `("step", text)` and `("result", CellResult)` messages)."""
    from convbench.progress import listening

    with listening(lambda text: conn.send(("step", text))):
        result = run_isolated(cell, memory_limit, threads, log)
    conn.send(("result", result))
    conn.close()


def run_isolated(cell, memory_limit: int | None, threads: int | None, log: str) -> CellResult:
    """Run `cell` in this (dedicated) process: output to `log`, address space capped."""
    from convbench.measures.machine import thread_env
    from convbench.study.display import output_to

    Path(log).parent.mkdir(parents=True, exist_ok=True)
    Path(log).write_text("")  # this run's output only
    os.environ.update(thread_env(threads))
    if memory_limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    from convbench.study.cell import run_cell

    try:
        with output_to(log):
            if threads:
                import torch

                torch.set_num_threads(threads)
            result = run_cell(cell, log)
    except MemoryError:
        result = CellResult(cell.key, Status.FAILED, Category.OUT_OF_MEMORY,
                            f"the cell exceeded its memory limit of {memory_limit} bytes")
    result.info["log"] = log
    if memory_limit and result.status is Status.FAILED and any(
            s in result.message.lower() for s in _OUT_OF_MEMORY):
        result.category = Category.OUT_OF_MEMORY
        result.message = f"memory limit of {memory_limit} bytes reached: {result.message}"
    return result
