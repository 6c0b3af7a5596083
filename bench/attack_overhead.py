"""What convbench's attack paths cost, measured side by side in one run.

gradient: convbench's FGSM and PGD vs direct ART calls on the same model and inputs (LeNet-5,
PyTorch zoo, 1,000 MNIST test images). Runs alternate; the ratio of medians is printed.
Target: <= 1.10.

decision: Boundary and HopSkipJump, the batched implementation vs ART's per-input one, on the
same model, inputs and seed: LeNet-5 (MNIST) and ResNet-18 (CIFAR-10), trained with the quick
preset, 200 test inputs both classify correctly, attacked through each runtime asked for (the
original in PyTorch; `onnxruntime` and `coreml` on its conversions, as the study's reverse
attacks). Prints each one's time, images classified, runner calls, success rate and median L2
of the successful ones, and the speed-up. Target: >= 10x at 200 inputs.

call: a batch-1 call through convbench's attack target (`Target.predict`) vs the bare runtime
call on the same loaded model (ORT `session.run`, the torch module), alternating, medians.
Target: <= 1.10.

    CONVBENCH_DATA=../shared/data python bench/attack_overhead.py [gradient] [decision] [call]
        [--models lenet5,resnet18] [--runtimes torch,onnxruntime,coreml] [--n 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np


def gradient(args) -> None:
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


DATASETS = {"lenet5": "mnist", "resnet18": "cifar10", "vgg16": "cifar10"}


def _quick_models(model: str, tmp: str, runtimes: list[str]) -> dict:
    """The quick preset's PyTorch `model`, trained here, and its conversions: {runtime: art}."""
    from convbench.convert import convert
    from convbench.training import preset_config, train

    art = train(preset_config("quick", "torch", model, DATASETS[model]), tmp).artifact
    arts = {"torch": art}
    for runtime, target in (("onnxruntime", "onnx"), ("coreml", "coreml-fp32")):
        if runtime in runtimes:
            conv = convert(art, target, tmp)
            if conv.artifact is None:
                raise SystemExit(f"{model} -> {target} failed: {conv.error}")
            arts[runtime] = conv.artifact
    return arts


def decision(args) -> None:
    from convbench.attacks import make_attack
    from convbench.attacks.targets import target_for
    from convbench.data import get_dataset
    from convbench.runtimes import open_runner

    for model in args.models.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            arts = _quick_models(model, tmp, args.runtimes.split(","))
            x, y, _ = get_dataset(DATASETS[model]).arrays("test", n=1000)
            shape = x.shape[1:]
            with open_runner(arts["torch"]) as r:
                right = target_for(arts["torch"], r, 10, shape).predict(x).argmax(1) == y
            for runtime in args.runtimes.split(","):
                art = arts[runtime]
                with open_runner(art, runtime) as r:
                    target = target_for(art, r, 10, shape)
                    ok = np.flatnonzero(right & (target.predict(x).argmax(1) == y))
                    idx = np.sort(np.random.default_rng(0).choice(ok, min(args.n, len(ok)),
                                                                  replace=False))
                    xs, ys = x[idx], y[idx]
                    for name in args.attacks.split(","):
                        row = {}
                        for impl in ("batched", "art"):
                            attack = make_attack({"name": name, "implementation": impl})
                            counted = _Counted(target)
                            t0 = time.perf_counter()
                            adv = attack.craft(counted, xs, ys, np.random.default_rng(1))
                            seconds = time.perf_counter() - t0
                            fooled = target.predict(adv).argmax(1) != ys
                            l2 = np.linalg.norm((adv - xs).reshape(len(xs), -1), axis=1)
                            row[impl] = seconds
                            print(f"{model} {runtime} {name} {impl}: {seconds:.1f} s, "
                                  f"{counted.images} images in {counted.calls} calls, "
                                  f"success {fooled.mean():.3f}, median L2 "
                                  f"{np.median(l2[fooled]) if fooled.any() else float('nan'):.4f}"
                                  f" ({len(xs)} inputs)", flush=True)
                        print(f"{model} {runtime} {name}: speed-up "
                              f"{row['art'] / row['batched']:.1f}x (target >= 10)", flush=True)


class _Counted:
    """A target whose predict counts its calls and the images it classified."""

    def __init__(self, target) -> None:
        self.__dict__.update(target.__dict__)
        self._inner, self.calls, self.images = target, 0, 0
        self.predict = self._predict  # the target's own predict is an instance field

    def _predict(self, x):
        self.calls += 1
        self.images += len(x)
        return self._inner.predict(x)

    def black_box(self):
        from convbench.attacks.base import Target

        return Target.black_box(self)


def call(args) -> None:
    import torch

    from convbench.attacks.targets import target_for
    from convbench.convert import convert
    from convbench.runtimes import open_runner
    from convbench.training import preset_config, train

    with tempfile.TemporaryDirectory() as tmp:
        art = train(preset_config("smoke", "torch", "lenet5", "digits"), tmp).artifact
        onnx = convert(art, "onnx", tmp).artifact
        x1 = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
        for a, runtime in ((art, "torch"), (onnx, "onnxruntime")):
            with open_runner(a, runtime) as r:
                target = target_for(a, r, 10, (1, 28, 28))
                if runtime == "torch":
                    def bare(m=r.model, t=torch.from_numpy(x1)):
                        with torch.inference_mode():
                            return m(t).numpy()
                else:
                    def bare(s=r.session, name=r.session.get_inputs()[0].name):
                        return s.run(None, {name: x1})[0]
                np.testing.assert_array_equal(bare(), target.predict(x1))
                times = {"convbench": [], "bare": []}
                for _ in range(args.repeats * 3):
                    for label, fn in (("convbench", lambda: target.predict(x1)), ("bare", bare)):
                        t0 = time.perf_counter_ns()
                        for _ in range(200):
                            fn()
                        times[label].append((time.perf_counter_ns() - t0) / 200e3)
                a_, b_ = statistics.median(times["convbench"]), statistics.median(times["bare"])
                print(f"batch-1 call, LeNet-5 on {runtime}: convbench {a_:.1f} us, bare "
                      f"{b_:.1f} us, ratio {a_ / b_:.3f} (target <= 1.10)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("parts", nargs="*", default=["gradient", "decision", "call"],
                    choices=["gradient", "decision", "call"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--models", default="lenet5,resnet18")
    ap.add_argument("--runtimes", default="torch")
    ap.add_argument("--attacks", default="boundary,hopskipjump")
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    for part in args.parts:
        globals()[part](args)


if __name__ == "__main__":
    main()
