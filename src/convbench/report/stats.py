"""Statistics for the report: intervals, summaries over runs, paired tests with effect sizes."""

from __future__ import annotations

import math

import numpy as np


def wilson(p: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion `p` observed on `n` samples."""
    if not n:
        return (float("nan"), float("nan"))
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if not len(a):
        return (float("nan"), float("nan"))
    return (float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0)


def wilcoxon_paired(a: list[float], b: list[float]) -> dict[str, float | str]:
    """Wilcoxon signed-rank test of paired samples, with the matched-pairs rank-biserial
    correlation as effect size; says so when there are too few pairs to test."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    d = x - y
    d = d[d != 0]
    if len(d) < 6:
        return {"p": float("nan"), "effect": float("nan"),
                "verdict": f"too few runs to test ({len(x)} pairs; the test needs 6 or more)"}
    from scipy.stats import rankdata, wilcoxon

    p = float(wilcoxon(x, y).pvalue)
    ranks = rankdata(np.abs(d))
    effect = float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())
    verdict = "significant" if p < 0.05 else "not significant"
    return {"p": p, "effect": effect, "verdict": verdict}
