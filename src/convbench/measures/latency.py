"""RQ2 latency: per-batch wall time over a batch-size sweep, with warm-up and repeats."""

from __future__ import annotations

import numpy as np

from convbench.runtimes.base import Runner


def _batch(x: np.ndarray, size: int) -> np.ndarray:
    """The first `size` samples, tiled when the test set is smaller."""
    reps = -(-size // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:size]) if reps > 1 else x[:size]


def latency_sweep(runner: Runner, x: np.ndarray, batch_sizes=(1, 32, 128), warmup: int = 3,
                  repeats: int = 20) -> dict[str, float]:
    """Median and p95 seconds per batch for each batch size: `latency_{median,p95}_s_bs{B}`."""
    out: dict[str, float] = {}
    for bs in batch_sizes:
        xb = _batch(x, bs)
        for _ in range(warmup):
            runner.infer(xb)
        ns = np.array([runner.infer_timed(xb)[1] for _ in range(repeats)], dtype=np.float64)
        out[f"latency_median_s_bs{bs}"] = float(np.median(ns) / 1e9)
        out[f"latency_p95_s_bs{bs}"] = float(np.percentile(ns, 95) / 1e9)
    return out
