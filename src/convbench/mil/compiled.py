"""The compiled engine: a MIL program lowered once, at load, to one straight-line Python
function over its planned ops.

The op-by-op `Interpreter` stays the reference: the compiled function is generated from the
interpreter's own compiled block, calls the same planned op functions with the same arguments,
widens fp16 inputs and rounds results to their declared types where the interpreter does, so
its outputs are the interpreter's, bit for bit (`check` asserts it). What it removes is the
dispatch: no name lookups in an environment, no argument dictionaries, no per-op type tests;
each value is a local variable, deleted after its last use so memory peaks as the
interpreter's. A program with control flow (while_loop, cond) or state runs op by op.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from convbench.mil.dtypes import to_torch
from convbench.mil.interpreter import Block, Interpreter, Ref, Step

#: set (to anything) to run the reference interpreter beside the compiled function on every
#: input shape's first run and fail on any bit that differs (the test suite does)
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
        ref = self.reference
        names: dict[str, str] = {}  # MIL variable -> Python local
        scope: dict[str, object] = {"_st": _store, "_wd": _widen}
        dtypes: dict[str, torch.dtype | None] = {}
        lines = []
        for i, (name, _) in enumerate(block.inputs):
            names[name] = f"a{i}"
        for name in ref.input_names:
            dtypes[name] = ref.input_types[name]
        last_use = _last_uses(block)
        for i, step in enumerate(block.steps):
            scope[f"f{i}"] = step.call
            widen = ref.arith == "fp32" and not step.as_stored
            args = ", ".join(f"{k}={_expr(v, names, dtypes, widen, scope, ref)}"
                             for k, v in step.refs)
            outs = []
            for j, (name, dtype) in enumerate(step.outputs):
                names[name] = f"v{i}_{j}"
                dtypes[name] = dtype
                outs.append(names[name])
            lines.append(f"    _o = f{i}({args})")
            if len(outs) == 1:  # an op may return a 1-tuple, as the interpreter allows
                lines.append(f"    {outs[0]} = _o[0] if type(_o) is tuple else _o")
            else:
                lines.append(f"    {', '.join(outs)} = _o[:{len(outs)}]")
            for j, (_, dtype) in enumerate(step.outputs):
                if dtype is not None:
                    scope[f"t{i}_{j}"] = dtype
                    lines.append(f"    {outs[j]} = _st({outs[j]}, t{i}_{j})")
            # free each value after its last reading (or at once, if nothing reads it)
            dead = [names[n] for n, _ in step.outputs
                    if n not in last_use and n not in block.outputs]
            dead += [names[n] for n, at in last_use.items()
                     if at == i and n in names and n not in block.outputs]
            lines.append(f"    del _o{''.join(', ' + d for d in sorted(set(dead)))}")
        results = []
        for name in block.outputs:
            if name in ref.consts:
                scope[f"k_{len(scope)}"] = ref.consts[name]
                results.append(f"k_{len(scope) - 1}")
            else:
                results.append(names[name])
        params = ", ".join(names[n] for n, _ in block.inputs)
        self.source = (f"def program({params}):\n" + "\n".join(lines)
                       + f"\n    return [{', '.join(results)}]\n")
        exec(compile(self.source, "<convbench compiled MIL program>", "exec"), scope)  # noqa: S102 - our own generated code
        return scope["program"]

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
        if key in self._checked:
            return
        self._checked.add(key)
        for i, (got, want) in enumerate(zip(result, self.reference.run(inputs))):
            if not np.array_equal(got, want, equal_nan=True):
                raise AssertionError(f"compiled MIL program departs from the interpreter at "
                                     f"output {i} (max abs difference "
                                     f"{np.nanmax(np.abs(got - want))}) for inputs {key}")


def _needs_interpreter(interp: Interpreter) -> str:
    """Why a program runs op by op ('' when it compiles)."""
    if interp.state_specs:
        return "state"
    if any(step.control for step in interp.block.steps):
        return "control flow"
    return ""


def _last_uses(block: Block) -> dict[str, int]:
    """Each variable's last reading step."""
    out: dict[str, int] = {}

    def visit(v, i):
        if isinstance(v, Ref):
            out[v.name] = i
        elif isinstance(v, list):
            for x in v:
                visit(x, i)

    for i, step in enumerate(block.steps):
        for _, v in step.refs:
            visit(v, i)
    return out


def _expr(v, names, dtypes, widen: bool, scope, ref) -> str:
    """Python source for an argument: a local, a list of them, or a bound constant."""
    if isinstance(v, Ref):
        local = names[v.name]
        dtype = dtypes.get(v.name)
        if widen and dtype == torch.float16:
            return f"{local}.float()"
        if widen and dtype is None:  # an undeclared type: the interpreter's dynamic test
            return f"_wd({local})"
        return local
    if isinstance(v, list):
        return "[" + ", ".join(_expr(x, names, dtypes, widen, scope, ref) for x in v) + "]"
    key = f"c{len(scope)}"
    scope[key] = v
    return key


def _store(value, dtype):
    if isinstance(value, torch.Tensor) and value.dtype == dtype:
        return value
    return Interpreter._store(value, dtype)


def _widen(t):
    return t.float() if isinstance(t, torch.Tensor) and t.dtype == torch.float16 else t


__all__ = ["CHECK_ENV", "CompiledProgram", "Step"]
