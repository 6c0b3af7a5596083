"""Compiling a MIL program into steps and running them with typed storage."""

from __future__ import annotations

import functools
import inspect
from collections import ChainMap
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from convbench.mil.dtypes import STORAGE, to_torch, type_name
from convbench.mil.errors import MilError, UnsupportedOpError
from convbench.mil.ops import OPS


@dataclass(frozen=True)
class Ref:
    """A reference to a variable computed at run time."""

    name: str


@dataclass
class Step:
    op_type: str
    name: str
    fn: Any
    args: dict[str, Any]
    outputs: list[tuple[str, torch.dtype | None]]
    blocks: list["Block"] = field(default_factory=list)
    control: bool = False
    moves: Any = False  # OpImpl.moves
    consts: dict[str, str] = field(default_factory=dict)  # argument -> the const it binds
    plan: Any = None  # OpImpl.plan
    fp16_in: bool = True  # an fp16 value reaches it under fp32 arithmetic (widened by default)

    def __post_init__(self) -> None:
        # split once, so that each run binds only the variables
        self.fixed = {k: v for k, v in self.args.items() if not _has_ref(v)}
        self.refs = [(k, v) for k, v in self.args.items() if _has_ref(v)]
        #: inputs as stored (fp16 not widened): the op only moves values, or it is a
        #: one-input function whose fp16 kernel gives fp32 arithmetic's bits, rounded
        self.as_stored = bool(self.moves(self.fixed) if callable(self.moves) else self.moves)
        if not self.as_stored and self.fp16_in and self.op_type in FP16_EXACT_CANDIDATES \
                and not self.fixed and [k for k, _ in self.refs] == ["x"]:
            self.as_stored = fp16_exact(self.fn)
        if not self.as_stored and self.fp16_in and self.op_type in FP16_EXACT_BINARY \
                and self.refs \
                and set(self.args) == {"x", "y"} \
                and all(isinstance(v, torch.Tensor) for v in self.fixed.values()):
            self.as_stored = fp16_exact_binary(self.fn)
        #: the op as a function of its run-time inputs: planned at load, or fn with the
        #: constants bound
        planned = None
        if self.plan is not None and not self.control \
                and {k for k, _ in self.refs} <= self.plan.inputs:
            # a run-time input given as a constant (a pool over a const, an LSTM's zero
            # initial state) is bound to the planned function, not passed to the planner
            bound = {k: v for k, v in self.fixed.items() if k in self.plan.inputs}
            planned = self.plan(**{k: v for k, v in self.fixed.items() if k not in bound})
            if planned is not None and bound:
                planned = functools.partial(planned, **bound)
        self.call = planned or functools.partial(self.fn, **self.fixed)


#: one-input, parameter-free ops that may run on fp16 values as stored, under fp32 arithmetic,
#: where this machine's fp16 kernel gives, for every fp16 input, the bits of computing in fp32
#: and rounding to fp16 (`fp16_exact`): two passes over the value fewer (widen, round back)
FP16_EXACT_CANDIDATES = frozenset({
    "relu", "relu6", "sigmoid", "silu", "tanh", "exp", "erf", "abs", "sqrt", "square",
    "floor", "ceil", "round", "sign", "softsign", "softplus"})


#: two-input arithmetic that may run on fp16 as stored (`fp16_exact_binary`): an fp16 kernel
#: that computes in fp32 and rounds once gives fp32 arithmetic's bits, rounded, by
#: construction; and for + - * / the fp32 result of two fp16 values rounded to fp16 is the
#: correctly rounded one (24 >= 2 x 11 + 2 bits), so even a native fp16 kernel would agree
FP16_EXACT_BINARY = frozenset({"add", "sub", "mul", "real_div", "maximum", "minimum"})


def _every_fp16() -> torch.Tensor:
    return torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(torch.float16)


def _same_bits(direct, wide) -> bool:
    """`direct` is an fp16 tensor with the bits of `wide` rounded to fp16 (NaN as NaN)."""
    if not isinstance(direct, torch.Tensor) or direct.dtype != torch.float16 \
            or direct.shape != wide.shape:
        return False
    wide = wide.to(torch.float16)
    same = direct.view(torch.int16) == wide.view(torch.int16)
    return bool((same | (torch.isnan(direct) & torch.isnan(wide))).all())


@functools.cache
def fp16_exact(fn) -> bool:
    """Whether `fn(x=...)` on each of the 65,536 fp16 bit patterns gives exactly what it gives
    on the same values widened to fp32, rounded to fp16 (NaN as NaN). Checked once per
    process: PyTorch's fp16 CPU kernels compute in fp32 on most builds, but that is this
    machine's fact to check, not a rule."""
    every = _every_fp16()
    try:
        with torch.inference_mode():
            return _same_bits(fn(x=every), fn(x=every.float()))
    except (RuntimeError, TypeError, NotImplementedError):
        return False


@functools.cache
def fp16_exact_binary(fn) -> bool:
    """Whether `fn(x=..., y=...)` on fp16 tensors gives the bits of computing on them widened
    and rounding to fp16: each of the 65,536 fp16 values against 7 others (a signed zero,
    NaN, the largest, subnormals, an inexact fraction, an integer) on either side, and
    against a 0-d fp32 constant (how a program's fp16 constants arrive, widened at load).
    Once per process, a few ms; a sample where `fp16_exact` is exhaustive, backed by the
    construction `FP16_EXACT_BINARY` states."""
    every = _every_fp16()
    others = torch.tensor([-0.0, float("nan"), 65504.0, 6e-8, -6.1e-5, 1 / 6, 3.0],
                          dtype=torch.float16)
    pairs = [(every[:, None], others[None, :]), (others[:, None], every[None, :]),
             (every, others[-1].float()), (others[-1].float(), every)]
    try:
        with torch.inference_mode():
            return all(_same_bits(fn(x=x, y=y), fn(x=x.float(), y=y.float())) for x, y in pairs)
    except (RuntimeError, TypeError, NotImplementedError):
        return False


def _state_specs(func) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    from coremltools.converters.mil.mil import types

    out = {}
    for name, var in func.inputs.items():
        if not hasattr(var, "mil_type") and types.is_state(var.sym_type):  # (read: no state)
            wrapped = var.sym_type.wrapped_type()
            out[name] = (tuple(int(d) for d in wrapped.get_shape()),
                         STORAGE[types.builtin_to_string(wrapped.get_primitive())])
    return out


@functools.cache
def _parameters(fn) -> frozenset[str] | None:
    """The keyword names `fn` takes (None: any, it takes **kwargs)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return frozenset(params)


def _has_ref(v) -> bool:
    return isinstance(v, Ref) or (isinstance(v, list) and any(_has_ref(x) for x in v))


@dataclass
class Block:
    inputs: list[tuple[str, torch.dtype | None]]
    steps: list[Step]
    outputs: list[str]


class Interpreter:
    """Runs one function of a MIL program (default "main").

    Args:
        program: a MIL program: `read_program`'s, or coremltools' (`load_program`, the MIL
            builder).
        arith: "fp32" (default): fp16 values are widened before each op and its result is
            rounded back to the declared type; "fp16": ops compute in their declared fp16.
        fuse_loops: run loops that are a known recurrence (a converted GRU) on a fused kernel
            (`convbench.mil.loops`).
    """

    def __init__(self, program, function: str = "main", arith: str = "fp32",
                 fuse_loops: bool = True) -> None:
        if arith not in ("fp32", "fp16"):
            raise ValueError(f"arith must be 'fp32' or 'fp16', got {arith!r}")
        self.arith = arith
        self.fuse_loops = fuse_loops
        self.function = function
        #: called as tap(step, outputs) after each op (`convbench explain` reads every value)
        self.tap = None
        func = program.functions[function]
        #: a stateful program's state inputs: (shape, dtype), kept between runs in `states`
        self.state_specs = _state_specs(func)
        self.input_names = [n for n in func.inputs if n not in self.state_specs]
        self.input_types = {n: STORAGE.get(type_name(v)) for n, v in func.inputs.items()}
        self.states: dict[str, torch.Tensor] = {}
        self.reset_states()
        self.consts: dict[str, Any] = {}
        self.const_types: dict[str, str | None] = {}  # const -> its stored MIL type
        self.unknown: list[tuple[str, str, str]] = []
        self.block = self._compile_block(func, function, list(func.inputs.values()))
        if self.unknown:
            lines = "\n".join(f"  {t} (op {n!r} in {where})" for t, n, where in self.unknown)
            raise UnsupportedOpError(f"the program uses ops convbench's MIL interpreter does not "
                                     f"implement:\n{lines}\n`convbench coreml ops MODEL` lists "
                                     f"them all; see convbench/mil/ops to add one")

    def reset_states(self) -> None:
        """Zero every state buffer (a new `MLState`)."""
        self.states = {n: torch.zeros(shape, dtype=dtype)
                       for n, (shape, dtype) in self.state_specs.items()}

    # -- compilation ---------------------------------------------------------------------
    def _const(self, value, mil_type: str | None):
        dtype = STORAGE.get(mil_type) if mil_type else None
        if dtype is not None and dtype.is_floating_point and self.arith == "fp32":
            dtype = torch.float32  # fp16 values are exact in fp32: widen once, here
        return to_torch(value, dtype)

    def _arg(self, var):
        if isinstance(var, (list, tuple)):
            return [self._arg(v) for v in var]
        if var.name in self.consts:
            return self.consts[var.name]
        return Ref(var.name)

    def _reads_fp16(self, variables) -> bool:
        """Whether any of `variables` (vars, or lists of them) is an fp16 value computed at
        run time (fp16 constants are widened at load)."""
        return any(self._reads_fp16(v) if isinstance(v, (list, tuple))
                   else v.name not in self.consts and type_name(v) == "fp16" for v in variables)

    def _compile_block(self, block, where: str, inputs) -> Block:
        steps = []
        for op in block.operations:
            if op.op_type == "const":
                out = op.outputs[0]
                self.consts[out.name] = self._const(out.val, type_name(out))
                self.const_types[out.name] = type_name(out)
                continue
            impl = OPS.get(op.op_type) if op.op_type in OPS else None
            if impl is None:
                self.unknown.append((op.op_type, op.name, where))
                continue
            args = {k: self._arg(v) for k, v in op.inputs.items()}
            for k, v in op.default_inputs().items():
                if k not in args:
                    args[k] = self._const(v, None) if v is not None else None
            for k in op.input_spec.input_types:  # optional inputs with no default: absent
                if not k.startswith("_"):  # "_cond", "_body": the builder's, not the program's
                    args.setdefault(k, None)
            self._check_signature(impl, op, args, where)
            outputs = [(o.name, STORAGE.get(type_name(o))) for o in op.outputs]
            blocks = [self._compile_block(b, f"{where}/{op.name}[{i}]", b.inputs)
                      for i, b in enumerate(op.blocks)]
            step = Step(op.op_type, op.name, impl.fn, args, outputs, blocks, impl.control,
                        impl.moves, {k: v.name for k, v in op.inputs.items()
                                     if not isinstance(v, (list, tuple)) and v.name in self.consts},
                        impl.plan, self.arith == "fp32" and self._reads_fp16(op.inputs.values()))
            if impl.constexpr:  # weights stored compressed: decompress once, at load
                values = impl.fn(**{k: self._materialise(v) for k, v in args.items()})
                for out, value in zip(op.outputs, values if isinstance(values, tuple)
                                      else (values,)):
                    self.consts[out.name] = self._const(value.numpy() if isinstance(
                        value, torch.Tensor) else value, type_name(out))
                    self.const_types[out.name] = op.op_type  # stored compressed
                continue
            if self.fuse_loops and op.op_type == "while_loop":
                from convbench.mil.loops import fuse_gru_loop

                step = fuse_gru_loop(step, self) or step
            steps.append(step)
        ins = [(v.name, STORAGE.get(type_name(v))) for v in inputs]
        return Block(ins, steps, [o.name for o in block.outputs])

    def _materialise(self, v):
        if isinstance(v, Ref):
            raise MilError(f"a constexpr op reads the run-time variable {v.name!r}")
        return v

    @staticmethod
    def _check_signature(impl, op, args, where) -> None:
        params = _parameters(impl.fn)
        if params is None:  # takes **kwargs
            return
        extra = [k for k, v in args.items() if k not in params and v is not None]
        if extra:
            raise UnsupportedOpError(f"op {op.op_type} {op.name!r} in {where}: input(s) "
                                     f"{extra} are not implemented by convbench's interpreter")

    # -- execution -----------------------------------------------------------------------
    def _resolve(self, v, env, widen: bool = True):
        if isinstance(v, Ref):
            t = env[v.name]
            if widen and self.arith == "fp32" and isinstance(t, torch.Tensor) \
                    and t.dtype == torch.float16:
                return t.float()
            return t
        if isinstance(v, list):
            return [self._resolve(x, env, widen) for x in v]
        return v

    @staticmethod
    def _store(value, dtype):
        if dtype is None or (isinstance(value, torch.Tensor) and value.dtype == dtype):
            return value
        if not isinstance(value, torch.Tensor):
            return torch.as_tensor(value, dtype=dtype)
        return value.to(dtype)

    def run_block(self, block: Block, env) -> list:
        for step in block.steps:
            widen = not step.as_stored
            args = {k: self._resolve(v, env, widen) for k, v in step.refs}
            try:
                out = step.fn(self, step, env, **step.fixed, **args) if step.control \
                    else step.call(**args)
            except MilError:
                raise
            except Exception as e:
                raise MilError(f"op {step.op_type} {step.name!r} failed: {type(e).__name__}: "
                               f"{e}") from e
            outs = out if isinstance(out, tuple) else (out,)
            for (name, dtype), value in zip(step.outputs, outs):
                env[name] = self._store(value, dtype)
            if self.tap is not None:
                self.tap(step, [env[name] for name, _ in step.outputs])
        return [self.consts[n] if n in self.consts else env[n] for n in block.outputs]

    def run_scope(self, block: Block, env, values) -> list:
        """Run a nested block (loop body, branch) with its inputs bound to `values`."""
        scope = env.new_child({n: self._store(v, d) for (n, d), v in zip(block.inputs, values)})
        return self.run_block(block, scope)

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the function on numpy inputs (by name); return its outputs as numpy arrays."""
        missing = set(self.input_names) - set(inputs)
        if missing:
            raise MilError(f"missing input(s) {sorted(missing)}; the program takes "
                           f"{self.input_names}")
        env = ChainMap({**self.states,
                        **{n: self._store(to_torch(inputs[n]), self.input_types[n])
                           for n in self.input_names}})
        with torch.inference_mode():
            outs = self.run_block(self.block, env)
        return [o.numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in outs]
