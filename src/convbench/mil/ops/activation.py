"""Activations (iOS15 activation.py)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from convbench.mil.ops import op
from convbench.mil.ops._util import scalar

op("relu")(lambda x: torch.relu(x))
op("relu6")(lambda x: torch.clamp(x, 0.0, 6.0))
op("sigmoid")(lambda x: torch.sigmoid(x))
op("silu")(lambda x: F.silu(x))
op("softsign")(lambda x: F.softsign(x))
op("softplus")(lambda x: F.softplus(x))


@op("softmax")
def softmax(x, axis):
    return torch.softmax(x, dim=int(scalar(axis)))


@op("leaky_relu")
def leaky_relu(x, alpha):
    return F.leaky_relu(x, scalar(alpha))


@op("elu")
def elu(x, alpha):
    return torch.where(x > 0, x, scalar(alpha) * torch.expm1(x))


@op("thresholded_relu")
def thresholded_relu(x, alpha):
    return torch.where(x >= scalar(alpha), x, torch.zeros_like(x))


def _per_channel(v, x):
    """A per-channel parameter (C,) shaped to broadcast against x (N, C, ...)."""
    return v.reshape([1, -1] + [1] * (x.dim() - 2)) if v.dim() == 1 and x.dim() > 1 else v


@op("prelu")
def prelu(x, alpha):
    return torch.where(x >= 0, x, _per_channel(alpha, x) * x)


@op("clamped_relu")
def clamped_relu(x, alpha, beta):
    a, b = scalar(alpha), scalar(beta)
    return torch.clamp(torch.clamp(x, min=0), max=b) + torch.clamp(torch.clamp(x, max=0) * a,
                                                                   max=b)


@op("sigmoid_hard")
def sigmoid_hard(x, alpha, beta):
    return torch.clamp(scalar(alpha) * x + scalar(beta), 0.0, 1.0)


@op("scaled_tanh")
def scaled_tanh(x, alpha, beta):
    return scalar(alpha) * torch.tanh(x * scalar(beta))


@op("linear_activation")
def linear_activation(x, alpha, beta):
    return scalar(alpha) * x + scalar(beta)


@op("softplus_parametric")
def softplus_parametric(x, alpha, beta):
    return _per_channel(alpha, x) * torch.log1p(torch.exp(x * _per_channel(beta, x)))


@op("gelu")
def gelu(x, mode):
    if mode == "EXACT":
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * torch.sigmoid(1.702 * x)
    raise ValueError(f"unknown gelu mode {mode!r}")
