"""RQ3 numbers: what two models' predictions on the same adversarial inputs say (the attack
protocol that crafts and replays them lives in `convbench.attacks.protocol`)."""

from __future__ import annotations

import numpy as np

from convbench.measures.agreement import paired_correctness
from convbench.records import Metric


def replay_metrics(x: np.ndarray, x_adv: np.ndarray, y: np.ndarray, p_src: np.ndarray,
                   p_dst: np.ndarray, text: bool, roles: tuple[str, str],
                   **fields) -> list[Metric]:
    """Misclassification of both models (`roles`: the one the inputs were crafted on, then
    the other), the inputs the attack left as they were (`unperturbed`: a decision attack that
    found no adversarial starting point; counted as failures in misclassification), divergence
    (inputs whose two labels differ), mean absolute output difference, McNemar's test of the
    two models' correctness, and the perturbation's size (L2 and L-inf for images, the share
    of substituted words for text)."""
    n = len(y)
    l_src, l_dst = p_src.argmax(1), p_dst.argmax(1)
    delta = (x_adv.astype(np.float64) - x.astype(np.float64)).reshape(n, -1)
    out = [Metric("inputs", n, "count", **fields),
           Metric("unperturbed", int(np.sum(~delta.any(1))), "count", **fields),
           Metric("misclassification", np.mean(l_src != y) if n else 0.0, "ratio",
                  role=roles[0], **fields),
           Metric("misclassification", np.mean(l_dst != y) if n else 0.0, "ratio",
                  role=roles[1], **fields),
           Metric("divergence", np.sum(l_src != l_dst), "count", **fields),
           Metric("output_diff", np.abs(p_src - p_dst).mean() if n else 0.0, "output",
                  stat="mean", **fields),
           *paired_correctness(l_src == y, l_dst == y, roles, **fields)]
    if text:
        words = (x.reshape(n, -1) > 2).sum(1).clip(min=1)
        share = ((delta != 0).sum(1) / words).mean() if n else 0.0
        out.append(Metric("substitution", share, "ratio", stat="mean", **fields))
    elif n:
        out += [Metric("perturbation", np.linalg.norm(delta, axis=1).mean(), "input",
                       stat="l2_mean", **fields),
                Metric("perturbation", np.abs(delta).max(1).mean(), "input",
                       stat="linf_mean", **fields)]
    return out
