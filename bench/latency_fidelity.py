"""Does convbench's latency figure depend on the cell it is taken in? The same LeNet-5 ONNX and
Core ML (FP32 ML Program) files are timed by convbench inside a Keras cell and inside a PyTorch
cell (`convbench.study.cell.compare`, the path every study takes), and by a bare loop in a
fresh process (the runtime called directly, as a user would time it), in `--rounds` rounds of
bare loop, Keras cell, PyTorch cell, then a last bare loop. The reference is the median of the
bare loops; their spread (slowest / fastest) says how reproducible the machine itself is.

Prints, per file and batch size, the ratio of convbench's median (over rounds) to the bare
loops', and whether convbench marked a figure noisy. Target: within 10%, or marked noisy.

    python bench/latency_fidelity.py [--batch-sizes 1,32,128] [--rounds 2] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TARGET = 0.10

_BARE = r"""
import json, sys, time
import numpy as np
spec = json.loads(sys.argv[1])
x = np.load(spec["x"])
if spec["format"] == "onnx":
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = spec["threads"]
    s = ort.InferenceSession(spec["path"], so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    run = lambda xb: s.run(None, {name: xb})
else:
    import torch
    torch.set_num_threads(spec["threads"])
    from convbench.mil import Interpreter, load_program
    from convbench.mil.program import load_spec
    interp = Interpreter(load_program(spec["path"]))
    name = load_spec(spec["path"]).description.input[0].name
    run = lambda xb: interp.run({name: xb})
out = {}
for b in spec["batches"]:
    xb = np.ascontiguousarray(np.concatenate([x] * (-(-b // len(x))))[:b])
    for _ in range(30):
        run(xb)
    times = []
    t_end = time.perf_counter() + 3.0
    while time.perf_counter() < t_end or len(times) < 30:
        t0 = time.perf_counter()
        run(xb)
        times.append(time.perf_counter() - t0)
    out[b] = float(np.median(times))
print(json.dumps(out))
"""


def _models(tmp: str):
    import torch

    from convbench.convert import convert
    from convbench.models import build
    from convbench.records import Artifact

    shape = (1, 28, 28)
    torch.manual_seed(0)
    net = build("torch", "lenet5", shape, 10)
    torch.save(net.state_dict(), f"{tmp}/lenet5.pt")
    arch = {"model": "lenet5", "input_shape": list(shape), "num_classes": 10, "options": {}}
    torch_art = Artifact.from_path("torch", f"{tmp}/lenet5.pt", architecture=arch,
                                   input_shape=list(shape), layout="nchw")
    kmodel = build("keras", "lenet5", shape, 10)
    kmodel.save(f"{tmp}/lenet5.keras")
    keras_art = Artifact.from_path("keras", f"{tmp}/lenet5.keras", input_shape=[28, 28, 1],
                                   layout="nhwc")
    onnx = convert(torch_art, "onnx", tmp, exporter="torchscript")
    coreml = convert(torch_art, "coreml-fp32", tmp)
    return {"torch": torch_art, "keras": keras_art}, {"onnx": onnx, "coreml": coreml}


def _bare(conv, x_path: str, batches, threads: int) -> dict[int, float]:
    spec = {"format": conv.artifact.format, "path": conv.artifact.path, "x": x_path,
            "batches": batches, "threads": threads}
    out = subprocess.run([sys.executable, "-c", _BARE, json.dumps(spec)], capture_output=True,
                         text=True, check=True)
    return {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-sizes", default="1,32,128")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, help="default: every CPU, as convbench")
    args = ap.parse_args()
    batches = [int(b) for b in args.batch_sizes.split(",")]
    from convbench.data import get_dataset
    from convbench.measures.machine import cpu_count
    from convbench.study.cell import MeasureOptions, compare

    threads = args.threads or cpu_count()
    x, y, _ = get_dataset("digits").arrays("test")
    measures = MeasureOptions(latency_batch_sizes=batches, memory=False, latency_wait=None)
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        originals, converted = _models(tmp)
        x_path = str(Path(tmp) / "x.npy")
        np.save(x_path, x)
        print(f"threads {threads}, {args.rounds} round(s); ratio: convbench's median over "
              f"rounds / the bare loops' (target within {TARGET:.0%}, or marked noisy *); "
              f"spread: the bare loops' slowest / fastest")
        print(f"{'file':7s} {'batch':>5s} {'bare ms':>9s} {'spread':>7s} "
              f"{'in Keras cell':>14s} {'in PyTorch cell':>16s}")
        for fmt, conv in converted.items():
            bare, figures = [], {"keras": [], "torch": []}
            for _ in range(args.rounds):
                bare.append(_bare(conv, x_path, batches, threads))
                for fw, original in originals.items():
                    metrics, _, _ = compare(original, conv, x, y, measures, threads)
                    figures[fw].append({b: metrics.one("latency", stat="median",
                                                       role="converted", batch_size=b)
                                        for b in batches})
            bare.append(_bare(conv, x_path, batches, threads))
            for b in batches:
                ref = statistics.median(r[b] for r in bare)
                spread = max(r[b] for r in bare) / min(r[b] for r in bare)
                cols = []
                for fw in ("keras", "torch"):
                    got = [f[b] for f in figures[fw]]
                    ratio = statistics.median(m.value for m in got) / ref
                    noisy = any(m.noisy for m in got)
                    ok = abs(ratio - 1) <= TARGET or noisy
                    bad += not ok
                    cols.append(f"{ratio:6.3f}{'*' if noisy else ' '}{'' if ok else ' !'}")
                print(f"{fmt:7s} {b:5d} {ref * 1e3:9.4f} {spread:7.3f} {cols[0]:>14s} "
                      f"{cols[1]:>16s}")
    print("all within target" if not bad else f"{bad} figure(s) off by more than "
                                                 f"{TARGET:.0%} and not marked noisy")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
