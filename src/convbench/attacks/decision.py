"""Black-box decision attacks (ART): they need only predictions, so they run against any
runtime, the converted model's own included."""

from __future__ import annotations

import numpy as np

from convbench.attacks.base import Attack, Target, load_art


class Boundary(Attack):
    """The untargeted Boundary attack (Brendel et al.), `max_iter` 50 as the study."""

    name, needs = "boundary", "predict"
    defaults = {"max_iter": 50, "delta": 0.01, "epsilon": 0.01, "num_trial": 25,
                "sample_size": 20, "init_size": 100, "batch_size": 64}

    def craft(self, target: Target, x, y, rng) -> np.ndarray:
        load_art()
        from art.attacks.evasion import BoundaryAttack

        p = self.params
        attack = BoundaryAttack(target.black_box(), targeted=False, verbose=False,
                                **{k: p[k] for k in self.defaults})
        np.random.seed(int(rng.integers(2 ** 31)))  # ART draws from numpy's global generator
        return attack.generate(x.astype(np.float32))


class HopSkipJump(Attack):
    """HopSkipJump (Chen et al.), untargeted, L2."""

    name, needs = "hopskipjump", "predict"
    defaults = {"max_iter": 10, "max_eval": 1000, "init_eval": 20, "init_size": 100,
                "batch_size": 64}

    def craft(self, target: Target, x, y, rng) -> np.ndarray:
        load_art()
        from art.attacks.evasion import HopSkipJump as Hsj

        p = self.params
        attack = Hsj(target.black_box(), targeted=False, norm=2, verbose=False,
                     **{k: p[k] for k in self.defaults})
        np.random.seed(int(rng.integers(2 ** 31)))
        return attack.generate(x.astype(np.float32))
