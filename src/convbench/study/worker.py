"""Running one cell in a child process of its own: isolation for memory, crashes and time.

The parent (`executor`) starts `child_main` with the spawn method, so the child shares no
state with it; the child optionally caps its address space, sends its thread budget to the
frameworks, writes its output to the cell's log file and returns the `CellResult` through a
pipe. The parent alone writes the store.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from convbench.records import Category, CellResult, Status


# How running out of address space shows in Python, numpy, native libraries and the loader.
_OUT_OF_MEMORY = ("memoryerror", "cannot allocate memory", "failed to map segment", "bad_alloc",
                  "out of memory", "unable to allocate")


def child_main(cell, conn, memory_limit: int | None, threads: int | None, log: str) -> None:
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(threads)
    if memory_limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    from convbench.study.cell import run_cell

    try:
        if threads:
            import torch

            torch.set_num_threads(threads)
        result = run_cell(cell)
    except MemoryError:
        result = CellResult(cell.key, Status.FAILED, Category.OUT_OF_MEMORY,
                            f"the cell exceeded its memory limit of {memory_limit} bytes")
    result.info["log"] = log
    if memory_limit and result.status is Status.FAILED and any(
            s in result.message.lower() for s in _OUT_OF_MEMORY):
        result.category = Category.OUT_OF_MEMORY
        result.message = f"memory limit of {memory_limit} bytes reached: {result.message}"
    conn.send(result)
    conn.close()
