"""convbench's Core ML interpreter vs ONNX Runtime on the same weights, over a model set.

Models: LeNet-5, ResNet-18, VGG-16, LSTM and GRU of the zoo (PyTorch, untrained, seeded), and
keras.applications MobileNetV3Small, EfficientNetB0 and DenseNet121 (32x32, weights=None).
Each is exported to ONNX and converted to an FP32 and an FP16 ML Program. At batch 32 and 1 the
three run the same inputs in alternating blocks, with a pause after each block (ORT's worker
threads spin after a run and would slow whatever runs next); the medians per run give the
ratios interpreter / ORT and FP16 / FP32 program. Load: the engine's load (plan, compile) of
the package against coremltools' own `MLModel` load of its spec, medians of 3.

Targets (issue 13): batch 32 <= 1.5x ORT on every model but LeNet-5, geometric mean <= 1.3x;
batch 1 <= 3x on every model of >= 10 MFLOPs per sample, LeNet-5 <= 5x; FP16 <= 1.3x FP32;
load <= 2x coremltools'.

    python bench/coreml_interpreter.py [--models resnet18,densenet121] [--engine interpreter]
        [--repeats 5] [--workdir DIR]   # DIR keeps the converted files between runs
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import numpy as np

ZOO_TORCH = {"lenet5": (1, 28, 28), "resnet18": (3, 32, 32), "vgg16": (3, 32, 32),
             "lstm": (200,), "gru": (200,)}
KERAS_APPS = ("MobileNetV3Small", "EfficientNetB0", "DenseNet121")
VOCAB = 10000
BATCHES = (32, 1)


def _torch_source(model: str, work: Path):
    import torch

    from convbench.models import build
    from convbench.records import Artifact

    shape = ZOO_TORCH[model]
    text = len(shape) == 1
    path = work / f"{model}.pt"
    arch = {"model": model, "input_shape": list(shape), "num_classes": 10, "options": {}}
    if text:
        arch["vocab"] = VOCAB
    if not path.exists():
        torch.manual_seed(0)
        net = build("torch", model, shape, 10, vocab=VOCAB if text else None)
        torch.save(net.state_dict(), path)
    meta = {"architecture": arch, "input_shape": list(shape), "layout": "nchw"}
    if text:
        meta.update(input_dtype="int64")
    return Artifact.from_path("torch", path, **meta), shape, text


def _keras_source(name: str, work: Path):
    from convbench.records import Artifact

    path = work / f"{name}.keras"
    if not path.exists():
        import keras

        keras.utils.set_random_seed(0)
        getattr(keras.applications, name)(input_shape=(32, 32, 3), weights=None,
                                          classes=10).save(path)
    return Artifact.from_path("keras", path, input_shape=[32, 32, 3], layout="nhwc"), \
        (32, 32, 3), False


def _convert(src, work: Path) -> dict:
    from convbench.convert import convert

    out = {}
    for target, key in (("onnx", "onnx"), ("coreml-fp32", "fp32"), ("coreml", "fp16")):
        opts = {"exporter": "torchscript"} if target == "onnx" and src.format == "torch" else {}
        conv = convert(src, target, work, **opts)
        if not conv.ok:
            raise SystemExit(f"{src.path} -> {target}: {conv.message}")
        out[key] = conv.artifact
    return out


def _inputs(shape, text: bool, batch: int, rng) -> np.ndarray:
    if text:
        return rng.integers(1, VOCAB, (batch, *shape)).astype(np.int64)
    return rng.random((batch, *shape), dtype=np.float32)


def _times(fn, x, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - t0)
    time.sleep(0.1)  # let ORT's spinning worker threads go idle before the next side runs
    return out


def _mflops(artifact, x) -> float:
    """Multiply-adds x 2 per sample of the conv, linear and matmul ops of an image model,
    counted on one run of the interpreter at batch 1."""
    from convbench.mil import Interpreter
    from convbench.mil.program import load_program

    interp = Interpreter(load_program(artifact.path))
    total = [0.0]

    def count(step, outs):
        w, y = step.fixed.get("weight"), outs[0]
        if step.op_type in ("conv", "conv_transpose") and w is not None:
            total[0] += 2 * y.numel() * w[0].numel()
        elif step.op_type == "linear" and w is not None:
            total[0] += 2 * y.numel() * w.shape[-1]
        elif step.op_type == "matmul" and step.fixed.get("y") is not None:
            inner = step.fixed["y"].shape[-1 if step.fixed.get("transpose_y") else -2]
            total[0] += 2 * y.numel() * int(inner)

    interp.tap = count
    interp.run({interp.input_names[0]: x[:1]})
    return total[0] / 1e6


def _load_times(art, engine: str, n: int = 3) -> tuple[float, float]:
    """Median seconds: the engine's load of the package, coremltools' MLModel load of it."""
    from convbench.coreml_import import coremltools
    from convbench.runtimes import open_runner

    ct = coremltools()
    ours, theirs = [], []
    for _ in range(n):
        runner = open_runner(art, engine=engine)
        ours.append(runner.load() / 1e9)  # the engine's load alone (coremltools imported)
        runner.close()
        t0 = time.perf_counter()
        ct.models.MLModel(str(art.path), skip_model_load=True)
        theirs.append(time.perf_counter() - t0)
    return statistics.median(ours), statistics.median(theirs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join([*ZOO_TORCH, *KERAS_APPS]).lower(),
                    help="comma-separated; default: the whole set")
    ap.add_argument("--engine", default="compiled", help="the Core ML engine to measure")
    ap.add_argument("--also", default="", help="another engine whose FP32 time to add as a "
                    "column (e.g. interpreter)")
    ap.add_argument("--repeats", type=int, default=5, help="blocks per side")
    ap.add_argument("--workdir", default=None, help="keep the models and conversions here")
    args = ap.parse_args()
    import tempfile

    from convbench.runtimes import open_runner

    work = Path(args.workdir or tempfile.mkdtemp(prefix="cb-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    names = {n.lower(): n for n in (*ZOO_TORCH, *KERAS_APPS)}
    rng = np.random.default_rng(0)
    rows = []
    print(f"{'model':17s} {'batch':>5s} {'MFLOP':>7s} {'ORT ms':>8s} {'FP32 ms':>8s} "
          f"{'FP16 ms':>8s} {'FP32/ORT':>8s} {'FP16/FP32':>9s}", flush=True)
    for key in args.models.split(","):
        name = names[key.strip().lower()]
        src, shape, text = (_torch_source(name, work) if name in ZOO_TORCH
                            else _keras_source(name, work))
        arts = _convert(src, work)
        mflop = None
        sides = {"ort": open_runner(arts["onnx"]),
                 "fp32": open_runner(arts["fp32"], engine=args.engine),
                 "fp16": open_runner(arts["fp16"], engine=args.engine)}
        if args.also:
            sides["also"] = open_runner(arts["fp32"], engine=args.also)
        for r in sides.values():
            r.load()
        ort, f32 = sides["ort"], sides["fp32"]
        try:
            for batch in BATCHES:
                x = _inputs(shape, text, batch, rng)
                ref = ort.infer(x)
                got = f32.infer(x)
                rel = np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12)
                assert rel < 1e-4, f"{name}: FP32 program departs from ORT by {rel:.2e}"
                if mflop is None and not text:
                    mflop = _mflops(arts["fp32"], x)
                slowest = 0.0
                for _ in range(3):  # warm-up
                    for r in sides.values():
                        t0 = time.perf_counter()
                        r.infer(x)
                        slowest = max(slowest, time.perf_counter() - t0)
                block = max(1, min(30, int(0.25 / slowest)))  # blocks of about 0.25 s
                t = {k: [] for k in sides}
                for _ in range(args.repeats):  # alternate blocks, so drift hits all alike
                    for k, r in sides.items():
                        t[k] += _times(r.infer, x, block)
                m = {k: statistics.median(v) * 1e3 for k, v in t.items()}
                rows.append((name, batch, mflop, m))
                also = (f" {args.also} FP32 {m['also']:.2f} ms ({m['also'] / m['ort']:.2f}x)"
                        if "also" in m else "")
                print(f"{name:17s} {batch:5d} {mflop or float('nan'):7.1f} {m['ort']:8.2f} "
                      f"{m['fp32']:8.2f} {m['fp16']:8.2f} {m['fp32'] / m['ort']:8.2f} "
                      f"{m['fp16'] / m['fp32']:9.2f}{also}", flush=True)
        finally:
            for r in sides.values():
                r.close()
        ours, theirs = _load_times(arts["fp32"], args.engine)
        print(f"{name:17s} load {ours * 1e3:.0f} ms vs coremltools {theirs * 1e3:.0f} ms "
              f"({ours / theirs:.2f}x)", flush=True)
    _verdict(rows)


def _verdict(rows) -> None:
    b32 = [(n, m["fp32"] / m["ort"]) for n, b, _, m in rows if b == 32]
    rest = [r for n, r in b32 if n != "lenet5"]
    if rest:
        geo = math.exp(sum(math.log(r) for r in rest) / len(rest))
        print(f"batch 32, all but LeNet-5: worst {max(rest):.2f}x (target <= 1.5), geometric "
              f"mean {geo:.2f}x (target <= 1.3)")
    b1 = [(n, f, m["fp32"] / m["ort"]) for n, b, f, m in rows if b == 1]
    for n, f, r in b1:
        target = 5.0 if n == "lenet5" else (3.0 if f is None or f >= 10 else None)
        if target:
            print(f"batch 1 {n}: {r:.2f}x (target <= {target:g})")
    fp16 = [m["fp16"] / m["fp32"] for *_, m in rows]
    if fp16:
        print(f"FP16 / FP32 program: worst {max(fp16):.2f}x (target <= 1.3)")


if __name__ == "__main__":
    main()
