"""White-box gradient attacks (ART): FGSM and PGD (L-inf), each with an optional eps sweep."""

from __future__ import annotations

import numpy as np

from convbench.attacks.base import ArtAttack


class Fgsm(ArtAttack):
    """Fast Gradient Sign Method. `eps` (0.3, as the study) on [0, 1] inputs; `sweep` lists the
    extra eps values of a robustness curve (measured on the same inputs)."""

    name, needs = "fgsm", "gradients"
    defaults = {"eps": 0.3, "sweep": [], "batch_size": 128}
    sweep_param = "eps"

    def build(self, estimator, eps: float | None = None):
        from art.attacks.evasion import FastGradientMethod

        return FastGradientMethod(estimator, norm=np.inf,
                                  eps=self.params["eps"] if eps is None else eps,
                                  batch_size=self.params["batch_size"])


class Pgd(ArtAttack):
    """Projected Gradient Descent, L-inf (Madry et al.), with a random start; `sweep` lists
    extra eps values of a robustness curve."""

    name, needs = "pgd", "gradients"
    defaults = {"eps": 0.3, "eps_step": 0.01, "max_iter": 40, "num_random_init": 1,
                "batch_size": 128}
    sweep_param = "eps"

    def build(self, estimator, eps: float | None = None):
        from art.attacks.evasion import ProjectedGradientDescent

        params = {k: v for k, v in self.params.items() if k != "sweep"}
        if eps is not None:
            params["eps"] = eps
        return ProjectedGradientDescent(estimator, norm=np.inf, verbose=False, **params)
