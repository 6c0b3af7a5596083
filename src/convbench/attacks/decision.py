"""Black-box decision attacks (ART): they need only predictions, so they run against any
runtime, the converted model's own included."""

from __future__ import annotations

from convbench.attacks.base import ArtAttack


class Boundary(ArtAttack):
    """The untargeted Boundary attack (Brendel et al.), `max_iter` 50 as the study."""

    name, needs = "boundary", "predict"
    defaults = {"max_iter": 50, "delta": 0.01, "epsilon": 0.01, "num_trial": 25,
                "sample_size": 20, "init_size": 100, "batch_size": 64}

    def build(self, estimator):
        from art.attacks.evasion import BoundaryAttack

        return BoundaryAttack(estimator, targeted=False, verbose=False, **self.params)


class HopSkipJump(ArtAttack):
    """HopSkipJump (Chen et al.), untargeted, L2."""

    name, needs = "hopskipjump", "predict"
    defaults = {"max_iter": 10, "max_eval": 1000, "init_eval": 20, "init_size": 100,
                "batch_size": 64}

    def build(self, estimator):
        from art.attacks.evasion import HopSkipJump as Hsj

        return Hsj(estimator, targeted=False, norm=2, verbose=False, **self.params)
