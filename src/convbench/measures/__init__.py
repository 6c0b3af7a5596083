"""Measures: turn two runners' outputs on the same inputs into numbers (typed `Metric`s). They
record; they never raise on a bad result (a NaN output is a number to report, a failed probe
an outcome with its reason, not an exception)."""

from convbench.measures.agreement import agreement, mcnemar_exact
from convbench.measures.cost import CostOptions, measure_cost

__all__ = ["agreement", "mcnemar_exact", "CostOptions", "measure_cost"]
