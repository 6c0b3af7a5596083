"""The compiled engine: a MIL program lowered once, at load, to one generated Python function
over its planned ops.

The op-by-op `Interpreter` stays the reference: the compiled function is generated from the
interpreter's own compiled block, calls the same planned op functions with the same arguments,
widens fp16 inputs and rounds results to their declared types where the interpreter does, so
its outputs are the interpreter's, bit for bit (`CHECK_ENV` makes every run prove it). What it
removes is the dispatch: no name lookups in an environment, no argument dictionaries, no per-op
type tests. Each value is a local variable, deleted after its last use, so memory peaks no
higher than the interpreter's; a scatter into a value nothing reads afterwards writes in place.
Loops and branches become Python loops and branches over nested functions. A program with
state runs op by op.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

from convbench.mil.dtypes import to_torch
from convbench.mil.interpreter import Block, Interpreter, Ref, Step
from convbench.mil.ops.shape import IN_PLACE, scatter_into_stored

#: ops whose results are new tensors, shared with no other variable
FRESH = frozenset({*IN_PLACE, "fill", "fill_like"})
#: ops whose result is always a new tensor too (never an input, nor a view of one): a value
#: they produce may be overwritten by its last reader
NEW_RESULT = frozenset({"conv", "linear", "matmul", "batch_norm", "add", "sub", "mul",
                        "real_div", "relu", "relu6", "sigmoid", "silu", "tanh", "concat"})
#: one-input ops that overwrite their input when nothing reads it afterwards (the same
#: kernels, so the same bits; no new tensor to allocate and fill: DenseNet121's 121 relus)
UNARY_IN_PLACE = {"relu": lambda x: x.relu_(), "sigmoid": lambda x: x.sigmoid_(),
                  "tanh": lambda x: x.tanh_(), "relu6": lambda x: x.clamp_(0.0, 6.0),
                  "silu": lambda x: torch.nn.functional.silu(x, inplace=True)}

#: set (to anything) to run the reference interpreter beside the compiled function on the first
#: run of each of a program's first three input shapes, and fail on any bit that differs (the
#: test suite does); the Core ML runner then also checks its protobuf reader
#: (`reader.check_read`)
CHECK_ENV = "CONVBENCH_COREML_CHECK_COMPILED"


class CompiledProgram:
    """Runs one function of a MIL program as a single generated function.

    Args: as `Interpreter` (program, function, arith).
    """

    def __init__(self, program, function: str = "main", arith: str = "fp32") -> None:
        self.reference = Interpreter(program, function, arith)
        self.input_names = self.reference.input_names
        self.arith = arith
        self.fallback = _needs_interpreter(self.reference)
        self.source = ""
        self._fn = None if self.fallback else self._lower(self.reference.block)
        self._checked: set[tuple] = set()

    @property
    def engine(self) -> str:
        return f"interpreter ({self.fallback})" if self.fallback else "compiled"

    # -- lowering ------------------------------------------------------------------------
    def _lower(self, block: Block):
        emit = _Emitter(self.reference)
        lines = emit.block(block, "program", 0, top=True)
        self.source = "\n".join(lines) + "\n"
        exec(compile(self.source, "<convbench compiled MIL program>", "exec"),  # noqa: S102
             emit.scope)  # our own generated code
        return emit.scope["program"]

    # -- execution -----------------------------------------------------------------------
    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """As `Interpreter.run`: numpy inputs by name, numpy outputs."""
        if self._fn is None:
            return self.reference.run(inputs)
        missing = set(self.input_names) - set(inputs)
        if missing:
            return self.reference.run(inputs)  # raises the reference's error
        ref = self.reference
        args = [ref._store(to_torch(inputs[n]), ref.input_types[n])
                for n, _ in ref.block.inputs]
        with torch.inference_mode():
            outs = self._fn(*args)
        result = [o.numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in outs]
        if os.environ.get(CHECK_ENV):
            self._check(inputs, result)
        return result

    def _check(self, inputs, result) -> None:
        key = tuple((n, np.shape(inputs[n])) for n in sorted(inputs))
        if key in self._checked or len(self._checked) >= 3:  # a few shapes prove it
            return
        self._checked.add(key)
        for i, (got, want) in enumerate(zip(result, self.reference.run(inputs))):
            floats = np.asarray(got).dtype.kind == "f"
            if got.shape != want.shape or not np.array_equal(got, want, equal_nan=floats):
                raise AssertionError(f"compiled MIL program departs from the interpreter at "
                                     f"output {i} ({got!r:.200} against {want!r:.200}) for "
                                     f"inputs {key}")


def _needs_interpreter(interp: Interpreter) -> str:
    """Why a program runs op by op ('' when it compiles)."""
    return "state" if interp.state_specs else ""


class _Emitter:
    """Python source for a block and, nested in it as closures, the blocks of its loops and
    branches: what `Interpreter.run_block` does, step by step, with each value a local."""

    def __init__(self, ref: Interpreter) -> None:
        self.ref = ref
        self.scope: dict[str, object] = {"_st": _store, "_wd": _widen, "_truth": _truth}
        self.names: dict[str, str] = {}  # MIL variable -> Python name (unique program-wide)
        self.dtypes: dict[str, torch.dtype | None] = dict(ref.input_types)
        #: values no other variable shares (fresh results of FRESH ops, or loop variables fed
        #: only such values): an op may write into one that nothing reads afterwards
        self.owned: set[str] = set()
        self.count = 0

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def bind(self, value, prefix: str = "c") -> str:
        key = self.fresh(prefix)
        self.scope[key] = value
        return key

    def block(self, block: Block, fname: str, indent: int, top: bool = False) -> list[str]:
        pad, body = " " * indent, " " * (indent + 4)
        params = []
        for name, dtype in block.inputs:
            self.names[name] = self.fresh("a")
            self.dtypes.setdefault(name, dtype)
            params.append(self.names[name])
        lines = [f"{pad}def {fname}({', '.join(params)}):"]
        if not top:  # a nested block's inputs are stored in their declared types (run_scope)
            lines += [f"{body}{p} = _st({p}, {self.bind(d, 't')})"
                      for p, (_, d) in zip(params, block.inputs) if d is not None]
        local = {n for n, _ in block.inputs}
        last = _last_uses(block)
        ends: dict[int, list[str]] = {}  # step -> the values it reads last
        for n, at in last.items():
            ends.setdefault(at, []).append(n)
        outs = set(block.outputs)
        kept = {self.names[n] for n in outs if n in self.names}  # never freed: returned
        for i, step in enumerate(block.steps):
            # read for the last time here, and this block's own (not an enclosing block's,
            # which a loop body reads again at its next iteration)
            done = {n for n in ends.get(i, ()) if n not in outs and n in local}
            if step.op_type == "while_loop":
                lines += self.while_loop(step, body, done)
            elif step.op_type == "cond":
                lines += self.cond(step, body)
            else:
                lines += self.call(step, body, done)
            lines += self.store(step, body)
            produced = [n for n, _ in step.outputs]
            new = step.op_type in FRESH or step.op_type in NEW_RESULT \
                or _converts(step, self.dtypes)
            if not new or step.blocks:  # its result may be a view of what it reads: those
                self.owned -= _reads(step)  # values are no longer the only way to their data
            if new:
                self.owned.update(produced)
            local.update(produced)
            # free each value after its last reading (or at once, if nothing reads it)
            dead = {self.names[n] for n in produced if n not in last}
            dead |= {self.names[n] for n in ends.get(i, ()) if n in local}
            kept |= {self.names[n] for n in produced if n in outs}
            dead -= kept
            lines.append(f"{body}del _o{''.join(', ' + d for d in sorted(dead))}")
        results = [self.bind(self.ref.consts[n], "k") if n in self.ref.consts else self.names[n]
                   for n in block.outputs]
        lines.append(f"{body}return [{', '.join(results)}]")
        return lines

    def args(self, step: Step) -> list[tuple[str, str]]:
        widen = self.ref.arith == "fp32" and not step.as_stored
        return [(k, self.expr(v, widen)) for k, v in step.refs]

    def call(self, step: Step, body: str, done: set[str]) -> list[str]:
        args = self.args(step)
        fn = step.call
        data = dict(step.refs).get("data")
        alone = [v for _, v in step.refs].count(data) == 1  # not also another argument
        if step.op_type in IN_PLACE and isinstance(data, Ref) and data.name in done and alone:
            copied = dict(args)["data"].endswith(".float()")  # widened: a copy already
            if copied and step.op_type == "scatter" and data.name in self.owned:
                # fp16 storage: write the combined positions into it, not a widened copy
                fn = functools.partial(scatter_into_stored, **step.fixed)
                args = [(k, self.names[data.name] if k == "data" else e) for k, e in args]
            elif copied or data.name in self.owned:
                fn = functools.partial(step.fn, **step.fixed, in_place=True)
        if step.op_type in UNARY_IN_PLACE and not step.fixed and [k for k, _ in args] == ["x"] \
                and isinstance(x := dict(step.refs)["x"], Ref) and x.name in done \
                and (args[0][1].endswith(".float()") or x.name in self.owned):
            fn = UNARY_IN_PLACE[step.op_type]  # into a value nothing reads after, or its copy
        args_src = ", ".join(f"{k}={e}" for k, e in args)
        return [f"{body}_o = {self.bind(fn, 'f')}({args_src})"]

    def while_loop(self, step: Step, body: str, done: set[str]) -> list[str]:
        cond_block, body_block = step.blocks
        widen = self.ref.arith == "fp32" and not step.as_stored
        (_, loop_vars), = step.refs
        initial = []
        for k, v in enumerate(loop_vars):
            src = self.expr(v, widen)
            if _fed_fresh(body_block, k):  # the body may write into this loop variable
                self.owned.add(body_block.inputs[k][0])
                fresh = src.endswith(".float()") or (isinstance(v, Ref) and v.name in done
                                                     and v.name in self.owned)
                src = src if fresh else f"{src}.clone()"  # never into a value read elsewhere
            initial.append(src)
        cond, loop = self.fresh("cond"), self.fresh("body")
        lines = [*self.block(cond_block, cond, len(body)),
                 *self.block(body_block, loop, len(body)),
                 f"{body}_o = [{', '.join(initial)}]",
                 f"{body}while _truth({cond}(*_o)[0]):",
                 f"{body}    _o = {loop}(*_o)",
                 f"{body}_o = tuple(_o)"]
        return lines

    def cond(self, step: Step, body: str) -> list[str]:
        (_, pred), = self.args(step)
        yes, no = self.fresh("then"), self.fresh("else")
        return [*self.block(step.blocks[0], yes, len(body)),
                *self.block(step.blocks[1], no, len(body)),
                f"{body}_o = tuple({yes}() if _truth({pred}) else {no}())"]

    def store(self, step: Step, body: str) -> list[str]:
        outs = []
        for name, dtype in step.outputs:
            self.names[name] = self.fresh("v")
            self.dtypes[name] = dtype
            outs.append(self.names[name])
        if len(outs) == 1:  # an op may return a 1-tuple, as the interpreter allows
            lines = [f"{body}{outs[0]} = _o[0] if type(_o) is tuple else _o"]
        else:
            lines = [f"{body}{', '.join(outs)} = _o[:{len(outs)}]"]
        lines += [f"{body}{o} = _st({o}, {self.bind(d, 't')})"
                  for o, (_, d) in zip(outs, step.outputs) if d is not None]
        return lines

    def expr(self, v, widen: bool) -> str:
        """Python source for an argument: a local, a list of them, or a bound constant."""
        if isinstance(v, Ref):
            local = self.names[v.name]
            dtype = self.dtypes.get(v.name)
            if widen and dtype == torch.float16:
                return f"{local}.float()"
            if widen and dtype is None:  # an undeclared type: the interpreter's dynamic test
                return f"_wd({local})"
            return local
        if isinstance(v, list):
            return "[" + ", ".join(self.expr(x, widen) for x in v) + "]"
        return self.bind(v)


def _converts(step: Step, dtypes: dict) -> bool:
    """A cast to another storage type: its result is a new tensor (a GRU loop casts its fp32
    state buffer to fp16 and scatters each step's row into the copy)."""
    if step.op_type != "cast" or len(step.outputs) != 1:
        return False
    x, out = dict(step.refs).get("x"), step.outputs[0][1]
    source = dtypes.get(x.name) if isinstance(x, Ref) else None
    return None not in (source, out) and source != out


def _reads(step: Step) -> set[str]:
    """The variables `step` reads, in its arguments or inside its nested blocks."""
    out: set[str] = set()

    def visit(v):
        if isinstance(v, Ref):
            out.add(v.name)
        elif isinstance(v, list):
            for x in v:
                visit(x)

    for _, v in step.refs:
        visit(v)
    for inner in step.blocks:
        for s in inner.steps:
            out |= _reads(s)
        out.update(inner.outputs)
    return out


def _fed_fresh(body: Block, k: int) -> bool:
    """Whether a loop body's k-th output is always a fresh value (a FRESH op's result, or the
    k-th input passed on): then its k-th input is one no other variable shares."""
    name = body.outputs[k]
    if name == body.inputs[k][0]:
        return True
    return any(name in (n for n, _ in s.outputs) and s.op_type in FRESH for s in body.steps)


def _last_uses(block: Block) -> dict[str, int]:
    """Each variable's last reading step in `block`; a reading inside a step's nested blocks
    (a loop body, a branch) counts as that step's."""
    out: dict[str, int] = {}

    def visit(v, i):
        if isinstance(v, Ref):
            out[v.name] = i
        elif isinstance(v, list):
            for x in v:
                visit(x, i)

    def walk(step, i):
        for _, v in step.refs:
            visit(v, i)
        for inner in step.blocks:
            for s in inner.steps:
                walk(s, i)
            for name in inner.outputs:
                visit(Ref(name), i)

    for i, step in enumerate(block.steps):
        walk(step, i)
    return out


def _truth(v) -> bool:
    return bool(torch.as_tensor(v).reshape(-1)[0])


def _store(value, dtype):
    if isinstance(value, torch.Tensor) and value.dtype == dtype:
        return value
    return Interpreter._store(value, dtype)


def _widen(t):
    return t.float() if isinstance(t, torch.Tensor) and t.dtype == torch.float16 else t


__all__ = ["CHECK_ENV", "CompiledProgram"]
