"""convbench's FGSM and PGD path vs direct ART calls on the same model and inputs.

LeNet-5 (PyTorch zoo) attacked on 1,000 MNIST test images: convbench builds its estimator
from a loaded runner and crafts through its Attack classes; the direct path builds ART's
PyTorchClassifier and attack by hand. Runs alternate; the ratio of medians is printed.
Target: <= 1.10.

    CONVBENCH_DATA=../shared/data python bench/attack_overhead.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    import torch

    from convbench.attacks import make_attack
    from convbench.attacks.base import load_art
    from convbench.attacks.targets import target_for
    from convbench.data import get_dataset
    from convbench.models import build
    from convbench.records import Artifact
    from convbench.runtimes import open_runner

    load_art()
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    x, y, _ = get_dataset("mnist").arrays("test", n=1000)
    onehot = np.eye(10, dtype=np.float32)[y]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/lenet5.pt"
        torch.save(build("torch", "lenet5", (1, 28, 28), 10).state_dict(), path)
        arch = {"model": "lenet5", "input_shape": [1, 28, 28], "num_classes": 10, "options": {}}
        art = Artifact.from_path("torch", path, architecture=arch, layout="nchw")
        with open_runner(art) as runner:
            target = target_for(art, runner, 10, (1, 28, 28))
            model = runner.model.body
            attacks = {
                "fgsm": (make_attack("fgsm"),
                         lambda clf: FastGradientMethod(clf, eps=0.3, batch_size=128)),
                "pgd": (make_attack({"name": "pgd", "max_iter": 10}),
                        lambda clf: ProjectedGradientDescent(
                            clf, eps=0.3, eps_step=0.01, max_iter=10, batch_size=128,
                            verbose=False)),
            }
            for name, (ours, direct_attack) in attacks.items():
                def convbench_path():
                    return ours.craft(target, x, y, np.random.default_rng(0))

                def direct_path():
                    clf = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(),
                                            input_shape=(1, 28, 28), nb_classes=10,
                                            clip_values=(0.0, 1.0), device_type="cpu")
                    return direct_attack(clf).generate(x, y=onehot)

                if name == "fgsm":  # the same adversarial inputs either way
                    np.testing.assert_allclose(convbench_path(), direct_path(), atol=1e-6)
                times = {"convbench": [], "direct": []}
                for _ in range(args.repeats):
                    for label, fn in (("convbench", convbench_path), ("direct", direct_path)):
                        t0 = time.perf_counter()
                        fn()
                        times[label].append(time.perf_counter() - t0)
                a, b = statistics.median(times["convbench"]), statistics.median(times["direct"])
                print(f"{name}: convbench {a:.4f} s, direct ART {b:.4f} s, ratio {a / b:.3f} "
                      f"(target <= 1.10)")


if __name__ == "__main__":
    main()
