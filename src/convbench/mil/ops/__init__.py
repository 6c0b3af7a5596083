"""MIL op implementations, registered under their MIL names.

An op is a function of its MIL inputs (keyword arguments, defaults already filled from
coremltools' op definitions) returning a torch tensor, or a tuple for several outputs. Float
inputs arrive in the compute dtype; the interpreter stores the result in the declared dtype.
An op that only moves values (`moves`: reshape, gather, an updating scatter, a cast...) gets them
as stored instead: widening fp16 to fp32 and rounding back could not change a bit of its result,
only copy it twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from convbench.registry import Registry


@dataclass(frozen=True)
class OpImpl:
    fn: Callable
    control: bool = False   # receives (interpreter, step, env) first: runs nested blocks
    constexpr: bool = False  # evaluated once at load (compressed weights)
    #: only moves values: True, or a test of the op's constant inputs (a scatter's mode)
    moves: bool | Callable[[dict[str, Any]], bool] = False
    #: plan(**constant inputs) -> a function of the run-time inputs, made once at load (or
    #: None: the op runs as `fn`); it computes what `fn` computes, with the same kernels
    plan: Callable[..., Callable | None] | None = None


OPS: Registry[OpImpl] = Registry("MIL op")


def op(*names: str, control: bool = False, constexpr: bool = False,
       moves: bool | Callable[[dict[str, Any]], bool] = False):
    """Register the decorated function under each MIL op name."""

    def deco(fn):
        for n in names:
            OPS.register(n, OpImpl(fn, control, constexpr, moves))
        return fn

    return deco


def planner(*names: str, inputs: tuple[str, ...] = ("x",)):
    """Register the decorated function as the load-time plan of each (registered) MIL op: it
    takes the op's constant inputs by name and returns a function of its run-time `inputs` (by
    name), or None when it cannot plan this instance. An op whose other inputs are not all
    constant runs unplanned."""

    def deco(plan):
        plan.inputs = frozenset(inputs)
        for n in names:
            OPS._entries[n] = replace(OPS.get(n), plan=plan)
        return plan

    return deco


# Families register on import.
_FAMILIES = ("activation", "attention", "constexpr", "control", "conv", "detection",
             "elementwise", "image", "linear", "lists", "norm", "pool", "quantization", "random",
             "rearrange", "recurrent", "reduce", "shape", "state")


def _load_families() -> None:
    import importlib

    for family in _FAMILIES:
        importlib.import_module(f"convbench.mil.ops.{family}")


_load_families()
