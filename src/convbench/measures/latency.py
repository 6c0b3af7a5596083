"""RQ2 latency as benchmarking tools take it: warm-up until the time per batch settles, repeats
until the median's 95% interval is narrow, and a noise mark on figures that cannot be trusted.

The statistics live here (pure functions over samples); `convbench.measures.cost` drives the
runtimes in processes of their own and feeds them in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from convbench.records import Metric


@dataclass(frozen=True)
class LatencyOptions:
    """How latency is measured (per batch size, original and converted interleaved).

    `warmup` and `repeats` are minimum counts of runs; warm-up goes on until the time per
    batch settles (`settle` relative change of the median of the last runs) and timing until
    the median's 95% interval is within +-`target_ci`, or `time_cap` seconds per batch size.
    Slow models get at least `Figure.MIN_BLOCKS` blocks past the cap, up to 10 times it.
    A figure is marked noisy when its interval is wider than +-`noisy_ci` (or there are too
    few runs for one), or when other
    processes used more than `noisy_load` of the machine's CPUs while it was taken: on a quiet
    2-core machine that share reads 0-20% (the kernel counts CPU time in clock ticks, so short
    blocks of runs leave some rounding), one CPU-bound neighbour makes it 35-55%. Also stored:
    how long the runtime's threads waited for a CPU (`cpu_wait`, per second of wall time): it
    rises with neighbours but also when a runtime runs more threads than there are cores
    (TensorFlow's pools: 40-60% on 2 cores, alone), so it informs and does not decide.
    """

    batch_sizes: tuple[int, ...] = (1, 32, 128)
    warmup: int = 3
    repeats: int = 20
    settle: float = 0.05
    target_ci: float = 0.05
    noisy_ci: float = 0.10
    noisy_load: float = 0.25
    time_cap: float = 4.0
    block_s: float = 0.03  # wall time of one block of runs before the other model's turn

    def thresholds(self) -> dict[str, float]:
        return {"noisy_ci": self.noisy_ci, "noisy_load": self.noisy_load}


def batch_of(x: np.ndarray, size: int) -> np.ndarray:
    """The first `size` samples, tiled when the test set is smaller."""
    reps = -(-size // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:size]) if reps > 1 else x[:size]


def median_ci(samples, level: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval of the median: order statistics chosen from the binomial
    distribution (the sign-test interval), so no shape of the timing distribution is assumed.
    (nan, nan) when there are too few samples for any interval at that level (fewer than 6
    at 95%: even the whole range covers the median less often)."""
    from scipy.stats import binom

    a = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(a)
    if n == 0:
        return (math.nan, math.nan)
    # the largest rank k with P(Binomial(n, 1/2) <= k - 1) <= (1 - level) / 2: the interval
    # [a_(k), a_(n-k+1)] then covers the median with probability >= level
    tail = binom.cdf(np.arange(n), n, 0.5)
    ok = np.flatnonzero(tail <= (1 - level) / 2)
    if not len(ok):
        return (math.nan, math.nan)
    k = int(ok[-1]) + 1
    return float(a[k - 1]), float(a[n - k])


def ci_halfwidth(samples) -> float:
    """Half-width of the median's 95% interval relative to the median (the larger side); inf
    when there are too few samples for one."""
    med = float(np.median(samples))
    lo, hi = median_ci(samples)
    if math.isnan(lo) or med <= 0:
        return math.inf
    return max(med - lo, hi - med) / med


def settled(samples, window: int = 5, tol: float = 0.05) -> bool:
    """Whether the median of the last `window` runs is within `tol` of the window before."""
    if len(samples) < 2 * window:
        return False
    last, before = np.median(samples[-window:]), np.median(samples[-2 * window:-window])
    return abs(last - before) <= tol * before


@dataclass
class Figure:
    """The runs of one model at one batch size, block by block, and what the machine did
    meanwhile.

    The figure is the median of the blocks' medians, and its interval the sign-test interval
    over blocks: runs within a block share the machine's state of the moment (they are not
    independent), blocks spread over the whole measurement. Too few blocks: from the runs.
    """

    blocks: list[list[float]] = field(default_factory=list)
    cpu_s: float = 0.0  # CPU time of the runtime's process during its runs
    wall_s: float = 0.0  # wall time of those runs
    others_cpu_s: float = 0.0  # CPU time used by every other process meanwhile
    wait_s: float = 0.0  # time the runtime's threads were runnable but not running
    warmup_runs: int = 0

    MIN_BLOCKS = 12  # the sign-test interval over 12 blocks: [3rd, 10th] (96.1%), so that two
    # stray blocks on one side (a moment of the host's own contention) do not decide it

    def add_block(self, samples_s, cpu_s: float, wall_s: float, others_cpu_s: float,
                  wait_s: float) -> None:
        self.blocks.append(list(samples_s))
        self.cpu_s += cpu_s
        self.wall_s += wall_s
        self.others_cpu_s += others_cpu_s  # tick-rounded: may dip below 0 in one block
        self.wait_s += wait_s

    @property
    def samples_s(self) -> list[float]:
        return [t for b in self.blocks for t in b]

    def _basis(self) -> list[float]:
        if len(self.blocks) >= self.MIN_BLOCKS:
            return [float(np.median(b)) for b in self.blocks]
        return self.samples_s

    def precise(self, opts: LatencyOptions) -> bool:
        return len(self.blocks) >= self.MIN_BLOCKS and \
            len(self.samples_s) >= opts.repeats and ci_halfwidth(self._basis()) <= opts.target_ci

    def metrics(self, opts: LatencyOptions, cpus: int, threads: int | None,
                **fields) -> list[Metric]:
        """median, p95, the median's interval, CV, runs, blocks, CPU/wall, other processes'
        share of the machine, the share of time spent waiting for a CPU, threads; every one
        marked noisy when the figure is."""
        s, basis = np.asarray(self.samples_s), self._basis()
        med = float(np.median(basis))
        lo, hi = median_ci(basis)
        half = ci_halfwidth(basis)
        wall = self.wall_s if self.wall_s > 0 else math.nan
        load = max(0.0, self.others_cpu_s) / (wall * cpus)
        wait = self.wait_s / wall
        noisy = bool(half > opts.noisy_ci or load > opts.noisy_load)
        stats = [("median", med, "s"), ("p95", float(np.percentile(s, 95)), "s"),
                 ("ci_low", lo, "s"), ("ci_high", hi, "s"),
                 ("cv", float(s.std(ddof=1) / s.mean()) if len(s) > 1 else math.nan, "ratio"),
                 ("runs", len(s), "count"), ("blocks", len(self.blocks), "count"),
                 ("warmup_runs", self.warmup_runs, "count"),
                 ("cpu_per_wall", self.cpu_s / self.wall_s if self.wall_s else math.nan,
                  "ratio"),
                 ("others_load", load, "ratio"), ("cpu_wait", wait, "ratio")]
        if threads:
            stats.append(("threads", threads, "count"))
        return [Metric("latency", v, unit, stat=stat, noisy=noisy, **fields)
                for stat, v, unit in stats]


def noisy_reason(metrics, opts: LatencyOptions | None = None) -> str:
    """Why a latency figure (its stats as `Metric`s) is marked noisy, in words."""
    opts = opts or LatencyOptions()
    by = {m.stat: m.value for m in metrics}
    med, lo, hi = by.get("median"), by.get("ci_low"), by.get("ci_high")
    parts = []
    if med and lo is not None and hi is not None:
        if math.isnan(lo):
            parts.append(f"{by.get('runs', 0):.0f} runs, too few for a 95% interval")
        elif max(med - lo, hi - med) / med > opts.noisy_ci:
            half = max(med - lo, hi - med) / med
            parts.append(f"95% interval +-{half:.1%} (> +-{opts.noisy_ci:.0%})")
    load = by.get("others_load")
    if load is not None and load > opts.noisy_load:
        parts.append(f"other processes used {load:.0%} of the CPUs (> {opts.noisy_load:.0%})")
    return "; ".join(parts)
