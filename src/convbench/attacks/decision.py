"""Black-box decision attacks: they need only predictions, so they run against any runtime,
the converted model's own included.

Two implementations of each, chosen by the `implementation` parameter:

- "batched" (the default): ART's algorithm for one input, step for step, written as a
  generator that yields the candidates it wants classified (`_boundary`, `_hopskipjump`);
  `base.run_batched` advances every input's generator together, so each runner call carries the
  candidates of all the inputs still running, not the ~20 of one. Each input draws from its own
  generator seeded from the attack's, so a result does not depend on the other inputs, and a
  run is repeatable (ART's random starting points come from an unseeded RandomState).
- "art": ART's per-input `BoundaryAttack` / `HopSkipJump`, kept for comparison.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convbench.attacks.base import ArtAttack, AttackError, Steps, Target, run_batched

IMPLEMENTATIONS = ("batched", "art")
#: random starting points drawn per request while looking for a first adversarial input
START_CHUNK = 10


def _whole(low: int):
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low,
            f"a whole number >= {low}")


_POSITIVE = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
             "a number > 0")


class DecisionAttack(ArtAttack):
    """An untargeted decision attack with an ART and a batched implementation."""

    needs = "predict"
    unperturbed_why = ("none of its init_size random starting points (uniform noise) was "
                       "adversarial, so it had nothing to walk back from")

    #: ART's own checks of the parameters, made here so both implementations refuse the same
    limits: dict[str, tuple[Any, str]] = {}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.params["implementation"] not in IMPLEMENTATIONS:
            raise AttackError(f"attack {self.name!r}: implementation must be one of "
                              f"{', '.join(IMPLEMENTATIONS)}, not "
                              f"{self.params['implementation']!r}")
        for key, (ok, what) in self.limits.items():
            if not ok(self.params[key]):
                raise AttackError(f"attack {self.name!r}: {key} must be {what}, not "
                                  f"{self.params[key]!r}")

    @property
    def art_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k != "implementation"}

    def craft(self, target: Target, x, y, rng, **overrides: Any) -> np.ndarray:
        if self.params["implementation"] == "art":
            return super().craft(target, x, y, rng, **overrides)
        params = {**self.params, **overrides}
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not len(x):
            return x
        labels = target.predict(x).argmax(1)  # as ART: the labels to leave are the model's
        seeds = rng.integers(2 ** 63, size=len(x))
        steps = [self.steps(x[i], int(labels[i]), np.random.default_rng(int(seeds[i])), params)
                 for i in range(len(x))]
        return np.stack(run_batched(steps, target.predict)).astype(np.float32)

    def steps(self, x0: np.ndarray, label: int, rng, params: dict[str, Any],
              start: np.ndarray | None = None) -> Steps:
        """The attack with `params` on one input `x0` the model labels `label` (`start`: a
        given first adversarial input instead of a random one)."""
        raise NotImplementedError


class Boundary(DecisionAttack):
    """The untargeted Boundary attack (Brendel et al.), `max_iter` 50 as the study."""

    name = "boundary"
    # batch_size is ART's runner batch; the batched one sends all pending candidates at once
    defaults = {"max_iter": 50, "delta": 0.01, "epsilon": 0.01, "step_adapt": 0.667,
                "num_trial": 25, "sample_size": 20, "init_size": 100, "min_epsilon": 0.0,
                "batch_size": 64, "implementation": "batched"}
    # ART's defaults, in force before they were parameters here; ART ran the attack before
    implicit = {"step_adapt": 0.667, "min_epsilon": 0.0, "implementation": "batched"}
    limits = {"max_iter": _whole(0), "num_trial": _whole(0), "sample_size": _whole(1),
              "init_size": _whole(1), "delta": _POSITIVE, "epsilon": _POSITIVE,
              "step_adapt": (lambda v: isinstance(v, (int, float)) and 0 < v < 1,
                             "a number in (0, 1)"),
              "min_epsilon": (lambda v: isinstance(v, (int, float)) and v >= 0,
                              "a number >= 0")}

    def build(self, estimator):
        from art.attacks.evasion import BoundaryAttack

        return BoundaryAttack(estimator, targeted=False, verbose=False, **self.art_params)

    def steps(self, x0, label, rng, params, start=None) -> Steps:
        return _boundary(x0, label, rng, params, start)


class HopSkipJump(DecisionAttack):
    """HopSkipJump (Chen et al.), untargeted, L2."""

    name = "hopskipjump"
    defaults = {"max_iter": 10, "max_eval": 1000, "init_eval": 20, "init_size": 100,
                "batch_size": 64, "implementation": "batched"}
    implicit = {"implementation": "batched"}  # ART's per-input version ran before: same algorithm
    limits = {"max_iter": _whole(0), "max_eval": _whole(1), "init_eval": _whole(1),
              "init_size": _whole(1)}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.params["init_eval"] > self.params["max_eval"]:
            raise AttackError(f"attack 'hopskipjump': init_eval ({self.params['init_eval']}) "
                              f"must not exceed max_eval ({self.params['max_eval']})")

    def build(self, estimator):
        from art.attacks.evasion import HopSkipJump as Hsj

        return Hsj(estimator, targeted=False, norm=2, verbose=False, **self.art_params)

    def steps(self, x0, label, rng, params, start=None) -> Steps:
        return _hopskipjump(x0, label, rng, params, start)


def _random_start(x0, label, rng, tries: int):
    """A first adversarial input: uniform noise in [0, 1], drawn until the model gives it a
    label other than `label` (ART draws one at a time; the first hit of a chunk is the same
    draw). None when `tries` draws all keep the label."""
    left = tries
    while left:
        k = min(START_CHUNK, left)
        left -= k
        noise = rng.uniform(0.0, 1.0, size=(k, *x0.shape)).astype(x0.dtype)
        hit = np.flatnonzero((yield noise).argmax(1) != label)
        if hit.size:
            return noise[hit[0]]
    return None


def _normal(rng, shape) -> np.ndarray:
    """Standard normal float32 draws: drawn in float32 by a numpy Generator (twice as fast);
    from a legacy RandomState in float64 and rounded, as ART's `np.random.randn` (the same
    numbers as ART's, which the tests use)."""
    if isinstance(rng, np.random.Generator):
        return rng.standard_normal(shape, dtype=np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def _norms(v: np.ndarray) -> np.ndarray:
    """L2 norm of each row, shaped to broadcast back over the row."""
    flat = v.reshape(len(v), -1)
    return np.sqrt(np.einsum("ij,ij->i", flat, flat)).reshape((-1,) + (1,) * (v.ndim - 1))


def _boundary(x0, label, rng, p, start=None) -> Steps:
    """ART's `BoundaryAttack._perturb` (untargeted) for one input."""
    x_adv = start if start is not None else (yield from _random_start(x0, label, rng,
                                                                      p["init_size"]))
    if x_adv is None:
        return x0
    delta, epsilon, adapt = p["delta"], p["epsilon"], p["step_adapt"]
    for _ in range(p["max_iter"]):
        for _ in range(p["num_trial"]):  # a step along the sphere around x0, delta adapted
            cands = np.clip(x_adv + _orthogonal(delta, x_adv, x0, rng, p["sample_size"]), 0, 1)
            ok = (yield cands).argmax(1) != label
            ratio = ok.mean()
            delta = delta * adapt if ratio < 0.2 else delta / adapt if ratio > 0.5 else delta
            if ratio > 0:
                x_advs = cands[ok]
                break
        else:
            return x_adv
        for _ in range(p["num_trial"]):  # a step towards x0, epsilon adapted
            cands = np.clip(x_advs + (x0 - x_advs) * epsilon, 0, 1)
            ok = (yield cands).argmax(1) != label
            ratio = ok.mean()
            epsilon = (epsilon * adapt if ratio < 0.2 else epsilon / adapt if ratio > 0.5
                       else epsilon)
            if ratio > 0:
                x_adv = _closest(x0, cands[ok])
                break
        else:
            return _closest(x0, x_advs)
        if epsilon < p["min_epsilon"]:
            return x_adv
    return x_adv


def _orthogonal(delta, current, original, rng, n) -> np.ndarray:
    """`n` random steps from `current` of relative size `delta`, orthogonal to the direction to
    `original` and projected back onto the sphere around it (ART's `_orthogonal_perturb`)."""
    shape = current.shape
    perturb = _normal(rng, (n, *shape))
    perturb /= _norms(perturb)
    perturb *= delta * np.linalg.norm(original - current)
    direction = (original - current).reshape(-1)
    direction = direction / np.linalg.norm(direction)
    flat = perturb.reshape(n, -1)
    flat -= np.outer(flat @ direction, direction)
    hypotenuse = np.sqrt(1 + delta ** 2)
    return ((1 - hypotenuse) * (current - original) + flat.reshape(n, *shape)) / hypotenuse


def _closest(original, cands) -> np.ndarray:
    return cands[np.linalg.norm((cands - original).reshape(len(cands), -1), axis=1).argmin()]


def _hopskipjump(x0, label, rng, p, start=None) -> Steps:
    """ART's `HopSkipJump._perturb` (untargeted, L2) for one input."""
    d = x0.size
    theta = 0.01 / np.sqrt(d)
    if start is None:
        start = yield from _random_start(x0, label, rng, p["init_size"])
        if start is None:
            return x0
        start = yield from _bisect(start, x0, label, 0.001)
    current = start
    for it in range(p["max_iter"]):
        delta = 0.1 if it == 0 else np.sqrt(d) * theta * np.linalg.norm(x0 - current)
        current = yield from _bisect(current, x0, label, theta)
        # the gradient's direction at the boundary, estimated from random probes (Eq. 14)
        n = min(int(p["init_eval"] * np.sqrt(it + 1)), p["max_eval"])
        noise = _normal(rng, (n, *x0.shape))
        noise = noise / _norms(noise)
        probes = np.clip(current + delta * noise, 0, 1)
        noise = (probes - current) / delta
        sign = (2 * ((yield probes).argmax(1) != label) - 1.0).astype(np.float32)
        mean = sign.mean()
        if mean in (1.0, -1.0):
            grad = mean * noise.mean(axis=0)
        else:
            grad = np.mean((sign - mean).reshape((-1,) + (1,) * x0.ndim) * noise, axis=0)
        update = grad / np.linalg.norm(grad)
        # a geometric search for the step size, from twice the distance over sqrt(iterations)
        epsilon = 2.0 * np.linalg.norm(x0 - current) / np.sqrt(it + 1)
        for _ in range(64):
            epsilon /= 2.0
            candidate = current + epsilon * update
            if (yield np.clip(candidate, 0, 1)[None]).argmax(1)[0] != label:
                break
        else:  # the step vanished (ART would loop on): stay where the search left off
            candidate = current
        current = np.clip(candidate, 0, 1)
        if np.isnan(current).any():
            return x0
    return current


def _bisect(current, original, label, threshold):
    """The point nearest `original` on the segment to adversarial `current` that is still
    adversarial, to within `threshold` of the segment's length (ART's `_binary_search`, L2)."""
    upper, lower = np.float64(1.0), np.float64(0.0)
    while upper - lower > threshold:
        alpha = (upper + lower) / 2.0
        point = (1 - alpha) * original + alpha * current
        if (yield np.clip(point, 0, 1)[None]).argmax(1)[0] != label:
            upper = alpha
        else:
            lower = alpha
    return (1 - upper) * original + upper * current
