"""RQ1: do the converted model's predictions and outputs match the original's?"""

from __future__ import annotations

import numpy as np


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for paired correctness (1.0 when no pair disagrees)."""
    from scipy.stats import binomtest

    b = int(np.sum(a_correct & ~b_correct))
    c = int(np.sum(~a_correct & b_correct))
    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def agreement(orig: np.ndarray, conv: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy of both, label flips, absolute/relative output error, bitwise mismatch.

    Relative error is |orig - conv| / |conv|, with 0/0 = 0 and a nonzero difference over 0
    counted as inf (reported, not hidden). Errors are computed in float64.
    """
    o, c = orig.astype(np.float64), conv.astype(np.float64)
    if o.shape != c.shape:
        return {"shape_mismatch": 1.0}
    lo, lc = o.argmax(1), c.argmax(1)
    ok_o, ok_c = lo == y, lc == y
    diff = np.abs(o - c)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(c))
    flips = int(np.sum(lo != lc))
    finite = rel[np.isfinite(rel)]
    return {
        "n": float(len(y)),
        "accuracy_original": float(ok_o.mean()),
        "accuracy_converted": float(ok_c.mean()),
        "accuracy_delta": float(ok_c.mean() - ok_o.mean()),
        "label_flips": float(flips),
        "label_flip_rate": flips / len(y),
        "abs_err_mean": float(diff.mean()),
        "abs_err_max": float(diff.max()),
        "abs_err_p99": float(np.percentile(diff, 99, method="higher")),
        "rel_err_mean": float(finite.mean()) if finite.size else 0.0,
        "rel_err_max": float(rel.max()),
        # "higher": an order statistic, well defined when some relative errors are infinite
        "rel_err_p99": float(np.percentile(rel, 99, method="higher")),
        "bitwise_mismatch_rate": float(np.mean(orig != conv)),
        "nonfinite_outputs_original": float(np.sum(~np.isfinite(orig))),
        "nonfinite_outputs_converted": float(np.sum(~np.isfinite(conv))),
        "mcnemar_p": mcnemar_exact(ok_o, ok_c),
    }
