"""MIL op implementations, registered under their MIL names.

An op is a function of its MIL inputs (keyword arguments, defaults already filled from
coremltools' op definitions) returning a torch tensor, or a tuple for several outputs. Float
inputs arrive in the compute dtype; the interpreter stores the result in the declared dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from convbench.registry import Registry


@dataclass(frozen=True)
class OpImpl:
    fn: Callable
    control: bool = False   # receives (interpreter, step, env) first: runs nested blocks
    constexpr: bool = False  # evaluated once at load (compressed weights)


OPS: Registry[OpImpl] = Registry("MIL op")


def op(*names: str, control: bool = False, constexpr: bool = False):
    """Register the decorated function under each MIL op name."""

    def deco(fn):
        for n in names:
            OPS.register(n, OpImpl(fn, control, constexpr))
        return fn

    return deco


# Families register on import.
_FAMILIES = ("activation", "constexpr", "control", "conv", "elementwise", "image", "linear",
             "norm", "pool", "recurrent", "reduce", "shape")


def _load_families() -> None:
    import importlib

    for family in _FAMILIES:
        importlib.import_module(f"convbench.mil.ops.{family}")


_load_families()
