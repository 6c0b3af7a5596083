"""An ONNX graph's intermediate tensors: every node's output made a graph output and run in ONNX
Runtime (unoptimised, so every node of the file is what runs). A graph that fails part-way is
traced up to the last node that runs."""

from __future__ import annotations

import numpy as np

from convbench.explain.trace import MIN_WEIGHT_SIZE, Node, Trace, as_float, plain

FLOAT_TYPES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}
#: Ops whose outputs are integers whatever their inputs (when shape inference cannot say).
INT_OPS = {"Shape", "Size", "NonZero", "ArgMax", "ArgMin", "Range", "NonMaxSuppression"}


def _constants(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute:
            a = node.attribute[0]
            if a.name == "value":
                consts[node.output[0]] = numpy_helper.to_array(a.t)
            elif a.name in ("value_float", "value_int"):
                consts[node.output[0]] = np.asarray(a.f if a.name == "value_float" else a.i)
            elif a.name in ("value_floats", "value_ints"):
                consts[node.output[0]] = np.asarray(list(a.floats) or list(a.ints))
    return consts


def _input_names(op_type: str, domain: str, count: int) -> list[str]:
    import onnx

    try:
        schema = onnx.defs.get_schema(op_type, domain=domain or "")
        names = [i.name for i in schema.inputs]
    except Exception:
        names = []
    if names and len(names) < count:  # variadic: number the rest
        names += [f"{names[-1]}{i}" for i in range(count - len(names))]
    return [names[i] if i < len(names) else f"input{i}" for i in range(count)]


def _session(model, outputs: list[tuple[str, int]], threads: int | None):
    import onnx
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.value_info[:]  # shapes a modified graph no longer has
    del m.graph.output[:]
    m.graph.output.extend(onnx.helper.make_tensor_value_info(n, t, None) for n, t in outputs)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 4  # a failing prefix is expected while bisecting: not logged
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def trace_onnx(path: str, x: np.ndarray, threads: int | None = None) -> Trace:
    import onnx

    model = onnx.load(path)
    consts = _constants(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {v.name: v.type.tensor_type.elem_type for v in
                 list(inferred.graph.value_info) + list(inferred.graph.output)}
    except Exception:
        types = {}
    feeds = [i for i in model.graph.input if i.name not in consts]
    if len(feeds) != 1:
        from convbench.explain import ExplainError

        raise ExplainError(f"{path}: the graph takes {len(feeds)} inputs "
                           f"({', '.join(i.name for i in feeds)}); convbench feeds one")
    dim = feeds[0].type.tensor_type.shape.dim
    fixed = dim[0].dim_value if dim and dim[0].HasField("dim_value") else None
    feeds = [feeds[0].name]
    nodes = [n for n in model.graph.node if n.op_type != "Constant"]
    wanted = [(o, types.get(o, 1)) for n in nodes for o in n.output[:1] if o
              and types.get(o, 1) in FLOAT_TYPES and (o in types or n.op_type not in INT_OPS)]
    stopped, ran = None, len(nodes)
    try:
        values = _run(_session(model, wanted, threads), [o for o, _ in wanted], feeds[0], x,
                      fixed) if wanted else {}
    except Exception as e:
        values, ran, stopped = _longest_prefix(model, nodes, wanted, feeds[0], x, threads, e)
    out = []
    for node in nodes[:ran]:
        names = _input_names(node.op_type, node.domain, len(node.input))
        weights, sources, attrs = {}, {}, {a.name: plain(onnx.helper.get_attribute_value(a))
                              for a in node.attribute}
        for role, name in zip(names, node.input):
            if name in consts:
                c = consts[name]
                if c.size >= MIN_WEIGHT_SIZE and np.issubdtype(c.dtype, np.floating):
                    weights[role] = c.astype(np.float32)
                    sources[role] = name
                else:
                    attrs[role] = plain(c)
        out.append(Node(node.name or node.output[0], node.op_type,
                        [i for i in node.input if i and i not in consts], node.output[0],
                        as_float(values.get(node.output[0])), weights, attrs,
                        FLOAT_TYPES.get(types.get(node.output[0], 1), "other"),
                        next((str(consts[i].dtype) for i in node.input if i in consts and
                              consts[i].size >= MIN_WEIGHT_SIZE), None), sources))
    return Trace(out, feeds[0], x, layout="nchw", stopped=stopped)


def _run(session, names: list[str], feed: str, x: np.ndarray, fixed: int | None) -> dict:
    """Every wanted output on `x`; a graph with a fixed batch runs in batches of it (the last
    padded with its own last row), outputs with that batch first joined, others as first run."""
    if not fixed or len(x) == fixed:
        return dict(zip(names, session.run(names, {feed: x})))
    parts = []
    for i in range(0, len(x), fixed):
        part = x[i:i + fixed]
        if len(part) < fixed:
            part = np.concatenate([part, np.repeat(part[-1:], fixed - len(part), 0)])
        parts.append(session.run(names, {feed: part}))
    out = {}
    for k, name in enumerate(names):
        vals = [p[k] for p in parts]
        batched = all(np.ndim(v) and len(v) == fixed for v in vals)
        out[name] = np.concatenate(vals)[:len(x)] if batched else vals[0]
    return out


def _longest_prefix(model, nodes, wanted, feed, x, threads, error):
    """The values of the longest run of first nodes that executes, its length, and what stopped
    the next node."""
    order = {n.output[0]: i for i, n in enumerate(nodes) if n.output}
    lo, hi, best = 0, len(nodes), {}
    while lo < hi:  # bisect on how many nodes run
        mid = (lo + hi + 1) // 2
        keep = [(o, t) for o, t in wanted if order.get(o, len(nodes)) < mid]
        sub = _prefix_model(model, nodes[:mid], keep)
        try:
            vals = _run(_session(sub, keep, threads), [o for o, _ in keep], feed, x,
                        _fixed_batch(model)) if keep else {}
            lo, best = mid, vals
        except Exception:
            hi = mid - 1
    failing = nodes[lo] if lo < len(nodes) else None
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    where = f"{failing.op_type} {failing.name or failing.output[0]!r}" if failing else "the graph"
    return best, lo, f"the converted graph stops at {where}: {first}"


def _fixed_batch(model) -> int | None:
    dim = model.graph.input[0].type.tensor_type.shape.dim
    return dim[0].dim_value if dim and dim[0].HasField("dim_value") else None


def _prefix_model(model, prefix, keep):
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    constants = [n for n in model.graph.node if n.op_type == "Constant"]
    del m.graph.node[:]
    m.graph.node.extend(constants + list(prefix))
    return m
