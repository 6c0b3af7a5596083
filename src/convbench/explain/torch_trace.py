"""A PyTorch model's intermediate tensors: its FX graph run node by node (forward hooks on its
modules when it does not trace symbolically)."""

from __future__ import annotations

import numpy as np

from convbench.explain.trace import Node, Trace, as_float, plain

#: Module attributes that are hyperparameters, as convbench names them across frameworks.
ATTRS = {"stride": "strides", "padding": "padding", "dilation": "dilations", "groups": "groups",
         "kernel_size": "kernel", "eps": "epsilon", "negative_slope": "alpha",
         "ceil_mode": "ceil_mode", "output_size": "output_size"}


def _first(value):
    while isinstance(value, (tuple, list)) and value:
        value = value[0]
    return value


def _module_node(name: str, module, inputs: list[str], value) -> Node:
    weights = {k: as_float(v) for k, v in
               list(module.named_parameters(recurse=False)) +
               list(module.named_buffers(recurse=False)) if v is not None and v.numel() > 1}
    attrs = {ATTRS[a]: plain(getattr(module, a)) for a in ATTRS if hasattr(module, a)}
    return Node(name, type(module).__name__, inputs, name, as_float(_first(value)),
                {k: v for k, v in weights.items() if v is not None}, attrs)


def trace_torch(model, x: np.ndarray) -> Trace:
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x))
    try:
        import torch.fx

        gm = torch.fx.symbolic_trace(model)
    except Exception:  # data-dependent control flow: fall back to module hooks
        return _trace_hooks(model, xt, x)
    nodes: list[Node] = []

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.op in ("call_module", "call_function", "call_method"):
                reads = [a.name if a.op != "placeholder" else "input"
                         for a in n.all_input_nodes]
                if n.op == "call_module":
                    node = _module_node(n.target, gm.get_submodule(n.target), reads, out)
                    node.output = n.name
                else:
                    kind = n.target if isinstance(n.target, str) else \
                        getattr(n.target, "__name__", str(n.target))
                    node = Node(n.name, kind, reads, n.name, as_float(_first(out)),
                                attrs={f"arg{i}": plain(a) for i, a in enumerate(n.args[1:])
                                       if isinstance(a, (int, float, tuple, list))
                                       and not isinstance(a, bool)} |
                                {k: plain(v) for k, v in n.kwargs.items()
                                 if isinstance(v, (int, float, str, tuple, list))})
                nodes.append(node)
            return out

    with torch.inference_mode():
        Recorder(gm).run(xt)
    return Trace(nodes, "input", x, layout="nchw")


def _trace_hooks(model, xt, x) -> Trace:
    import torch

    nodes: list[Node] = []
    handles = []
    for name, module in model.named_modules():
        if name and not any(True for _ in module.children()):
            def hook(mod, args, out, name=name):
                nodes.append(_module_node(name, mod, [nodes[-1].output if nodes else "input"],
                                          out))
            handles.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            out = model(xt)
    finally:
        for h in handles:
            h.remove()
    final = as_float(_first(out))  # a model returning a tuple: its first output
    if final is not None and (not nodes or nodes[-1].value is None or
                              nodes[-1].value.shape != final.shape or
                              not np.array_equal(nodes[-1].value, final)):
        nodes.append(Node("output", "output", [nodes[-1].output] if nodes else ["input"],
                          "output", final))
    return Trace(nodes, "input", x, layout="nchw")
