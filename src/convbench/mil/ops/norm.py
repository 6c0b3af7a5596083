"""Normalisations (iOS15 normalization.py)."""

from __future__ import annotations

import torch

from convbench.mil.ops import op
from convbench.mil.ops._util import axis, ints, scalar


def _channel(v, x):
    """(C,) broadcast over x of shape (N, C, *spatial)."""
    return v.reshape([1, -1] + [1] * (x.dim() - 2))


@op("batch_norm")
def batch_norm(x, mean, variance, gamma, beta, epsilon):
    y = (x - _channel(mean, x)) / torch.sqrt(_channel(variance, x) + scalar(epsilon))
    if gamma is not None:
        y = y * _channel(gamma, x)
    if beta is not None:
        y = y + _channel(beta, x)
    return y


@op("instance_norm")
def instance_norm(x, gamma, beta, epsilon):
    dims = tuple(range(2, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=False)
    y = (x - mean) / torch.sqrt(var + scalar(epsilon))
    if gamma is not None:
        y = y * _channel(gamma, x)
    if beta is not None:
        y = y + _channel(beta, x)
    return y


@op("layer_norm")
def layer_norm(x, axes, gamma, beta, epsilon):
    dims = tuple(range(x.dim())) if axes is None else tuple(axis(a, x.dim()) for a in ints(axes))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=False)
    y = (x - mean) / torch.sqrt(var + scalar(epsilon))
    # gamma and beta have the shape of the normalised axes, which are trailing or need placing
    shape = [x.shape[d] if d in dims else 1 for d in range(x.dim())]
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


@op("l2_norm")
def l2_norm(x, epsilon):
    """x over the L2 norm of its last three dims (all dims of a rank <= 3 tensor)."""
    dims = tuple(range(max(x.dim() - 3, 0), x.dim()))
    return x / torch.sqrt((x * x).sum(dim=dims, keepdim=True) + scalar(epsilon))


@op("local_response_norm")
def local_response_norm(x, size, alpha, beta, k):
    return torch.nn.functional.local_response_norm(x, int(scalar(size)), scalar(alpha),
                                                   scalar(beta), scalar(k))
