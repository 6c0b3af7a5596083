"""A LiteRT flatbuffer's intermediate tensors: the interpreter keeps them all
(`experimental_preserve_all_tensors`); quantised ones are read back as real values."""

from __future__ import annotations

import numpy as np

from convbench.explain.trace import MIN_WEIGHT_SIZE, Node, Trace, as_float


def _real(value: np.ndarray, detail: dict) -> np.ndarray:
    """An int8/uint8 tensor's real values (its scale and zero point, per channel along its
    quantised axis when it has several); a float one as it is."""
    q = detail.get("quantization_parameters") or {}
    scales = np.asarray(q.get("scales", []), np.float32)
    if not np.issubdtype(value.dtype, np.integer) or not scales.size:
        return value
    zeros = np.asarray(q.get("zero_points", np.zeros_like(scales)), np.float32)
    if scales.size > 1:  # per channel
        shape = [1] * value.ndim
        shape[int(q.get("quantized_dimension", 0))] = -1
        scales, zeros = scales.reshape(shape), zeros.reshape(shape)
    return (value.astype(np.float32) - zeros) * scales


def trace_litert(path: str, x: np.ndarray, threads: int | None = None) -> Trace:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path, num_threads=threads,
                         experimental_preserve_all_tensors=True)
    inp = interp.get_input_details()[0]
    fixed = None if int(inp["shape_signature"][0]) == -1 else int(inp["shape"][0])
    ops = interp._get_ops_details()
    produced = {t for op in ops for t in op["outputs"]}
    details = {t["index"]: t for t in interp.get_tensor_details()}
    step = fixed or len(x)
    if fixed is None:
        interp.resize_tensor_input(inp["index"], [len(x), *x.shape[1:]])
    interp.allocate_tensors()
    runs = []
    for i in range(0, len(x), step):  # a fixed batch: its batches, the last padded
        part = x[i:i + step]
        if len(part) < step:
            part = np.concatenate([part, np.repeat(part[-1:], step - len(part), 0)])
        interp.set_tensor(inp["index"], np.ascontiguousarray(part, dtype=inp["dtype"]))
        interp.invoke()
        runs.append({op["outputs"][0]: interp.get_tensor(op["outputs"][0]) for op in ops
                     if op["outputs"]})
    # weights stored fp16 (or int8) and dequantised by an op of their own are weights still
    dequantised = {op["outputs"][0]: op["inputs"][0] for op in ops
                   if op["op_name"] == "DEQUANTIZE" and op["inputs"][0] not in produced
                   and op["inputs"][0] != inp["index"]}
    nodes, names = [], {inp["index"]: "input"}
    for op in ops:
        if not op["outputs"] or op["outputs"][0] in dequantised:
            continue
        out = op["outputs"][0]
        names[out] = details[out]["name"] or f"tensor{out}"
        vals = [r[out] for r in runs]
        value = np.concatenate(vals)[:len(x)] if all(np.ndim(v) and len(v) == step
                                                     for v in vals) else vals[0]
        weights, reads, wtype = {}, [], None
        for k, t in enumerate(op["inputs"]):
            if t < 0:
                continue
            if (t in produced and t not in dequantised) or t == inp["index"]:
                reads.append(names.get(t, f"tensor{t}"))
                continue
            stored = t if t not in dequantised else dequantised[t]
            const = interp.get_tensor(stored)
            if const.size >= MIN_WEIGHT_SIZE:
                weights[f"in{k}"] = np.asarray(_real(const, details[stored]), np.float32)
                wtype = wtype or ("quantized" if np.issubdtype(const.dtype, np.integer)
                                  else str(const.dtype))
        quantized = np.issubdtype(value.dtype, np.integer)
        nodes.append(Node(names[out], op["op_name"], reads, names[out],
                          as_float(_real(value, details[out])), weights, {},
                          "quantized" if quantized else str(value.dtype), wtype))
    return Trace(nodes, "input", x, layout="nhwc")
