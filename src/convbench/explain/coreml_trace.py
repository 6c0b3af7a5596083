"""A Core ML model's intermediate tensors, from convbench's interpreters: every ML Program op's
value (MIL) or every NeuralNetwork layer's (what no other tool reads on Linux)."""

from __future__ import annotations

import numpy as np

from convbench.explain.trace import MIN_WEIGHT_SIZE, Node, Trace, as_float, plain
from convbench.mil.errors import MilError

#: Weight fields of NeuralNetwork layers and the shape their flat values take.
NN_SHAPES = {
    ("convolution", "weights"): lambda p: (p.outputChannels, p.kernelChannels, *p.kernelSize),
    ("innerProduct", "weights"): lambda p: (p.outputChannels, p.inputChannels),
}


MIL_TYPES = {"fp32": "float32", "fp16": "float16", None: None}


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "") if dtype is not None else "other"


def _refs(v) -> list[str]:
    from convbench.mil.interpreter import Ref

    if isinstance(v, Ref):
        return [v.name]
    if isinstance(v, list):
        return [n for x in v for n in _refs(x)]
    return []


def trace_mil(interp, feed: dict, x: np.ndarray, layout: str) -> Trace:
    import torch

    nodes: list[Node] = []

    def tap(step, outs):
        weights, attrs, wtype = {}, {}, None
        for k, v in step.fixed.items():
            if v is None:
                continue
            if isinstance(v, torch.Tensor) and v.is_floating_point() and \
                    v.numel() >= MIN_WEIGHT_SIZE:
                weights[k] = v.float().numpy()
                wtype = wtype or MIL_TYPES.get(interp.const_types.get(step.consts.get(k)),
                                               "quantized")
            else:
                attrs[k] = plain(v)
        nodes.append(Node(step.name, step.op_type, [n for _, v in step.refs for n in _refs(v)],
                          step.outputs[0][0], as_float(outs[0]) if outs else None, weights,
                          attrs, _dtype_name(step.outputs[0][1]), wtype,
                          {k: step.consts[k] for k in weights if k in step.consts}))

    return _run(interp, feed, x, layout, nodes, tap, interp.input_names[0])


def _run(interp, feed, x, layout, nodes, tap, input_name) -> Trace:
    interp.tap = tap
    stopped = None
    try:
        interp.run(feed)
    except MilError as e:  # explained up to the op that failed
        stopped = f"the converted model stops: {str(e).splitlines()[0][:300]}"
    finally:
        interp.tap = None
    return Trace(nodes, input_name, x, layout, stopped)


def _repeated(fd) -> bool:
    return fd.is_repeated if hasattr(fd, "is_repeated") else fd.label == fd.LABEL_REPEATED


def _flatten(msg, kind: str = "", prefix: str = "", depth: int = 0
             ) -> tuple[dict, dict, str | None]:
    """A layer's parameters split into weights (WeightParams) and hyperparameters."""
    from convbench.nn.weights import weights as decode

    weights, attrs, wtype = {}, {}, None
    for fd, value in msg.ListFields():
        key = f"{prefix}{fd.name}"
        if fd.message_type is not None and fd.message_type.name == "WeightParams":
            if _repeated(fd):
                continue
            arr = decode(value).numpy()
            if arr.size >= MIN_WEIGHT_SIZE:
                shape = NN_SHAPES.get((kind, fd.name)) if depth == 0 else None
                weights[key] = arr.reshape(shape(msg)) if shape else arr
                wtype = wtype or ("float16" if len(value.float16Value) else
                                  "quantized" if len(value.rawValue) else "float32")
            else:
                attrs[key] = plain(arr)
        elif fd.message_type is not None and _repeated(fd):
            attrs[key] = [plain(v) for v in value]
        elif fd.message_type is not None:
            if depth < 3:
                w, a, t = _flatten(value, kind, f"{key}.", depth + 1)
                weights.update(w)
                attrs.update(a)
                wtype = wtype or t
                if not a and not w:
                    attrs[key] = True  # a oneof chosen without fields (ReLU, valid, ...)
        elif _repeated(fd):
            attrs[key] = [plain(v) for v in value]
        else:
            attrs[key] = plain(value)
    return weights, attrs, wtype


def trace_nn(interp, feed: dict, x: np.ndarray, layout: str) -> Trace:
    nodes: list[Node] = []

    def tap(layer, outs):
        kind = layer.WhichOneof("layer")
        weights, attrs, wtype = _flatten(getattr(layer, kind), kind)
        if not layer.output:  # a control layer (loop, branch) holds no value of its own
            return
        nodes.append(Node(layer.name, kind, list(layer.input), layer.output[0],
                          as_float(outs[0]) if outs else None, weights, attrs,
                          "float16" if interp.arith == "fp16" else "float32", wtype,
                          {k: f"{kind}.{k}" for k in weights}))

    return _run(interp, feed, x, layout, nodes, tap, interp.inputs[0])
