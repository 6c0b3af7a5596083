"""The RQ3 protocol: craft adversarial inputs on one model, replay them on both, store them.

As the study: take `n` test inputs that both the original and the converted model classify
correctly (seeded), craft adversarial inputs on the original, feed them to both. An attack
that needs only predictions also runs the other way: crafted on the converted model's own
runtime and replayed on the original. An attack that declares a sweep is crafted again at each
extra value of its parameter on the same inputs (a robustness curve).
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convbench.attacks.base import Attack, Target, make_attack
from convbench.data.base import cache_dir
from convbench.measures.robustness import replay_metrics
from convbench.progress import step
from convbench.records import Artifact, CellResult, Metric, Outcome, Status


@dataclass
class AttackRun:
    """One direction of one attack: its numbers, the adversarial inputs and which test inputs
    they came from."""

    direction: str  # "forward": crafted on the original; "reverse": on the converted model
    metrics: list[Metric]
    x_adv: np.ndarray
    indices: np.ndarray


def both_correct(orig: Target, conv: Target, x, y, n: int | None,
                 rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of up to `n` inputs that both models classify correctly."""
    ok = np.flatnonzero((orig.predict(x).argmax(1) == y) & (conv.predict(x).argmax(1) == y))
    if n is not None and len(ok) > n:
        ok = np.sort(rng.choice(ok, size=n, replace=False))
    return ok


def replay(x, x_adv, y, crafted_on: Target, other: Target, text: bool,
           roles: tuple[str, str] = ("original", "converted"), **fields) -> list[Metric]:
    """The numbers of adversarial inputs crafted on `crafted_on`, replayed on `other`."""
    return replay_metrics(x, x_adv, y, crafted_on.predict(x_adv), other.predict(x_adv), text,
                          roles, **fields)


def run_attack(attack: Attack, orig: Target, conv: Target, x, y, n: int | None, seed: int,
               text: bool) -> list[AttackRun]:
    """The "forward" run and, for attacks that need only predictions, the "reverse" one."""
    rng = np.random.default_rng(seed)
    idx = both_correct(orig, conv, x, y, n, rng)
    xs, ys = x[idx], y[idx]
    runs = []
    directions = [("forward", orig, conv, ("original", "converted"))]
    if attack.needs == "predict":
        directions.append(("reverse", conv, orig, ("converted", "original")))
    for direction, src, dst, roles in directions:
        where = {"attack": attack.name, "direction": direction}
        x_adv = attack.craft(src, xs, ys, rng) if len(idx) else xs
        metrics = replay(xs, x_adv, ys, src, dst, text, roles, **where)
        if direction == "forward" and len(idx):
            for value in attack.sweep():
                adv = attack.craft(src, xs, ys, rng, **{attack.sweep_param: value})
                metrics += [m for m in replay(xs, adv, ys, src, dst, text, roles, **where,
                                              sweep=attack.sweep_param, sweep_value=value)
                            if m.measure != "inputs"]
        runs.append(AttackRun(direction, metrics, x_adv, idx))
    return runs


def save_adversarial(x_adv: np.ndarray, idx: np.ndarray, directory: Path, **meta) -> Artifact:
    """Store adversarial inputs as `.npz`, named by content hash, so results can be re-checked."""
    buf = io.BytesIO()
    np.savez_compressed(buf, x_adv=x_adv, indices=idx)
    raw = buf.getvalue()
    sha = hashlib.sha256(raw).hexdigest()
    path = Path(directory) / f"{sha[:20]}.npz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # cells writing it at once each whole
        tmp.write_bytes(raw)
        tmp.replace(path)
    return Artifact("npz", str(path), sha, dict(meta))


def attack_cell(result: CellResult, original: Artifact, converted: Artifact, x: np.ndarray,
                y: np.ndarray, attacks: list[dict[str, Any]], n: int | None, seed: int,
                nb_classes: int, vocab: dict[int, str] | None = None,
                threads: int | None = None,
                runtime_options: dict[str, dict[str, Any]] | None = None) -> None:
    """Run the spec's attacks on a cell's pair of models (on `n` inputs, or an attack's own
    `n`): each attack's metrics, stored adversarial inputs and outcome go into `result`. An
    attack that cannot run on this pair is an outcome `skipped` with the reason, one that fails
    `failed` with its error: the cell keeps its RQ1-2 numbers and the other attacks."""
    from convbench.attacks.targets import target_for
    from convbench.runtimes import default_runtime, open_runner

    runtime_options = runtime_options or {}
    conv_runtime = result.key.runtime
    kind = input_kind(x)
    text = kind == "text"
    orig_options = runtime_options.get(default_runtime(original.format), {})
    with open_runner(original, threads=threads, **orig_options) as o_run, \
            open_runner(converted, conv_runtime, threads=threads,
                        **runtime_options.get(conv_runtime, {})) as c_run:
        orig = target_for(original, o_run, nb_classes, x.shape[1:], vocab)
        sample = x[:64]
        probabilities = _probabilities(orig.predict(sample))
        if not probabilities:  # a model ending in logits: gradients of its own outputs
            orig = target_for(original, o_run, nb_classes, x.shape[1:], vocab, False)
        conv = target_for(converted, c_run, nb_classes, x.shape[1:], vocab, probabilities)
        if kind == "image" and (sample.min() < 0 or sample.max() > 1):
            kind, why_not = "", ("the attacks work on images in [0, 1] (their eps is in that "
                                 "scale, their results clipped to it); these inputs are "
                                 "normalised outside it")
        for spec in attacks:
            spec = {"name": spec} if isinstance(spec, str) else dict(spec)
            attack_n = spec.pop("n", n)  # an attack's own number of inputs
            attack = make_attack(spec)
            ok, why = attack.applicable(orig, kind) if kind else (False, why_not)
            if not ok:
                result.outcomes.append(Outcome("attack", attack.name, Status.SKIPPED, why,
                                               attack.params))
                continue
            step(f"attack {attack.name}")
            try:
                runs = run_attack(attack, orig, conv, x, y, attack_n, seed, text)
            except Exception as e:  # one attack's failure leaves the cell and the others
                result.outcomes.append(Outcome("attack", attack.name, Status.FAILED,
                                               f"{type(e).__name__}: {e}"[:2000],
                                               attack.params))
                continue
            result.outcomes.append(Outcome("attack", attack.name, Status.OK, "",
                                           attack.params))
            for run in runs:
                result.metrics.extend(run.metrics)
                role = attack.name if run.direction == "forward" else f"{attack.name}_reverse"
                result.artifacts[f"adversarial_{role}"] = save_adversarial(
                    run.x_adv, run.indices, cache_dir() / "adversarial", attack=attack.name,
                    direction=run.direction, params=attack.params)
                if text and vocab and run.direction == "forward":
                    result.info.setdefault("attack_examples", {})[attack.name] = \
                        _examples(x[run.indices], run.x_adv, vocab)


def input_kind(x) -> str:
    """"text" (token ids), "image" (NCHW) or "tabular" (feature vectors)."""
    if x.ndim == 2:
        return "text" if np.dtype(x.dtype).kind in "iu" else "tabular"
    return "image" if x.ndim == 4 else "tabular"


def _probabilities(p: np.ndarray) -> bool:
    """Whether a model's outputs are class probabilities (a softmax), not logits."""
    return bool(p.size and p.min() >= 0 and np.allclose(p.sum(1), 1, atol=1e-3))


def _examples(x: np.ndarray, x_adv: np.ndarray, vocab: dict[int, str], k: int = 3) -> list:
    """A few (original, adversarial) reviews as text, for reading the attack's work."""
    from convbench.attacks.genetic import decode

    changed = [i for i in range(len(x)) if (x[i] != x_adv[i]).any()][:k]
    return [{"original": decode(x[i], vocab), "adversarial": decode(x_adv[i], vocab)}
            for i in changed]
