"""convbench's accuracy pass through ONNX Runtime vs a bare ONNX Runtime loop.

Both load the same LeNet-5 ONNX export and classify the same 10,000 MNIST test images in batches
of 128; runs alternate, and the ratio of medians is printed. Target: <= 1.10.

    CONVBENCH_DATA=../shared/data python bench/eval_overhead.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np


def _onnx_lenet(tmp: str):
    import torch

    from convbench.convert import convert
    from convbench.records import Artifact

    from convbench.models import build

    torch.manual_seed(0)
    model = build("torch", "lenet5", (1, 28, 28), 10)
    path = f"{tmp}/lenet5.pt"
    torch.save(model.state_dict(), path)
    arch = {"model": "lenet5", "input_shape": [1, 28, 28], "num_classes": 10, "options": {}}
    src = Artifact.from_path("torch", path, architecture=arch, input_shape=[1, 28, 28])
    return convert(src, "onnx", tmp, exporter="torchscript").artifact


def convbench_pass(artifact, x, y) -> float:
    from convbench.runtimes import open_runner

    with open_runner(artifact) as runner:
        return float((runner.infer_all(x, 128).argmax(1) == y).mean())


def bare_pass(path, x, y) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = np.concatenate([sess.run(None, {name: x[i:i + 128]})[0] for i in range(0, len(x), 128)])
    return float((out.argmax(1) == y).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    from convbench.data import get_dataset

    x, y, _ = get_dataset("mnist").arrays("test")
    with tempfile.TemporaryDirectory() as tmp:
        art = _onnx_lenet(tmp)
        times = {"convbench": [], "bare": []}
        accs = set()
        bare_pass(art.path, x, y)  # warm the page cache and ORT's first-use costs
        for _ in range(args.repeats):
            for name, fn, target in (("convbench", convbench_pass, art),
                                     ("bare", bare_pass, art.path)):
                t0 = time.perf_counter()
                accs.add(fn(target, x, y))
                times[name].append(time.perf_counter() - t0)
    assert len(accs) == 1, "both paths must give the same accuracy"
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"images: {len(y)}  repeats: {args.repeats}")
    print(f"convbench median {med['convbench']:.4f} s   bare ORT median {med['bare']:.4f} s")
    print(f"ratio convbench/bare: {med['convbench'] / med['bare']:.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
