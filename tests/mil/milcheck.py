"""Helpers for MIL op conformance: one-op programs run on convbench's interpreter, and
coremltools' own value inference of the same op on constant inputs (the oracle)."""

from __future__ import annotations

import numpy as np


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


def _spec(v: np.ndarray):
    from coremltools.converters.mil.mil import types

    mb = _mb()
    dtype = {np.float32: types.fp32, np.float16: types.fp16, np.int32: types.int32,
             np.int8: types.int8, np.uint8: types.uint8,
             np.bool_: types.bool}[v.dtype.type]
    return mb.TensorSpec(shape=v.shape, dtype=dtype)


def build(op: str, tensors: dict[str, np.ndarray], params: dict, opset=None):
    """A program whose `tensors` are inputs (named x, y, ...) and whose output is `op`."""
    import coremltools as ct

    mb = _mb()
    names = list(tensors)
    specs = [_spec(tensors[n]) for n in names]
    opset = opset or ct.target.iOS17
    src = f"def body({', '.join(names)}):\n    return make({', '.join(names)})\n"

    def make(*args):
        return getattr(mb, op)(**dict(zip(names, args)), **params)

    scope = {"make": make}
    exec(src, scope)  # the builder names program inputs after the function's parameters
    return mb.program(input_specs=specs, opset_version=opset)(scope["body"])


def run(op: str, tensors: dict[str, np.ndarray], params: dict | None = None, opset=None,
        arith: str = "fp32") -> list[np.ndarray]:
    from convbench.mil import Interpreter

    prog = build(op, tensors, params or {}, opset)
    return Interpreter(prog, arith=arith).run(tensors)


def inferred(op: str, values: dict, opset=None):
    """coremltools' value inference of `op` on constant inputs (None when it has none)."""
    import coremltools as ct

    mb = _mb()
    out = []

    @mb.program(input_specs=[mb.TensorSpec(shape=(1,))], opset_version=opset or ct.target.iOS17)
    def prog(d):
        r = getattr(mb, op)(**{k: v.copy() if isinstance(v, np.ndarray) else v
                               for k, v in values.items()})
        out.append(r)
        return d

    r = out[0]
    vars_ = r if isinstance(r, (list, tuple)) else [r]
    vals = []
    for i, v in enumerate(vars_):
        val = v.val
        if val is None and hasattr(v.op, "materialized_val_inference"):
            val = v.op.materialized_val_inference()
            val = val[i] if isinstance(val, tuple) else val  # one value per output
        vals.append(None if val is None else np.asarray(val))
    return vals
