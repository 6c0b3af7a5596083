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


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a proportion `k` of `n`."""
    from scipy.stats import beta

    if not n:
        return (float("nan"), float("nan"))
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def paired_change(b: int, c: int, n: int, z: float = 1.96) -> tuple[float, float, float]:
    """Change of a paired proportion, (c - b) / n, with its 95% Wald interval, from the
    discordant counts of `n` pairs (`b`: only the first is right, `c`: only the second)."""
    if not n:
        return (float("nan"),) * 3
    d = (c - b) / n
    se = math.sqrt(max(b + c - (c - b) ** 2 / n, 0.0)) / n
    return d, d - z * se, d + z * se
