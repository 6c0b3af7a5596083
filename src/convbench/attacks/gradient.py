"""White-box gradient attacks (ART): FGSM with an eps sweep, and PGD (L-inf)."""

from __future__ import annotations

import numpy as np

from convbench.attacks.base import ArtAttack


class Fgsm(ArtAttack):
    """Fast Gradient Sign Method. `eps` (0.3, as the study) on [0, 1] inputs; `sweep` lists the
    extra eps values of a robustness curve (measured on the same inputs)."""

    name, needs = "fgsm", "gradients"
    defaults = {"eps": 0.3, "sweep": [], "batch_size": 128}

    def sweep(self):
        return [(f"eps{eps:g}", {"eps": eps}) for eps in self.params["sweep"]]

    def build(self, estimator, eps: float | None = None):
        from art.attacks.evasion import FastGradientMethod

        return FastGradientMethod(estimator, norm=np.inf,
                                  eps=self.params["eps"] if eps is None else eps,
                                  batch_size=self.params["batch_size"])


class Pgd(ArtAttack):
    """Projected Gradient Descent, L-inf (Madry et al.), with a random start."""

    name, needs = "pgd", "gradients"
    defaults = {"eps": 0.3, "eps_step": 0.01, "max_iter": 40, "num_random_init": 1,
                "batch_size": 128}

    def build(self, estimator):
        from art.attacks.evasion import ProjectedGradientDescent

        return ProjectedGradientDescent(estimator, norm=np.inf, verbose=False, **self.params)
