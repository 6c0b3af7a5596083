"""Normalisations (iOS15 normalization.py)."""

from __future__ import annotations

import torch

from convbench.mil.ops import op
from convbench.mil.ops._util import axis, ints, scalar


def _channel(v, x):
    """(C,) broadcast over x of shape (N, C, *spatial)."""
    return v.reshape([1, -1] + [1] * (x.dim() - 2))


def _affine(y, gamma, beta, shape):
    """y * gamma + beta with the optional parameters reshaped to `shape`."""
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


def _normalise(x, dims, epsilon):
    """(x - mean) / sqrt(var + eps) over `dims`, with the population variance."""
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + scalar(epsilon))


@op("batch_norm")
def batch_norm(x, mean, variance, gamma, beta, epsilon):
    y = (x - _channel(mean, x)) / torch.sqrt(_channel(variance, x) + scalar(epsilon))
    return _affine(y, gamma, beta, [1, -1] + [1] * (x.dim() - 2))


@op("instance_norm")
def instance_norm(x, gamma, beta, epsilon):
    y = _normalise(x, tuple(range(2, x.dim())), epsilon)
    return _affine(y, gamma, beta, [1, -1] + [1] * (x.dim() - 2))


@op("layer_norm")
def layer_norm(x, axes, gamma, beta, epsilon):
    dims = tuple(range(x.dim())) if axes is None else tuple(axis(a, x.dim()) for a in ints(axes))
    # gamma and beta have the shape of the normalised axes, placed where those axes are
    return _affine(_normalise(x, dims, epsilon), gamma, beta,
                   [x.shape[d] if d in dims else 1 for d in range(x.dim())])


@op("l2_norm")
def l2_norm(x, epsilon):
    """x over the L2 norm of its last three dims (all dims of a rank <= 3 tensor)."""
    dims = tuple(range(max(x.dim() - 3, 0), x.dim()))
    return x / torch.sqrt((x * x).sum(dim=dims, keepdim=True) + scalar(epsilon))


@op("local_response_norm")
def local_response_norm(x, size, alpha, beta, k):
    return torch.nn.functional.local_response_norm(x, int(scalar(size)), scalar(alpha),
                                                   scalar(beta), scalar(k))
