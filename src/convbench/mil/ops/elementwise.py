"""Elementwise unary and binary ops (numpy broadcasting, as MIL specifies)."""

from __future__ import annotations

import torch

from convbench.mil.ops import op
from convbench.mil.ops._util import scalar

_UNARY = {
    "abs": torch.abs, "acos": torch.acos, "asin": torch.asin, "atan": torch.atan,
    "atanh": torch.atanh, "ceil": torch.ceil, "cos": torch.cos, "cosh": torch.cosh,
    "erf": torch.erf, "exp": torch.exp, "exp2": torch.exp2, "floor": torch.floor,
    "round": torch.round,  # half to even, as np.round in coremltools' value inference
    "sign": torch.sign, "sin": torch.sin, "sinh": torch.sinh, "sqrt": torch.sqrt,
    "square": torch.square, "tan": torch.tan, "tanh": torch.tanh, "logical_not": torch.logical_not,
    "identity": lambda x: x,
}
for _name, _fn in _UNARY.items():
    op(_name)(lambda x, _fn=_fn: _fn(x))


@op("log")
def log(x, epsilon):
    return torch.log(x + scalar(epsilon))


@op("rsqrt")
def rsqrt(x, epsilon):
    return torch.rsqrt(x + scalar(epsilon))


@op("inverse")
def inverse(x, epsilon):
    return 1.0 / (x + scalar(epsilon))


@op("clip")
def clip(x, alpha, beta):
    return torch.clamp(x, min=scalar(alpha), max=scalar(beta))


@op("threshold")
def threshold(x, alpha):
    return torch.clamp(x, min=scalar(alpha))


def _int_aware_div(x, y):
    if not x.is_floating_point() and not y.is_floating_point():
        return torch.div(x, y, rounding_mode="trunc").to(x.dtype)
    return torch.true_divide(x, y)


_BINARY = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "real_div": _int_aware_div,
    "pow": torch.pow, "maximum": torch.maximum, "minimum": torch.minimum,
    "floor_div": lambda x, y: torch.div(x, y, rounding_mode="floor"),
    "mod": torch.remainder,  # the sign of the divisor, as np.mod
    "equal": torch.eq, "not_equal": torch.ne, "less": torch.lt, "less_equal": torch.le,
    "greater": torch.gt, "greater_equal": torch.ge, "logical_and": torch.logical_and,
    "logical_or": torch.logical_or, "logical_xor": torch.logical_xor,
}


def _binary(fn):
    def run(x, y):
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        if not isinstance(y, torch.Tensor):
            y = torch.as_tensor(y)
        if x.dtype != y.dtype and x.is_floating_point() != y.is_floating_point():
            common = x.dtype if x.is_floating_point() else y.dtype
            x, y = x.to(common), y.to(common)
        return fn(x, y)

    return run


for _name, _fn in _BINARY.items():
    op(_name)(_binary(_fn))


@op("select")
def select(cond, a, b):
    return torch.where(cond.bool(), a, b)


@op("cast", moves=True)  # from the stored value: fp16 -> fp32 exact, rounding once
def cast(x, dtype):
    from convbench.mil.dtypes import STORAGE

    return x.to(STORAGE[dtype])  # float -> int truncates toward zero, as numpy's astype
