"""Adversarial attacks, one module per family, registered by name.

An attack declares what it needs from the model it attacks (`needs`: "gradients" or "predict")
and what inputs it applies to (`kind`: "image" or "text"); a predict-only attack runs against
any runner, so it can target the converted model's own runtime too.
"""

from convbench.attacks.base import ATTACKS, Attack, AttackError, Target, make_attack

ATTACKS.register_lazy("fgsm", "convbench.attacks.gradient:Fgsm")
ATTACKS.register_lazy("pgd", "convbench.attacks.gradient:Pgd")
ATTACKS.register_lazy("boundary", "convbench.attacks.decision:Boundary")
ATTACKS.register_lazy("hopskipjump", "convbench.attacks.decision:HopSkipJump")
ATTACKS.register_lazy("genetic", "convbench.attacks.genetic:Genetic")

__all__ = ["ATTACKS", "Attack", "AttackError", "Target", "make_attack"]
