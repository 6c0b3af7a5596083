"""RQ3 for one cell: run the spec's attacks on the original and the converted model."""

from __future__ import annotations

from typing import Any

import numpy as np

from convbench.attacks import make_attack
from convbench.attacks.targets import target_for
from convbench.data.base import cache_dir
from convbench.measures.robustness import run_attack, save_adversarial
from convbench.records import Artifact, CellResult
from convbench.runtimes import default_runtime, open_runner


def attack_cell(result: CellResult, original: Artifact, converted: Artifact, x: np.ndarray,
                y: np.ndarray, attacks: list[dict[str, Any]], n: int | None, seed: int,
                nb_classes: int, vocab: dict[int, str] | None = None,
                threads: int | None = None,
                runtime_options: dict[str, dict[str, Any]] | None = None) -> None:
    """Add each attack's metrics (`<attack>_...`, `<attack>_reverse_...`), its stored
    adversarial inputs and its status to `result`. An attack that cannot run on this pair is
    recorded as skipped with the reason, one that fails as failed: the cell keeps its RQ1-2."""
    runtime_options = runtime_options or {}
    conv_runtime = result.key.runtime
    status: dict[str, Any] = result.info.setdefault("attacks", {})
    text = x.ndim == 2
    orig_options = runtime_options.get(default_runtime(original.format), {})
    with open_runner(original, threads=threads, **orig_options) as o_run, \
            open_runner(converted, conv_runtime, threads=threads,
                        **runtime_options.get(conv_runtime, {})) as c_run:
        orig = target_for(original, o_run, nb_classes, x.shape[1:], vocab)
        conv = target_for(converted, c_run, nb_classes, x.shape[1:], vocab)
        for spec in attacks:
            attack = make_attack(spec)
            ok, why = attack.applicable(orig, "text" if text else "image")
            if not ok:
                status[attack.name] = {"status": "skipped", "reason": why}
                continue
            try:
                outcomes = run_attack(attack, orig, conv, x, y, n, seed, text)
            except Exception as e:  # one attack's failure leaves the cell and the others
                status[attack.name] = {"status": "failed", "params": attack.params,
                                       "message": f"{type(e).__name__}: {e}"[:2000]}
                continue
            status[attack.name] = {"status": "ok", "params": attack.params}
            for direction, metrics, x_adv, idx in outcomes:
                prefix = attack.name if direction == "forward" else f"{attack.name}_reverse"
                result.metrics.update({f"{prefix}_{k}": v for k, v in metrics.items()})
                result.artifacts[f"adversarial_{prefix}"] = save_adversarial(
                    x_adv, idx, cache_dir() / "adversarial", attack=attack.name,
                    direction=direction, params=attack.params)
                if text and vocab and direction == "forward":
                    status[attack.name]["examples"] = _examples(x[idx], x_adv, vocab)


def _examples(x: np.ndarray, x_adv: np.ndarray, vocab: dict[int, str], k: int = 3) -> list:
    """A few (original, adversarial) reviews as text, for reading the attack's work."""
    from convbench.attacks.genetic import decode

    changed = [i for i in range(len(x)) if (x[i] != x_adv[i]).any()][:k]
    return [{"original": decode(x[i], vocab), "adversarial": decode(x_adv[i], vocab)}
            for i in changed]
