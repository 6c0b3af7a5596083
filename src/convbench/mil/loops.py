"""Recurrences that converters write as loops, recognised at load and run on a fused kernel.

coremltools converts a PyTorch `nn.GRU` into a `while_loop` of some twenty ops per time step
(Core ML's own `gru` op defines its candidate gate differently), so an interpreter pays twenty
dispatches per step: 4,000 for a 200-step sequence, against one call of a fused GRU kernel. When
a loop is exactly that recurrence, with weights that are constants and every value stored in
fp32, it runs as one call of PyTorch's GRU over the sequence: the same equations and storage
types, summed in another order (results agree to fp32 rounding, which a test checks). Loops of
fp16 storage round every op's result to fp16 by definition and keep running op by op.
"""

from __future__ import annotations

from typing import Any

import torch

from convbench.mil.errors import MilError

#: the body of coremltools' GRU loop (frontend/torch/ops.py, `_add_gru_layer`), from its
#: outputs back: (op type, {input: pattern}); "$name" captures a value (equal when repeated),
#: ("const", name) captures a constant input, "@n" is the body's n-th input
_GATE = {"r": ("sigmoid", {"x": ("add", {"x": ("linear", {"x": "$xt", "weight": ("const", "w_ir"),
                                                         "bias": ("const", "b_ir")}),
                                          "y": ("linear", {"x": "$ht", "weight": ("const", "w_hr"),
                                                         "bias": ("const", "b_hr")})})}),
         "z": ("sigmoid", {"x": ("add", {"x": ("linear", {"x": "$xt", "weight": ("const", "w_iz"),
                                                         "bias": ("const", "b_iz")}),
                                          "y": ("linear", {"x": "$ht", "weight": ("const", "w_hz"),
                                                         "bias": ("const", "b_hz")})})})}
_N = ("tanh", {"x": ("add", {"x": ("linear", {"x": "$xt", "weight": ("const", "w_in"),
                                              "bias": ("const", "b_in")}),
                            "y": ("mul", {"x": "$r", "y": ("linear", {
                                "x": "$ht", "weight": ("const", "w_hn"),
                                "bias": ("const", "b_hn")})})})})
_H = ("add", {"x": ("mul", {"x": ("sub", {"x": ("const", "one"), "y": "$z"}), "y": _N}),
              "y": ("mul", {"x": "$z", "y": "$ht"})})
_COUNTER = ("add", {"x": "@0", "y": ("const", "step")})
_ROWS = {"xt": ("squeeze", {"x": ("gather", {"x": "$sequence", "indices": "@0",
                                             "axis": ("const", "axis_x")}),
                            "axes": ("const", "axes_x")}),
         "ht": ("squeeze", {"x": ("gather", {"x": "@1", "indices": "@0",
                                             "axis": ("const", "axis_h")}),
                            "axes": ("const", "axes_h")})}
_SCATTER = ("scatter", {"data": "@1", "indices": "$counter",
                        "updates": ("expand_dims", {"x": "$h", "axes": ("const", "axes_e")}),
                        "axis": ("const", "axis_s"), "mode": ("const", "mode")})


class _Match:
    def __init__(self, block) -> None:
        self.block = block
        self.made = {name: s for s in block.steps for name, _ in s.outputs}
        self.inputs = [n for n, _ in block.inputs]
        self.caps: dict[str, Any] = {}
        self.used: set[int] = set()

    def value(self, v, pat) -> bool:
        from convbench.mil.interpreter import Ref

        if isinstance(pat, str) and pat.startswith("@"):
            return isinstance(v, Ref) and v.name == self.inputs[int(pat[1:])]
        if isinstance(pat, str):  # "$name"
            key = pat[1:]
            if key in self.caps:
                return _same(self.caps[key], v)
            self.caps[key] = v
            return True
        if pat[0] == "const":
            if isinstance(v, Ref) or v is None:
                return False
            self.caps[pat[1]] = v
            return True
        op_type, args = pat
        step = self.made.get(v.name) if isinstance(v, Ref) else None
        if step is None or step.op_type != op_type or len(step.outputs) != 1:
            return False
        given = {k: a for k, a in step.args.items() if a is not None}
        extra = set(given) - set(args) - {"validate_indices", "batch_dims"}
        if extra or _nonzero(given.get("batch_dims")):
            return False
        self.used.add(id(step))
        return all(k in given and self.value(given[k], p) for k, p in args.items())


def _same(a, b) -> bool:
    from convbench.mil.interpreter import Ref

    if isinstance(a, Ref) or isinstance(b, Ref):
        return isinstance(a, Ref) and isinstance(b, Ref) and a.name == b.name
    return a is b


def _nonzero(v) -> bool:
    return v is not None and bool(torch.as_tensor(v).reshape(-1).ne(0).any())


def _scalar(v, value) -> bool:
    t = torch.as_tensor(v)
    return t.numel() == 1 and float(t.reshape(-1)[0]) == value


def fuse_gru_loop(step, interp):
    """A replacement for `step` (a while_loop of `interp`) running it as one fused GRU call, or
    None when the loop is not coremltools' GRU recurrence over fp32 values."""
    from collections import ChainMap

    from convbench.mil.interpreter import Ref, Step
    from convbench.mil.ops.control import while_loop

    cond, body = step.blocks
    loop_vars = step.args["loop_vars"]
    if len(loop_vars) != 2 or len(body.outputs) != 2 or len(cond.steps) != 1:
        return None
    start = loop_vars[0]
    if isinstance(start, Ref) or not _scalar(start, 0):
        return None
    less = cond.steps[0]
    if less.op_type != "less" or cond.outputs != [less.outputs[0][0]] \
            or not _same(less.args.get("x"), Ref(cond.inputs[0][0])):
        return None
    steps_arg = less.args.get("y")
    m = _Match(body)
    if not (m.value(Ref(body.outputs[0]), _COUNTER) and m.value(Ref(body.outputs[1]), _SCATTER)
            and m.value(m.caps["counter"], _COUNTER) and m.value(m.caps["h"], _H)
            and m.value(m.caps["r"], _GATE["r"]) and m.value(m.caps["z"], _GATE["z"])
            and m.value(m.caps["xt"], _ROWS["xt"]) and m.value(m.caps["ht"], _ROWS["ht"])):
        return None
    c = m.caps
    if len(m.used) != len(body.steps) or not isinstance(c["sequence"], Ref) \
            or c["sequence"].name in m.inputs or c["sequence"].name in m.made:
        return None  # the body does something more, or reads its sequence from itself
    if isinstance(steps_arg, Ref) and steps_arg.name in [n for n, _ in cond.inputs]:
        return None
    zeros = ("axis_x", "axes_x", "axis_h", "axes_h", "axes_e", "axis_s")
    if not all(_scalar(c[k], 0) for k in zeros) or not _scalar(c["step"], 1) \
            or not _scalar(c["one"], 1) or c["mode"] not in ("update", "add"):
        return None
    weights = [c[k] for k in ("w_ir", "w_iz", "w_in", "w_hr", "w_hz", "w_hn",
                              "b_ir", "b_iz", "b_in", "b_hr", "b_hz", "b_hn")]
    stored = [d for s in body.steps for n, d in s.outputs if n != body.outputs[0]] \
        + [d for _, d in body.inputs[1:]]  # every value but the step counter
    if any(not isinstance(w, torch.Tensor) or w.dtype != torch.float32 for w in weights) \
            or any(d != torch.float32 for d in stored):
        return None
    params = [torch.cat(weights[0:3]).contiguous(), torch.cat(weights[3:6]).contiguous(),
              torch.cat(weights[6:9]).contiguous(), torch.cat(weights[9:12]).contiguous()]

    def gru_loop(loop_vars, sequence, steps):
        counter, hidden = loop_vars
        n = int(torch.as_tensor(steps).reshape(-1)[0])
        if n <= 0:
            return counter, hidden
        if c["mode"] == "add" and bool(hidden[1:n + 1].any()):
            # rows not zero before the loop adds the states in (coremltools fills them with
            # zeros): the state read back is not the GRU's; run the loop as written
            env = ChainMap({c["sequence"].name: sequence,
                            **({steps_arg.name: steps} if isinstance(steps_arg, Ref) else {})})
            return while_loop(interp, step, env, loop_vars=[counter, hidden])
        if n > sequence.shape[0] or n >= hidden.shape[0]:
            raise MilError(f"the loop reads step {n - 1} of a sequence of {sequence.shape[0]} "
                           f"into {hidden.shape[0]} rows")
        out, _ = torch._VF.gru(sequence[:n].contiguous(), hidden[:1].contiguous(), params, True,
                               1, 0.0, False, False, False)
        hidden = hidden.clone()
        hidden[1:n + 1] = out  # = 0 + out, where the loop adds
        return torch.full_like(counter, n), hidden

    args = {"loop_vars": loop_vars, "sequence": c["sequence"], "steps": steps_arg}
    return Step("gru_loop", step.name, gru_loop, args, step.outputs)
