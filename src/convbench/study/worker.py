"""Running one cell in a child process of its own: isolation for memory, crashes and time.

The `local` executor starts `child_main` with the spawn method, so the child shares no state
with it; the `ray` executor runs `run_isolated` as a task in a fresh Ray worker. Either way the
process caps its memory (`convbench.limits`), gives its thread budget to the frameworks, writes
its output to the cell's log file and returns the `CellResult`; the study's process alone
writes the store.
"""

from __future__ import annotations

import os
from pathlib import Path

from convbench.records import Category, CellResult, Status


def child_main(cell, conn, memory_limit: int | None, threads: int | None, log: str) -> None:
    """The `local` executor's child: run the cell, send its steps and its result to the
    parent (as `("step", text)` and `("result", CellResult)` messages)."""
    from convbench.limits import die_with_parent
    from convbench.progress import listening

    os.setpgid(0, 0)  # a group of its own: stopping the cell stops its runtime hosts too
    die_with_parent()  # and a study that is stopped stops its cells
    with listening(lambda text: conn.send(("step", text))):
        result = run_isolated(cell, memory_limit, threads, log)
    conn.send(("result", result))
    conn.close()


def run_isolated(cell, memory_limit: int | None, threads: int | None, log: str) -> CellResult:
    """Run `cell` in this (dedicated) process: output to `log`, memory capped."""
    from convbench.limits import memory_cap
    from convbench.measures.machine import thread_env
    from convbench.study.cell import contained
    from convbench.study.display import output_to

    Path(log).parent.mkdir(parents=True, exist_ok=True)
    Path(log).write_text("")  # this run's output only
    os.environ.update(thread_env(threads))
    with memory_cap(memory_limit):
        try:
            with output_to(log):
                if threads:
                    import torch

                    torch.set_num_threads(threads)
                result = cell.run(log)
        except MemoryError as e:  # outside the cell's own guard: importing, say
            result = CellResult(cell.key, Status.FAILED, Category.OUT_OF_MEMORY,
                                f"MemoryError: {e}")
    result.info["log"] = log
    return contained(result, memory_limit)
