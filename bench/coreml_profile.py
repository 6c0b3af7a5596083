"""Where the Core ML interpreter's time goes, op kind by op kind.

For one ML Program and batch size: each op's time inside a run of the interpreter (between one
op's end and the next's, so dispatch is counted), against the same op implementation called
directly on the same, already resolved arguments (the kernel and the op's own argument
handling), summed by op kind; medians over `--runs`.

    python bench/coreml_profile.py MODEL.mlpackage [--batch 32] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    import torch

    from convbench.mil import Interpreter, load_program

    interp = Interpreter(load_program(args.model))
    name = interp.input_names[0]
    spec_shape = _input_shape(args.model)
    x = np.random.default_rng(0).random((args.batch, *spec_shape[1:]), dtype=np.float32)
    inside: dict[str, list[float]] = defaultdict(list)
    last = [0.0]

    def tap(step, outs):
        now = time.perf_counter()
        inside[id(step)].append(now - last[0])
        last[0] = now

    interp.tap = tap
    walls = []
    for _ in range(args.runs + 1):
        last[0] = t0 = time.perf_counter()
        interp.run({name: x})
        walls.append(time.perf_counter() - t0)
    # resolved arguments of each step, from one more run that keeps every value
    env_values = {}
    interp.tap = lambda step, outs: env_values.update(
        {n: v for (n, _), v in zip(step.outputs, outs)})
    interp.run({name: x})
    interp.tap = None
    env = {name: torch.from_numpy(x), **env_values}
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    with torch.inference_mode():
        for step in interp.block.steps:
            med_in = statistics.median(inside[id(step)][1:]) if len(inside[id(step)]) > 1 \
                else inside[id(step)][0]
            direct = float("nan")
            if not step.control:
                kw = step.fixed.copy()
                for k, v in step.refs:
                    kw[k] = interp._resolve(v, env, not step.as_stored)
                ts = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    step.fn(**kw)
                    ts.append(time.perf_counter() - t0)
                direct = statistics.median(ts)
            row = by_kind[step.op_type]
            row[0] += 1
            row[1] += med_in
            row[2] += direct
    total = statistics.median(walls[1:])
    print(f"{args.model} batch {args.batch}: run {total * 1e3:.2f} ms, "
          f"{len(interp.block.steps)} ops")
    print(f"{'op':24s} {'n':>4s} {'in run ms':>10s} {'direct ms':>10s} {'dispatch ms':>11s}")
    for kind, (n, a, d) in sorted(by_kind.items(), key=lambda kv: -kv[1][1]):
        print(f"{kind:24s} {n:4d} {a * 1e3:10.3f} {d * 1e3:10.3f} {(a - d) * 1e3:11.3f}")


def _input_shape(path) -> list[int]:
    from convbench.mil.program import load_spec

    array = load_spec(path).description.input[0].type.multiArrayType
    return [int(d) for d in array.shape]


if __name__ == "__main__":
    main()
