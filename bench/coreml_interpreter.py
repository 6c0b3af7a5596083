"""convbench's Core ML interpreter vs ONNX Runtime on the same model.

LeNet-5 and ResNet-18 (PyTorch zoo, full width) are exported to ONNX and converted to an FP32
ML Program; both run the same inputs at batch 64 and batch 1 in alternating blocks of runs with
a pause between blocks (ORT's spinning worker threads would otherwise slow whatever runs right
after it), and the ratio of median times per run (interpreter / ORT) is printed.
Targets: <= 1.5 at batch 64, <= 3 at batch 1.

    python bench/coreml_interpreter.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

TARGETS = {64: 1.5, 1: 3.0}


def _artifacts(model: str, shape, tmp: str):
    import torch

    from convbench.convert import convert
    from convbench.models import build
    from convbench.records import Artifact

    torch.manual_seed(0)
    net = build("torch", model, shape, 10)
    path = f"{tmp}/{model}.pt"
    torch.save(net.state_dict(), path)
    arch = {"model": model, "input_shape": list(shape), "num_classes": 10, "options": {}}
    src = Artifact.from_path("torch", path, architecture=arch, input_shape=list(shape),
                             layout="nchw")
    onnx = convert(src, "onnx", tmp, exporter="torchscript").artifact
    coreml = convert(src, "coreml-fp32", tmp).artifact
    return onnx, coreml


def _times(fn, x, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - t0)
    time.sleep(0.1)  # let ORT's spinning worker threads go idle before the other side runs
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5, help="blocks per side")
    args = ap.parse_args()
    from convbench.runtimes import open_runner

    rng = np.random.default_rng(0)
    print(f"{'model':10s} {'batch':>5s} {'ORT ms':>9s} {'interp ms':>10s} {'ratio':>6s} target")
    with tempfile.TemporaryDirectory() as tmp:
        for model, shape in (("lenet5", (1, 28, 28)), ("resnet18", (3, 32, 32))):
            onnx, coreml = _artifacts(model, shape, tmp)
            with open_runner(onnx) as ort, open_runner(coreml, engine="interpreter") as interp:
                for batch, target in TARGETS.items():
                    x = rng.random((batch, *shape), dtype=np.float32)
                    np.testing.assert_allclose(interp.infer(x), ort.infer(x), atol=1e-5)
                    for _ in range(3):  # warm-up
                        ort.infer(x), interp.infer(x)
                    t_ort, t_int = [], []
                    block = 10 if batch > 1 else 100
                    for _ in range(args.repeats):  # alternate blocks, so drift hits both alike
                        t_ort += _times(ort.infer, x, block)
                        t_int += _times(interp.infer, x, block)
                    a, b = statistics.median(t_ort), statistics.median(t_int)
                    print(f"{model:10s} {batch:5d} {a * 1e3:9.3f} {b * 1e3:10.3f} "
                          f"{b / a:6.2f} <= {target}")


if __name__ == "__main__":
    main()
