"""The `Attack` interface and the models it attacks (`Target`)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Generator

import numpy as np

from convbench.registry import Registry, suggest

ATTACKS: Registry[type["Attack"]] = Registry("attack")

#: the candidates one runner call carries at most (bytes, counted as float32 inputs)
CALL_BYTES = 64 * 2 ** 20

#: one input's attack: yields candidates (k, *shape) (images are classified as float32, as ART
#: does), is sent the model's outputs for them (k, classes), returns the adversarial input
Steps = Generator[np.ndarray, np.ndarray, np.ndarray]


def load_art() -> None:
    """Import the Adversarial Robustness Toolbox without its logging side effects.

    At import, ART calls `logging.config.dictConfig`, which flushes and closes every logging
    handler of the host program (a file handler then fails on its next record), and adds a
    handler for its own test suite to the "tests" logger. Both are undone here.
    """
    import logging
    import logging.config
    import sys

    if "art" not in sys.modules:
        clear = logging.config._clearExistingHandlers
        logging.config._clearExistingHandlers = lambda: None
        try:
            import art  # noqa: F401
        finally:
            logging.config._clearExistingHandlers = clear
    logging.getLogger("tests").handlers.clear()


class AttackError(ValueError):
    """An attack cannot run with these parameters or on this model."""


@dataclass
class Target:
    """A model under attack, seen in canonical layout (images NCHW in [0, 1], text token ids).

    `predict` maps inputs to class probabilities; `estimator` (optional) builds an ART
    estimator with gradients for white-box attacks; `layout` is the model's own layout, and
    `decode` turns token ids back into words for text models.
    """

    predict: Callable[[np.ndarray], np.ndarray]
    nb_classes: int
    input_shape: tuple[int, ...]
    estimator: Callable[[], Any] | None = None
    vocab: dict[int, str] | None = None

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({"predict"} | ({"gradients"} if self.estimator else set()))

    def black_box(self):
        """An ART black-box classifier over `predict` (images in [0, 1])."""
        load_art()
        from art.estimators.classification import BlackBoxClassifier

        return BlackBoxClassifier(lambda z: self.predict(z.astype(np.float32)),
                                  self.input_shape, self.nb_classes, clip_values=(0.0, 1.0))


class Attack:
    """One attack with its parameters (defaults in `defaults`, unknown names refused)."""

    name: ClassVar[str]
    needs: ClassVar[str]  # "gradients" or "predict"
    kind: ClassVar[str] = "image"
    defaults: ClassVar[dict[str, Any]] = {}
    #: the parameter a robustness curve varies (its extra values in the `sweep` parameter)
    sweep_param: ClassVar[str | None] = None
    #: parameters added after studies were stored, with the value that applied before them: at
    #: that value they stay out of a spec's identity, so stored cells still match on resume
    implicit: ClassVar[dict[str, Any]] = {}
    #: why this attack can return an input as it was (its `unperturbed` count); "" if it cannot
    unperturbed_why: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        accepted = set(self.defaults) | ({"sweep"} if self.sweep_param else set())
        unknown = set(params) - accepted
        if unknown:
            bad = sorted(unknown)[0]
            raise AttackError(f"attack {self.name!r} has no parameter {bad!r}."
                              f"{suggest(bad, sorted(accepted))} Its parameters: "
                              f"{', '.join(sorted(accepted))}")
        self.params = {**self.defaults, **params}

    def applicable(self, target: Target, kind: str) -> tuple[bool, str]:
        if kind != self.kind:
            return False, f"{self.name} attacks {self.kind} models, this one takes {kind}"
        if self.needs not in target.capabilities:
            return False, f"{self.name} needs {self.needs}, which this runtime does not give"
        return True, ""

    def craft(self, target: Target, x: np.ndarray, y: np.ndarray,
              rng: np.random.Generator, **overrides: Any) -> np.ndarray:
        """Adversarial versions of `x` (true labels `y`) against `target`."""
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """The parameters that make a study's cells what they are (see `implicit`)."""
        return {k: v for k, v in self.params.items()
                if k not in self.implicit or v != self.implicit[k]}

    def sweep(self) -> list[float]:
        """Extra values of `sweep_param` for a robustness curve (measured on the same inputs
        as the attack's own setting); none unless the spec lists them in `sweep`."""
        return [float(v) for v in self.params.get("sweep", [])] if self.sweep_param else []


class ArtAttack(Attack):
    """An attack ART implements: subclasses only build it (`build(estimator, **overrides)`).

    Gradient attacks get the target's white-box estimator and one-hot labels; predict-only
    attacks get a black-box classifier over the target's predictions, and numpy's global
    generator (which ART draws from) is seeded from `rng` for repeatable runs.
    """

    def build(self, estimator, **overrides: Any):
        raise NotImplementedError

    def craft(self, target: Target, x, y, rng, **overrides: Any) -> np.ndarray:
        load_art()
        x = x.astype(np.float32)
        if self.needs == "gradients":
            attack = self.build(target.estimator(), **overrides)
            return attack.generate(x, y=np.eye(target.nb_classes, dtype=np.float32)[y])
        np.random.seed(int(rng.integers(2 ** 31)))
        return self.build(target.black_box(), **overrides).generate(x)


def make_attack(spec: dict[str, Any] | str) -> Attack:
    """An attack from "name" or {"name": ..., params...}."""
    if isinstance(spec, str):
        spec = {"name": spec}
    spec = dict(spec)
    name = spec.pop("name")
    return ATTACKS.get(name)(**spec)


def run_batched(steps: list[Steps], predict: Callable[[np.ndarray], np.ndarray],
                call_bytes: int = CALL_BYTES) -> list[np.ndarray]:
    """Drive per-input attacks together: each runner call classifies the pending candidates of
    as many inputs as fit in `call_bytes` (at least one input's), taken in turn; each attack is
    sent the outputs for its own."""
    results: list[np.ndarray | None] = [None] * len(steps)
    queue: deque[tuple[int, np.ndarray]] = deque()

    def advance(i: int, outputs: np.ndarray | None) -> None:
        try:
            queue.append((i, steps[i].send(outputs)))
        except StopIteration as done:
            results[i] = done.value

    for i in range(len(steps)):
        advance(i, None)
    while queue:
        batch = [queue.popleft()]
        size = batch[0][1].size * 4
        while queue and size + queue[0][1].size * 4 <= call_bytes:
            size += queue[0][1].size * 4
            batch.append(queue.popleft())
        parts = [c for _, c in batch]
        outputs = predict(np.concatenate(parts, dtype=np.float32 if parts[0].dtype.kind == "f"
                                         else None))  # token ids stay integers
        at = 0
        for i, part in batch:
            advance(i, outputs[at:at + len(part)])
            at += len(part)
    return results
