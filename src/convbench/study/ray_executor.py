"""The `ray` executor: each cell a Ray task in a fresh worker process, on an existing cluster
(`address`) or on a local Ray started for the run; results come back to the study's process,
which alone writes the store."""

from __future__ import annotations

import os
import time

from convbench.records import Category
from convbench.limits import Limits, time_message
from convbench.study.executor import failed, log_path, thread_budget


def run_on_ray(cells, workers: int, limits: Limits, begin, finish, address: str | None,
               cell_threads: int | None = None) -> None:
    try:
        import ray
    except ImportError:
        raise ValueError("the ray executor needs Ray: pip install 'convbench[ray]'") from None
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local instance for this run only
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    threads = thread_budget(workers, cell_threads)
    task = ray.remote(max_calls=1, num_cpus=1)(_task)  # a fresh process per cell
    try:
        pending, running = list(cells), {}
        while pending or running:
            while pending and len(running) < workers:
                cell = pending.pop(0)
                log = log_path(cell.key)
                begin(cell)
                ref = task.remote(cell, limits.memory_bytes, threads, log)
                running[ref] = (cell, time.monotonic(), log)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.2)
            for ref in ready:
                cell, start, log = running.pop(ref)
                try:
                    finish(ray.get(ref))
                except ray.exceptions.RayError as e:
                    finish(failed(cell, Category.CRASH, f"the cell's Ray worker failed: "
                                                        f"{type(e).__name__}", log, start))
            if limits.seconds is not None:
                for ref, (cell, start, log) in list(running.items()):
                    if time.monotonic() - start > limits.seconds:
                        ray.cancel(ref, force=True)
                        running.pop(ref)
                        finish(failed(cell, Category.TIMEOUT,
                                      time_message(limits.seconds, "", cell.files()), log, start))
    finally:
        if started:
            ray.shutdown()


def _task(cell, memory_limit, threads, log):
    from convbench.study.worker import run_isolated

    return run_isolated(cell, memory_limit, threads, log)
