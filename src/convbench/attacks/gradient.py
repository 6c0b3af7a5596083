"""White-box gradient attacks (ART): FGSM with an eps sweep, and PGD (L-inf)."""

from __future__ import annotations

import numpy as np

from convbench.attacks.base import Attack, Target, load_art


class Fgsm(Attack):
    """Fast Gradient Sign Method. `eps` (0.3, as the study) on [0, 1] inputs; `sweep` lists the
    extra eps values of a robustness curve (measured on the same inputs)."""

    name, needs = "fgsm", "gradients"
    defaults = {"eps": 0.3, "sweep": [], "batch_size": 128}

    def craft(self, target: Target, x, y, rng, eps: float | None = None) -> np.ndarray:
        load_art()
        from art.attacks.evasion import FastGradientMethod

        attack = FastGradientMethod(target.estimator(), norm=np.inf,
                                    eps=self.params["eps"] if eps is None else eps,
                                    batch_size=self.params["batch_size"])
        return attack.generate(x.astype(np.float32), y=_one_hot(y, target.nb_classes))


class Pgd(Attack):
    """Projected Gradient Descent, L-inf (Madry et al.), with a random start."""

    name, needs = "pgd", "gradients"
    defaults = {"eps": 0.3, "eps_step": 0.01, "max_iter": 40, "num_random_init": 1,
                "batch_size": 128}

    def craft(self, target: Target, x, y, rng) -> np.ndarray:
        load_art()
        from art.attacks.evasion import ProjectedGradientDescent

        p = self.params
        attack = ProjectedGradientDescent(target.estimator(), norm=np.inf, eps=p["eps"],
                                          eps_step=p["eps_step"], max_iter=p["max_iter"],
                                          num_random_init=p["num_random_init"],
                                          batch_size=p["batch_size"], verbose=False)
        return attack.generate(x.astype(np.float32), y=_one_hot(y, target.nb_classes))


def _one_hot(y: np.ndarray, n: int) -> np.ndarray:
    return np.eye(n, dtype=np.float32)[y]
