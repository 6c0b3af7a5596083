"""RQ1: do the converted model's predictions and outputs match the original's?"""

from __future__ import annotations

import numpy as np

from convbench.records import Metric


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for paired correctness (1.0 when no pair disagrees)."""
    return mcnemar_from_counts(int(np.sum(a_correct & ~b_correct)),
                               int(np.sum(~a_correct & b_correct)))


def mcnemar_from_counts(b: int, c: int) -> float:
    """Exact McNemar p-value from the discordant counts (`b`: only the first is right, `c`:
    only the second); counts pooled over cells give the pooled test."""
    from scipy.stats import binomtest

    return 1.0 if b + c == 0 else float(binomtest(int(b), int(b + c), 0.5).pvalue)


def paired_correctness(ok_a: np.ndarray, ok_b: np.ndarray, roles=("original", "converted"),
                       **fields) -> list[Metric]:
    """McNemar's exact test of paired correctness, with the discordant counts it rests on
    (`correct_only[role]`: inputs only that model gets right), so tests can be pooled."""
    b, c = int(np.sum(ok_a & ~ok_b)), int(np.sum(~ok_a & ok_b))
    return [Metric("mcnemar", mcnemar_from_counts(b, c), "p", **fields),
            Metric("correct_only", b, "count", role=roles[0], **fields),
            Metric("correct_only", c, "count", role=roles[1], **fields)]


#: Unit roundoff of the precision a converted model computes in: a value of magnitude m is
#: known to within m * u, so two outputs whose gap is within (|a| + |b|) * u are a tie in it.
UNIT_ROUNDOFF = {"fp16": 2.0 ** -11, "fp32": 2.0 ** -24, "fp64": 2.0 ** -53}


def tie_flips(orig: np.ndarray, conv_labels: np.ndarray, precision: str = "fp32") -> np.ndarray:
    """Which inputs flip on a tie: the converted model's label differs from the original's,
    and the original scores the two labels within the converted precision's rounding of each
    other, so either is what that precision can say."""
    u = UNIT_ROUNDOFF.get(precision, UNIT_ROUNDOFF["fp32"])
    rows = np.arange(len(orig))
    lo = orig.argmax(1)
    a, b = orig[rows, lo], orig[rows, conv_labels]
    return (lo != conv_labels) & (a - b <= (np.abs(a) + np.abs(b)) * u)


def agreement(orig: np.ndarray, conv: np.ndarray, y: np.ndarray | None,
              precision: str = "fp32") -> list[Metric]:
    """Accuracy of both (when there are labels), label flips (split into decided flips and
    tie flips: see `tie_flips`; `precision` is the converted model's), absolute/relative output
    error, bitwise mismatch and McNemar's test, as `Metric`s.

    Relative error is |orig - conv| / |conv|, with 0/0 = 0 and a nonzero difference over 0
    counted as inf (reported, not hidden). Errors are computed in float64. Outputs of
    different shapes give one `shape_mismatch` metric instead (a measure never raises).
    """
    o, c = orig.astype(np.float64), conv.astype(np.float64)
    if o.shape != c.shape:
        return [Metric("shape_mismatch", 1.0, "count")]
    lo, lc = o.argmax(1), c.argmax(1)
    flipped = lo != lc
    ties = tie_flips(o, lc, precision)
    diff = np.abs(o - c)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(c))
    finite = rel[np.isfinite(rel)]
    out = [Metric("inputs", len(o), "count")]
    if y is not None:
        ok_o, ok_c = lo == y, lc == y
        out += [Metric("accuracy", ok_o.mean(), "ratio", role="original"),
                Metric("accuracy", ok_c.mean(), "ratio", role="converted")]
    out += [
        Metric("label_flips", np.sum(flipped), "count"),
        Metric("decided_flips", np.sum(flipped & ~ties), "count"),
        Metric("tie_flips", np.sum(ties), "count"),
        Metric("abs_err", diff.mean(), "output", stat="mean"),
        Metric("abs_err", diff.max(), "output", stat="max"),
        Metric("abs_err", np.percentile(diff, 99, method="higher"), "output", stat="p99"),
        Metric("rel_err", finite.mean() if finite.size else 0.0, "ratio", stat="mean"),
        Metric("rel_err", rel.max(), "ratio", stat="max"),
        # "higher": an order statistic, well defined when some relative errors are infinite
        Metric("rel_err", np.percentile(rel, 99, method="higher"), "ratio", stat="p99"),
        Metric("bitwise_mismatch", np.mean(orig != conv), "ratio"),
        Metric("nonfinite_outputs", np.sum(~np.isfinite(orig)), "count", role="original"),
        Metric("nonfinite_outputs", np.sum(~np.isfinite(conv)), "count", role="converted"),
    ]
    if y is not None:
        out += paired_correctness(ok_o, ok_c)
    return out
