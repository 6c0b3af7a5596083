"""An OpenVINO IR's intermediate tensors: every op's output added as a model output and run
on the CPU plugin at the precision the cell asks for (f32 unless told)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convbench.explain.trace import MIN_WEIGHT_SIZE, Node, Trace, as_float, plain

SKIP = {"Parameter", "Result", "Constant"}


def _constant(node):
    """The value of a constant input (a Constant, or a Convert of one: fp16 weights kept
    compressed) and the type it is stored in; None for a computed input."""
    kind = node.get_type_name()
    if kind == "Constant":
        data = node.get_data()
        return np.asarray(data), str(np.asarray(data).dtype)
    if kind == "Convert" and node.input_value(0).get_node().get_type_name() == "Constant":
        stored = np.asarray(node.input_value(0).get_node().get_data())
        return stored.astype(np.float32), str(stored.dtype)
    return None


def trace_openvino(path: str, x: np.ndarray, precision: str = "f32",
                   threads: int | None = None) -> Trace:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(Path(path) / "model.xml"))
    ops = [op for op in model.get_ordered_ops() if op.get_type_name() not in SKIP
           and _constant(op) is None]
    marked = [op for op in ops if op.get_output_size() and
              op.output(0).get_element_type().is_real()]
    model.add_outputs([op.output(0) for op in marked])
    config = {"INFERENCE_PRECISION_HINT": precision}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    x = x.astype(compiled.input(0).get_element_type().to_dtype(), copy=False)
    results = request.infer({0: x})
    values = {}
    for port, out in zip(model.outputs, compiled.outputs):
        src = port.get_node().input_value(0).get_node()
        values.setdefault(src.get_friendly_name(), results[out])
    param = model.get_parameters()[0].get_friendly_name()
    nodes = []
    for op in ops:
        weights, attrs, reads, wtype = {}, {}, [], None
        for i in range(op.get_input_size()):
            src = op.input_value(i).get_node()
            const = _constant(src)
            if const is None:
                reads.append("input" if src.get_friendly_name() == param
                             else src.get_friendly_name())
            elif const[0].size >= MIN_WEIGHT_SIZE and np.issubdtype(const[0].dtype, np.floating):
                weights[f"in{i}"] = const[0].astype(np.float32)
                wtype = wtype or {"float16": "float16"}.get(const[1], "float32")
            else:
                attrs[f"in{i}"] = plain(const[0])
        for k, v in op.get_attributes().items():
            attrs[k] = plain(v) if not hasattr(v, "to_string") else v.to_string()
        name = op.get_friendly_name()
        out_type = op.output(0).get_element_type() if op.get_output_size() else None
        nodes.append(Node(name, op.get_type_name(), reads, name, as_float(values.get(name)),
                          weights, attrs,
                          "float16" if out_type is not None and out_type.to_string() == "f16"
                          else "float32", wtype))
    return Trace(nodes, "input", x)
