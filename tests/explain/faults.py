"""Known faults injected into real converted files (ONNX graphs and ML Programs), one per copy.

Each `Fault` names the op that is responsible in the faulty file and the fault kind convbench
should give: weights (a tensor perturbed, a batch norm folded with another epsilon counts as a
hyperparameter), hyperparameter (padding, stride, activation, pooling mode), graph (a transpose
inserted or dropped) and input (the input scaled or its layout changed before the first layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convbench.explain.match import relate
from convbench.explain.trace import Trace

RNG_SEED = 7


@dataclass
class Fault:
    case: str
    kind: str  # the fault kind convbench should report
    op: str  # the op responsible in the faulty file
    path: str


def _noise(w: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (w + 0.5 * w.std() * rng.standard_normal(w.shape)).astype(w.dtype)


def _folded_bn(w: np.ndarray, orig: Trace):
    """The original batch norm folded into a converted weight `w`, with the fold's scale."""
    nodes = orig.nodes
    for i, n in enumerate(nodes):
        if not n.weights:
            continue
        main = max(n.weights.values(), key=lambda v: v.size)
        if main.size != w.size:
            continue
        r = relate(w, main)
        if r is None or r.kind != "folded":
            continue
        bn = next((m for m in nodes[i + 1:i + 3] if "batchnorm" in m.kind.lower()), None)
        if bn is None:
            continue
        g = bn.weights.get("weight", bn.weights.get("gamma"))
        v = bn.weights.get("running_var", bn.weights.get("moving_variance"))
        beta = bn.weights.get("bias", bn.weights.get("beta"))
        eps = float(bn.attrs.get("epsilon", 1e-5))
        return g, v, beta, eps, r.axis
    return None


def _refold(w, b, orig: Trace):
    """`w` and bias `b` folded again with the batch norm's epsilon made 1000 times larger."""
    found = _folded_bn(w, orig)
    if found is None:
        return None
    g, v, beta, eps, axis = found
    ratio = np.sqrt(v + eps) / np.sqrt(v + eps * 1000)
    shape = [1] * w.ndim
    shape[axis] = -1
    return (w * ratio.reshape(shape)).astype(w.dtype), \
        (beta + (b - beta) * ratio).astype(b.dtype)


# -- ONNX -------------------------------------------------------------------------------------
def onnx_faults(path: str, out: Path, orig: Trace, layout: str) -> list[Fault]:
    import onnx
    from onnx import helper, numpy_helper

    base = onnx.load(path)
    faults: list[Fault] = []
    out.mkdir(parents=True, exist_ok=True)

    def variant(case: str, kind: str, edit) -> None:
        m = onnx.ModelProto()
        m.CopyFrom(base)
        op = edit(m)
        if op is None:
            return
        p = out / f"{len(faults):02d}-{case.replace(' ', '_')}.onnx"
        onnx.save(m, str(p))
        faults.append(Fault(f"onnx {case}", kind, op, str(p)))

    def inits(m):
        return {t.name: t for t in m.graph.initializer}

    def nodes_of(m, *types):
        return [n for n in m.graph.node if n.op_type in types]

    def set_init(m, name, arr):
        t = inits(m)[name]
        t.CopyFrom(numpy_helper.from_array(arr, name))

    def perturb(kind_types, which):
        def edit(m):
            cands = [n for n in nodes_of(m, *kind_types) if n.input[1] in inits(m)]
            if len(cands) <= which:
                return None
            n = cands[which]
            set_init(m, n.input[1], _noise(numpy_helper.to_array(inits(m)[n.input[1]]),
                                           RNG_SEED + which))
            return n.name
        return edit

    variant("weights first conv", "weights", perturb(("Conv",), 0))
    variant("weights second conv", "weights", perturb(("Conv",), 1))
    variant("weights dense", "weights", perturb(("Gemm", "MatMul"), 0))

    def attr(n, name):
        return next((a for a in n.attribute if a.name == name), None)

    def pad_shift(m):
        for n in nodes_of(m, "Conv"):
            a = attr(n, "pads")
            if a is not None and min(a.ints) >= 1:
                h, w = a.ints[0], a.ints[1]
                a.ints[:] = [h - 1, w - 1, a.ints[2] + 1, a.ints[3] + 1]
                return n.name
        return None

    def stride(m):
        for n in nodes_of(m, "Conv")[1:]:
            a = attr(n, "strides")
            if a is not None and list(a.ints) == [1, 1]:
                a.ints[:] = [2, 2]
                return n.name
        return None

    variant("padding", "hyperparameter", pad_shift)
    variant("stride", "hyperparameter", stride)

    def epsilon(m):
        for n in nodes_of(m, "Conv"):
            if len(n.input) < 3 or n.input[1] not in inits(m) or n.input[2] not in inits(m):
                continue
            w = numpy_helper.to_array(inits(m)[n.input[1]])
            b = numpy_helper.to_array(inits(m)[n.input[2]])
            again = _refold(w, b, orig)
            if again is not None:
                set_init(m, n.input[1], again[0])
                set_init(m, n.input[2], again[1])
                return n.name
        return None

    variant("batch norm epsilon", "hyperparameter", epsilon)

    def activation(m):
        relus = nodes_of(m, "Relu")
        if not relus:
            return None
        n = relus[len(relus) // 2]
        n.op_type = "Sigmoid"
        return n.name

    def pool(m):
        pools = nodes_of(m, "MaxPool")
        if not pools:
            return None
        n = pools[0]
        n.op_type = "AveragePool"
        keep = [a for a in n.attribute if a.name not in ("storage_order", "dilations")]
        del n.attribute[:]
        n.attribute.extend(keep)
        return n.name

    variant("activation swapped", "hyperparameter", activation)
    variant("pooling mode", "hyperparameter", pool)

    def insert_after(m, tensor: str, node) -> None:
        """Put `node` (reading `tensor`) after its producer; its consumers read the new output."""
        new_out = node.output[0]
        for n in m.graph.node:
            n.input[:] = [new_out if i == tensor else i for i in n.input]
        for o in m.graph.output:
            if o.name == tensor:
                o.name = new_out
        node.input[0] = tensor
        order = list(m.graph.node)
        at = next((k + 1 for k, n in enumerate(order) if tensor in n.output), 0)
        order.insert(at, node)
        del m.graph.node[:]
        m.graph.node.extend(order)

    def square_relu(m):  # the zoo's image models keep square maps: a transpose keeps shapes
        relus = nodes_of(m, "Relu")
        n = relus[len(relus) // 3]
        t = helper.make_node("Transpose", [n.output[0]], ["injected_transpose:0"],
                             name="injected_transpose", perm=[0, 1, 3, 2])
        insert_after(m, n.output[0], t)
        return "injected_transpose"

    variant("transpose inserted", "graph", square_relu)

    def drop_transpose(m):
        graph_in = m.graph.input[0].name
        for t in nodes_of(m, "Transpose"):
            if t.input[0] == graph_in:
                continue
            consumers = [n for n in m.graph.node if t.output[0] in n.input]
            if not any(n.op_type == "Reshape" for n in consumers):
                continue
            for n in m.graph.node:
                n.input[:] = [t.input[0] if i == t.output[0] else i for i in n.input]
            m.graph.node.remove(t)
            return next(n.name for n in consumers if n.op_type == "Reshape")
        return None

    variant("transpose dropped", "graph", drop_transpose)

    def input_op(node_type: str, **kw):
        def edit(m):
            x = m.graph.input[0].name
            if node_type == "Mul":
                c = numpy_helper.from_array(np.asarray(255.0, np.float32), "injected_255")
                m.graph.initializer.append(c)
                node = helper.make_node("Mul", [x, "injected_255"], ["injected_input:0"],
                                        name="injected_input")
            else:
                node = helper.make_node("Transpose", [x], ["injected_input:0"],
                                        name="injected_input", **kw)
            for n in m.graph.node:
                n.input[:] = ["injected_input:0" if i == x else i for i in n.input]
            m.graph.node.insert(0, node)
            return "injected_input"
        return edit

    variant("input scaling", "input", input_op("Mul"))
    variant("input layout", "input", input_op(
        "Transpose", perm=[0, 2, 1, 3] if layout == "nhwc" else [0, 1, 3, 2]))
    return faults


# -- ML Program ---------------------------------------------------------------------------------
def mil_faults(path: str, out: Path, orig: Trace, layout: str) -> list[Fault]:
    from convbench.coreml_import import coremltools
    from convbench.mil import load_program

    ct = coremltools()
    from coremltools.converters.mil import Builder as mb

    faults: list[Fault] = []
    out.mkdir(parents=True, exist_ok=True)

    def variant(case: str, kind: str, edit) -> None:
        prog = load_program(path)
        block = prog.functions["main"]
        with block:
            op = edit(block)
        if op is None:
            return
        model = ct.convert(prog, convert_to="mlprogram", pass_pipeline=ct.PassPipeline.EMPTY,
                           compute_precision=ct.precision.FLOAT32,
                           minimum_deployment_target=ct.target.iOS15)
        p = out / f"{len(faults):02d}-{case.replace(' ', '_')}.mlpackage"
        model.save(str(p))
        faults.append(Fault(f"mlprogram {case}", kind, op, str(p)))

    def ops(block, *types):
        return [op for op in block.operations if op.op_type in types]

    def replace_const(block, op, key, value):
        new = mb.const(val=value, before_op=op, name=f"injected_{key}_{op.name}")
        op.set_inputs(**{key: new})

    def perturb(types, which):
        def edit(block):
            cands = [op for op in ops(block, *types) if op.weight.val is not None]
            if len(cands) <= which:
                return None
            op = cands[which]
            replace_const(block, op, "weight", _noise(op.weight.val, RNG_SEED + which))
            return op.name
        return edit

    variant("weights first conv", "weights", perturb(("conv",), 0))
    variant("weights second conv", "weights", perturb(("conv",), 1))
    variant("weights dense", "weights", perturb(("linear",), 0))

    def pad_shift(block):
        for op in ops(block, "conv"):
            pad = op.pad.val if op.pad is not None else None
            if op.pad_type.val == "custom" and pad is not None and min(pad) >= 1:
                replace_const(block, op, "pad", np.asarray(
                    [pad[0] - 1, pad[1] + 1, pad[2] - 1, pad[3] + 1], np.int32))
                return op.name
        return None

    variant("padding", "hyperparameter", pad_shift)

    def epsilon(block):
        for op in ops(block, "conv"):
            if op.bias is None or op.weight.val is None:
                continue
            again = _refold(op.weight.val, op.bias.val, orig)
            if again is not None:
                replace_const(block, op, "weight", again[0])
                replace_const(block, op, "bias", again[1])
                return op.name
        return None

    variant("batch norm epsilon", "hyperparameter", epsilon)

    def swap(block, op, make, name):
        new = make(before_op=op, name=name)
        block.replace_uses_of_var_after_op(anchor_op=op, old_var=op.outputs[0], new_var=new)
        block.remove_ops([op])
        return name

    def activation(block):
        relus = ops(block, "relu")
        if not relus:
            return None
        op = relus[len(relus) // 2]
        return swap(block, op, lambda **kw: mb.sigmoid(x=op.x, **kw), "injected_sigmoid")

    def pool(block):
        pools = ops(block, "max_pool")
        if not pools:
            return None
        op = pools[0]
        return swap(block, op, lambda **kw: mb.avg_pool(
            x=op.x, kernel_sizes=op.kernel_sizes, strides=op.strides, pad_type=op.pad_type,
            pad=op.pad, ceil_mode=op.ceil_mode, **kw), "injected_avg_pool")

    variant("activation swapped", "hyperparameter", activation)
    variant("pooling mode", "hyperparameter", pool)

    def after(block, var, make, name):
        order = list(block.operations)
        at = order.index(var.op) + 1 if var.op is not None else 0
        new = make(before_op=order[at], name=name)
        block.replace_uses_of_var_after_op(anchor_op=new.op, old_var=var, new_var=new)
        return name

    def transpose_inserted(block):
        relus = ops(block, "relu")
        op = relus[len(relus) // 3]
        return after(block, op.outputs[0], lambda **kw: mb.transpose(
            x=op.outputs[0], perm=[0, 1, 3, 2], **kw), "injected_transpose")

    variant("transpose inserted", "graph", transpose_inserted)

    def transpose_dropped(block):
        inputs = set(block.inputs.values())
        for t in ops(block, "transpose"):
            if t.x in inputs:
                continue
            consumer = t.outputs[0].child_ops[0]
            if consumer.op_type != "reshape":  # a flatten after it: shapes hold, order breaks
                continue
            block.replace_uses_of_var_after_op(anchor_op=t, old_var=t.outputs[0], new_var=t.x,
                                               no_check_var_types=True)
            block.remove_ops([t])
            return consumer.name
        return None

    variant("transpose dropped", "graph", transpose_dropped)

    def at_input(make):
        def edit(block):
            x = next(iter(block.inputs.values()))
            new = make(x, before_op=block.operations[0], name="injected_input")
            block.replace_uses_of_var_after_op(anchor_op=new.op, old_var=x, new_var=new)
            return "injected_input"
        return edit

    variant("input scaling", "input", at_input(lambda x, **kw: mb.mul(
        x=x, y=np.float32(255.0), **kw)))
    variant("input layout", "input", at_input(lambda x, **kw: mb.transpose(
        x=x, perm=[0, 2, 1, 3] if layout == "nhwc" else [0, 1, 3, 2], **kw)))
    return faults
