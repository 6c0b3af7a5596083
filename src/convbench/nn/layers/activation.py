"""Activations and elementwise layers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from convbench.nn.layers import layer
from convbench.nn.weights import weights


def _channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-channel (axis -3) vector shaped to broadcast against x."""
    if v.numel() == 1 or x.dim() < 3:
        return v.reshape(()) if v.numel() == 1 else v
    return v.reshape([-1, 1, 1])


def apply_activation(a, x: torch.Tensor) -> torch.Tensor:
    """An ActivationParams message applied to x."""
    kind = a.WhichOneof("NonlinearityType")
    p = getattr(a, kind)
    if kind == "ReLU":
        return torch.relu(x)
    if kind == "leakyReLU":
        return F.leaky_relu(x, p.alpha)
    if kind == "thresholdedReLU":
        return torch.where(x >= p.alpha, x, torch.zeros_like(x))
    if kind == "PReLU":
        return torch.where(x >= 0, x, _channel(weights(p.alpha), x) * x)
    if kind == "tanh":
        return torch.tanh(x)
    if kind == "scaledTanh":
        return p.alpha * torch.tanh(p.beta * x)
    if kind == "sigmoid":
        return torch.sigmoid(x)
    if kind == "sigmoidHard":
        return torch.clamp(p.alpha * x + p.beta, 0.0, 1.0)
    if kind == "linear":
        return p.alpha * x + p.beta
    if kind == "ELU":
        return torch.where(x >= 0, x, p.alpha * torch.expm1(x))
    if kind == "softsign":
        return F.softsign(x)
    if kind == "softplus":
        return F.softplus(x)
    if kind == "parametricSoftplus":
        return _channel(weights(p.alpha), x) * F.softplus(_channel(weights(p.beta), x) * x,
                                                          beta=1.0)
    raise NotImplementedError(f"activation {kind!r}")


@layer("activation")
def activation(p, xs, interp, env):
    return apply_activation(p, xs[0])


@layer("softmax")
def softmax(p, xs, interp, env):
    return torch.softmax(xs[0], dim=-3)


@layer("softmaxND")
def softmax_nd(p, xs, interp, env):
    return torch.softmax(xs[0], dim=int(p.axis))


_UNARY = {"ceil": torch.ceil, "floor": torch.floor, "sign": torch.sign, "round": torch.round,
          "exp2": torch.exp2, "sin": torch.sin, "cos": torch.cos, "tan": torch.tan,
          "asin": torch.asin, "acos": torch.acos, "atan": torch.atan, "sinh": torch.sinh,
          "cosh": torch.cosh, "tanh": torch.tanh, "asinh": torch.asinh, "acosh": torch.acosh,
          "atanh": torch.atanh, "erf": torch.erf,
          "logicalNot": lambda x: (x == 0).float()}
for _name, _fn in _UNARY.items():
    layer(_name)(lambda p, xs, interp, env, _fn=_fn: _fn(xs[0]))


@layer("gelu")
def gelu(p, xs, interp, env):
    x = xs[0]
    mode = type(p).GeluMode.Name(p.mode)
    if mode == "EXACT":
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return x * torch.sigmoid(1.702 * x)


@layer("clip")
def clip(p, xs, interp, env):
    return torch.clamp(xs[0], p.minVal, p.maxVal)


@layer("clampedReLU")
def clamped_relu(p, xs, interp, env):
    x = xs[0]
    return torch.where(x >= 0, torch.clamp(x, max=p.beta), torch.clamp(p.alpha * x, max=p.beta))


@layer("unary")
def unary(p, xs, interp, env):
    x = p.scale * xs[0] + p.shift if (p.scale or p.shift) else xs[0]
    kind = type(p).Operation.Name(p.type)
    eps = p.epsilon or 1e-6
    fns = {"SQRT": torch.sqrt, "RSQRT": lambda v: torch.rsqrt(v + eps),
           "INVERSE": lambda v: 1.0 / (v + eps), "POWER": lambda v: torch.pow(v, p.alpha),
           "EXP": torch.exp, "LOG": lambda v: torch.log(v + eps), "ABS": torch.abs,
           "THRESHOLD": lambda v: torch.clamp(v, min=p.alpha)}
    return fns[kind](x)


def _reduce_inputs(fn, xs, alpha=None):
    if len(xs) == 1 and alpha is not None:
        return fn(xs[0], torch.tensor(alpha))
    out = xs[0]
    for x in xs[1:]:
        out = fn(out, x)
    return out


@layer("add")
def add(p, xs, interp, env):
    return _reduce_inputs(torch.add, xs, p.alpha)


@layer("multiply")
def multiply(p, xs, interp, env):
    return _reduce_inputs(torch.mul, xs, p.alpha)


@layer("average")
def average(p, xs, interp, env):
    return _reduce_inputs(torch.add, xs) / len(xs)


@layer("max")
def max_(p, xs, interp, env):
    return _reduce_inputs(torch.maximum, xs)


@layer("min")
def min_(p, xs, interp, env):
    return _reduce_inputs(torch.minimum, xs)


_BROADCAST = {"addBroadcastable": torch.add, "subtractBroadcastable": torch.sub,
              "multiplyBroadcastable": torch.mul, "divideBroadcastable": torch.div,
              "maxBroadcastable": torch.maximum, "minBroadcastable": torch.minimum,
              "powBroadcastable": torch.pow, "modBroadcastable": torch.remainder,
              "floorDivBroadcastable": lambda a, b: torch.div(a, b, rounding_mode="floor"),
              "logicalAnd": lambda a, b: ((a != 0) & (b != 0)).float(),
              "logicalOr": lambda a, b: ((a != 0) | (b != 0)).float(),
              "logicalXor": lambda a, b: ((a != 0) ^ (b != 0)).float()}
for _name, _fn in _BROADCAST.items():
    layer(_name)(lambda p, xs, interp, env, _fn=_fn: _fn(xs[0], xs[1]))

_COMPARE = {"equal": torch.eq, "notEqual": torch.ne, "lessThan": torch.lt,
            "lessEqual": torch.le, "greaterThan": torch.gt, "greaterEqual": torch.ge}
for _name, _fn in _COMPARE.items():
    layer(_name)(lambda p, xs, interp, env, _fn=_fn: _fn(
        xs[0], xs[1] if len(xs) > 1 else torch.tensor(p.alpha)).float())


@layer("whereBroadcastable")
def where(p, xs, interp, env):
    return torch.where(xs[0] != 0, xs[1], xs[2])
