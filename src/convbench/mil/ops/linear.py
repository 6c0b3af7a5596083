"""linear, matmul, einsum (iOS15 linear.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convbench.mil.ops import op, planner
from convbench.mil.ops._util import scalar


@op("linear")
def linear(x, weight, bias):
    return F.linear(x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype))


@planner("linear")
def plan_linear(weight, bias):
    """Constant weights cast once per compute dtype."""
    cast: dict = {}

    def run(x):
        wb = cast.get(x.dtype)
        if wb is None:
            wb = cast[x.dtype] = (weight.to(x.dtype),
                                  None if bias is None else bias.to(x.dtype))
        return F.linear(x, *wb)

    return run


@op("matmul")
def matmul(x, y, transpose_x, transpose_y):
    if scalar(transpose_x) and x.dim() > 1:
        x = x.transpose(-1, -2)
    if scalar(transpose_y) and y.dim() > 1:
        y = y.transpose(-1, -2)
    if x.dtype != y.dtype:
        y = y.to(x.dtype)
    return torch.matmul(x, y)


@op("einsum")
def einsum(values, equation):
    return torch.einsum(equation, *values)
