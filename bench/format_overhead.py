"""convbench's accuracy pass vs a bare loop over the same runtime, for each format beyond ONNX
and Core ML: OpenVINO IR on the CPU plugin (from PyTorch), LiteRT (from Keras) and ExecuTorch
with XNNPACK (from PyTorch; with the executorch extra installed).

Both paths load the same converted LeNet-5 and classify the same 10,000 MNIST test images in
batches of 128 (convbench opens its runner each pass, as a cell does; the bare loop compiles
the model each pass too); runs alternate, and the ratio of medians is printed per runtime.
Target: every ratio <= 1.10.

    CONVBENCH_DATA=../shared/data python bench/format_overhead.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np


def _lenet(framework: str, tmp: str):
    """An untrained LeNet-5 of the zoo, saved as a source artifact (speed does not need
    training)."""
    from convbench.models import build
    from convbench.records import Artifact

    arch = {"model": "lenet5", "input_shape": [1, 28, 28], "num_classes": 10, "options": {}}
    model = build(framework, "lenet5", (1, 28, 28), 10)
    if framework == "torch":
        import torch

        path = f"{tmp}/lenet5.pt"
        torch.save(model.state_dict(), path)
        return Artifact.from_path("torch", path, architecture=arch, input_shape=[1, 28, 28])
    path = f"{tmp}/lenet5.keras"
    model.save(path)
    return Artifact.from_path("keras", path, architecture=arch, input_shape=[1, 28, 28],
                              layout="nhwc")


def convbench_pass(artifact, x, y) -> float:
    from convbench.runtimes import open_runner

    with open_runner(artifact, threads=2) as runner:
        return float((runner.infer_all(x, 128).argmax(1) == y).mean())


def bare_openvino(artifact, x, y) -> float:
    import openvino as ov

    compiled = ov.Core().compile_model(f"{artifact.path}/model.xml", "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32",
                                        "INFERENCE_NUM_THREADS": 2})
    req = compiled.create_infer_request()
    out = np.concatenate([req.infer({0: x[i:i + 128]})[compiled.output(0)].copy()
                          for i in range(0, len(x), 128)])
    return float((out.argmax(1) == y).mean())


def bare_litert(artifact, x, y) -> float:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=artifact.path, num_threads=2)
    inp, out_i = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    outs, size = [], None
    for i in range(0, len(x), 128):
        part = x[i:i + 128]
        if len(part) != size:
            it.resize_tensor_input(inp, part.shape)
            it.allocate_tensors()
            size = len(part)
        it.set_tensor(inp, part)
        it.invoke()
        outs.append(it.get_tensor(out_i))
    return float((np.concatenate(outs).argmax(1) == y).mean())


def bare_executorch(artifact, x, y) -> float:
    """ExecuTorch's runtime, batches of the size the program's memory was planned for (a
    program exported with a dynamic batch may be planned below 128: LeNet-5 at 15)."""
    import torch
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    portable_lib._unsafe_reset_threadpool(2)
    method = Runtime.get().load_program(artifact.path).load_method("forward")
    step = min(128, int(method.metadata.input_tensor_meta(0).sizes()[0]))
    out = np.concatenate([method.execute([torch.from_numpy(x[i:i + step])])[0].numpy()
                          for i in range(0, len(x), step)])
    return float((out.argmax(1) == y).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    from convbench.convert import convert
    from convbench.data import get_dataset

    x, y, _ = get_dataset("mnist").arrays("test")
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("openvino", convert(_lenet("torch", tmp), "openvino", tmp).artifact,
                  bare_openvino, x),
                 ("litert", convert(_lenet("keras", tmp), "tflite", tmp).artifact,
                  bare_litert, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))]
        import importlib.util

        if importlib.util.find_spec("executorch") is not None:
            cases.append(("executorch", convert(_lenet("torch", tmp), "executorch",
                                                tmp).artifact, bare_executorch, x))
        else:
            print("executorch: not installed (pip install 'convbench[executorch]'), skipped")
        print(f"images: {len(y)}  repeats: {args.repeats}")
        for runtime, art, bare, xs in cases:
            times = {"convbench": [], "bare": []}
            accs = set()
            bare(art, xs, y)  # warm the page cache and the runtime's first-use costs
            for _ in range(args.repeats):
                for name, fn in (("convbench", convbench_pass), ("bare", bare)):
                    t0 = time.perf_counter()
                    accs.add(fn(art, xs, y))
                    times[name].append(time.perf_counter() - t0)
            assert len(accs) == 1, "both paths must give the same accuracy"
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"{runtime}: convbench median {med['convbench']:.4f} s, bare median "
                  f"{med['bare']:.4f} s, ratio {med['convbench'] / med['bare']:.3f} "
                  f"(target <= 1.10)", flush=True)


if __name__ == "__main__":
    main()
