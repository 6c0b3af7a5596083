"""RQ3: craft adversarial inputs on one model, replay them on both, measure what diverges.

The protocol of the study: take `n` test inputs that both the original and the converted model
classify correctly (seeded), craft adversarial inputs on the original, feed them to both. An
attack that needs only predictions also runs the other way: crafted on the converted model's
own runtime and replayed on the original.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from convbench.attacks.base import Attack, Target
from convbench.measures.agreement import mcnemar_exact
from convbench.records import Artifact


def both_correct(orig: Target, conv: Target, x, y, n: int | None,
                 rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of up to `n` inputs that both models classify correctly."""
    ok = np.flatnonzero((orig.predict(x).argmax(1) == y) & (conv.predict(x).argmax(1) == y))
    if n is not None and len(ok) > n:
        ok = np.sort(rng.choice(ok, size=n, replace=False))
    return ok


def replay(x, x_adv, y, crafted_on: Target, other: Target, text: bool,
           names: tuple[str, str] = ("original", "converted")) -> dict[str, float]:
    """Misclassification of both (`misclass_<name>`), divergence, output difference and
    perturbation size of adversarial inputs crafted on `crafted_on`, replayed on `other`."""
    p_src, p_dst = crafted_on.predict(x_adv), other.predict(x_adv)
    l_src, l_dst = p_src.argmax(1), p_dst.argmax(1)
    diverged = l_src != l_dst
    out = {
        "n": float(len(y)),
        f"misclass_{names[0]}": float(np.mean(l_src != y)) if len(y) else 0.0,
        f"misclass_{names[1]}": float(np.mean(l_dst != y)) if len(y) else 0.0,
        "divergence": float(diverged.sum()),
        "divergence_rate": float(diverged.mean()) if len(y) else 0.0,
        "abs_out_diff_mean": float(np.abs(p_src - p_dst).mean()) if len(y) else 0.0,
        "mcnemar_p": mcnemar_exact(l_src == y, l_dst == y),
    }
    delta = (x_adv.astype(np.float64) - x.astype(np.float64)).reshape(len(y), -1)
    if text:
        words = (x.reshape(len(y), -1) > 2).sum(1).clip(min=1)
        out["substitution_rate_mean"] = float(((delta != 0).sum(1) / words).mean())
    else:
        out["perturbation_l2_mean"] = float(np.linalg.norm(delta, axis=1).mean())
        out["perturbation_linf_mean"] = float(np.abs(delta).max(1).mean())
    return out


def run_attack(attack: Attack, orig: Target, conv: Target, x, y, n: int | None, seed: int,
               text: bool) -> list[tuple[str, dict[str, float], np.ndarray, np.ndarray]]:
    """[(direction, metrics, x_adv, indices)] for "forward" and, if possible, "reverse"."""
    rng = np.random.default_rng(seed)
    idx = both_correct(orig, conv, x, y, n, rng)
    xs, ys = x[idx], y[idx]
    out = []
    directions = [("forward", orig, conv, ("original", "converted"))]
    if attack.needs == "predict":
        directions.append(("reverse", conv, orig, ("converted", "original")))
    for direction, src, dst, names in directions:
        x_adv = attack.craft(src, xs, ys, rng) if len(idx) else xs
        metrics = replay(xs, x_adv, ys, src, dst, text, names)
        if direction == "forward" and len(idx):
            for label, overrides in attack.sweep():
                adv = attack.craft(src, xs, ys, rng, **overrides)
                swept = replay(xs, adv, ys, src, dst, text, names)
                metrics.update({f"{label}_{k}": v for k, v in swept.items() if k != "n"})
        out.append((direction, metrics, x_adv, idx))
    return out


def save_adversarial(x_adv: np.ndarray, idx: np.ndarray, directory: Path, **meta) -> Artifact:
    """Store adversarial inputs as `.npz`, named by content hash, so results can be re-checked."""
    buf = io.BytesIO()
    np.savez_compressed(buf, x_adv=x_adv, indices=idx)
    raw = buf.getvalue()
    sha = hashlib.sha256(raw).hexdigest()
    path = Path(directory) / f"{sha[:20]}.npz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(raw)
        tmp.replace(path)
    return Artifact("npz", str(path), sha, dict(meta))
