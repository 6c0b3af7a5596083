"""Measures: turn two runners' outputs on the same inputs into numbers. They record; they never
raise on a bad result (a NaN output is a number to report, not an exception)."""

from convbench.measures.agreement import agreement, mcnemar_exact
from convbench.measures.latency import latency_sweep
from convbench.measures.memory import peak_rss

__all__ = ["agreement", "mcnemar_exact", "latency_sweep", "peak_rss"]
