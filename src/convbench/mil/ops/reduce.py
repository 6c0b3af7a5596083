"""Reductions (iOS15 reduction.py): axes None reduces every axis."""

from __future__ import annotations

import torch

from convbench.mil.ops import op
from convbench.mil.ops._util import axis, ints, scalar


def _dims(x, axes):
    return tuple(range(x.dim())) if axes is None else tuple(axis(a, x.dim()) for a in ints(axes))


_REDUCE = {
    "reduce_sum": lambda x, d, k: torch.sum(x, d, keepdim=k),
    "reduce_mean": lambda x, d, k: torch.mean(x, d, keepdim=k),
    "reduce_prod": lambda x, d, k: _each(torch.prod, x, d, k),
    "reduce_max": lambda x, d, k: torch.amax(x, d, keepdim=k),
    "reduce_min": lambda x, d, k: torch.amin(x, d, keepdim=k),
    "reduce_l1_norm": lambda x, d, k: torch.sum(torch.abs(x), d, keepdim=k),
    "reduce_l2_norm": lambda x, d, k: torch.sqrt(torch.sum(x * x, d, keepdim=k)),
    "reduce_sum_square": lambda x, d, k: torch.sum(x * x, d, keepdim=k),
    "reduce_log_sum": lambda x, d, k: torch.log(torch.sum(x, d, keepdim=k)),
    "reduce_log_sum_exp": lambda x, d, k: torch.logsumexp(x, d, keepdim=k),
}


def _each(fn, x, dims, keep):
    """Reduce one axis at a time, for torch reductions that take a single dim."""
    for d in sorted(dims, reverse=True):
        x = fn(x, d, keepdim=keep)
    return x


for _name, _fn in _REDUCE.items():
    op(_name)(lambda x, axes, keep_dims, _fn=_fn: _fn(x, _dims(x, axes), bool(scalar(keep_dims))))


@op("reduce_argmax")
def reduce_argmax(x, axis, keep_dims, output_dtype=None):  # the dtype is the output's declared
    return torch.argmax(x, dim=_dims(x, axis)[0], keepdim=bool(scalar(keep_dims)))


@op("reduce_argmin")
def reduce_argmin(x, axis, keep_dims, output_dtype=None):
    return torch.argmin(x, dim=_dims(x, axis)[0], keepdim=bool(scalar(keep_dims)))


@op("classify")
def classify(probabilities, classes):
    """A classifier program's last op: the top class's label, and the probabilities. Core ML
    returns the latter as a {label: probability} dictionary; here it is the vector in the
    order of `classes`, which is what comparing two models needs."""
    labels = list(classes.tolist() if hasattr(classes, "tolist") else classes)
    top = int(torch.argmax(probabilities.reshape(-1)))
    label = labels[top]
    out = torch.tensor(label, dtype=torch.int64) if not isinstance(label, str) else label
    return out, probabilities.reshape(-1)
