"""Parallel efficiency of the local executor: the same small study with 1 and 2 workers.

Six cells (LeNet-5 on digits, PyTorch and Keras, three widths, ONNX), each in a process of its
own, with a fresh cache per run so both runs do the same work. Each cell gets one compute
thread in both runs (strong scaling with fixed resources per cell), so the figure measures how
the executor spreads cells over workers: efficiency = T1 / (2 * T2). Target: >= 0.8 on this
2-core machine. The single worker given both cores is timed too, for reference.

    python bench/study_scaling.py
"""

from __future__ import annotations

import os
import tempfile
import time


def run(workers: int, cell_threads: int | None) -> float:
    from convbench.store import Store
    from convbench.study import parse_spec, plan, run_study

    spec = parse_spec({
        "name": "scaling", "preset": "smoke", "frameworks": ["torch", "keras"],
        "models": [{"model": "lenet5", "dataset": "digits", "options": {"width": w}}
                   for w in (1.0, 1.5, 2.0)],
        "formats": ["onnx"], "n_test": "all", "train": {"epochs": 10, "n_train": 2000},
        "measures": {"latency_batch_sizes": [1, 32], "latency_repeats": 10, "memory": False}})
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CONVBENCH_CACHE"] = tmp
        with Store(f"{tmp}/s.db") as store:
            t0 = time.perf_counter()
            results = run_study(plan(spec), store, executor="local", workers=workers,
                                cell_threads=cell_threads)
            elapsed = time.perf_counter() - t0
    assert all(r.status.value == "ok" for r in results), [r.message for r in results]
    return elapsed


def main() -> None:
    t1, t2, t1_both = run(1, 1), run(2, 1), run(1, None)
    print(f"1 worker: {t1:.1f} s   2 workers: {t2:.1f} s   speed-up {t1 / t2:.2f}   "
          f"parallel efficiency {t1 / (2 * t2):.2f} (target >= 0.8)")
    print(f"reference: 1 worker with both cores {t1_both:.1f} s, "
          f"speed-up of 2 workers over it {t1_both / t2:.2f}")


if __name__ == "__main__":
    main()
