"""Pooling: max_pool, avg_pool, l2_pool (iOS15 pool.py)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from convbench.mil.ops import op, planner
from convbench.mil.ops._util import flags, ints, spatial_pads, torch_pad_arg

_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@op("max_pool", moves=True)  # a maximum is exact in fp16: it selects a value
def max_pool(x, kernel_sizes, strides, pad_type, pad, ceil_mode):
    return plan_max_pool(kernel_sizes, strides, pad_type, pad, ceil_mode)(x)


def _small(x) -> bool:
    """Small enough for torch's max_pool2d to beat the shifts (its fixed cost is lower: 6-12 us
    against 15-33 us at batch 1; measured in bench/coreml_profile.py's way). Both give the same
    values: a maximum is exact."""
    n = x.numel()
    return n <= 40_000 or (n <= 100_000 and x.dim() == 4
                           and x.is_contiguous(memory_format=torch.channels_last))


def _max_of_shifts(x, k, s):
    """Small 2-D windows as an elementwise maximum of strided views: the same values, several
    times faster than torch's CPU max_pool2d for 2x2 windows."""
    oh, ow = (x.shape[2] - k[0]) // s[0] + 1, (x.shape[3] - k[1]) // s[1] + 1
    out = None
    for i in range(k[0]):
        for j in range(k[1]):
            view = x[:, :, i:i + s[0] * (oh - 1) + 1:s[0], j:j + s[1] * (ow - 1) + 1:s[1]]
            out = view if out is None else torch.maximum(out, view)
    return out.contiguous()


def _plan(kernel_sizes, strides, pad_type, pad, ceil_mode):
    """The constant arguments read once, each input size's padding worked out once (a 2x2
    pool at batch 1 spent more time reading its arguments than pooling)."""
    k, s, ceil = ints(kernel_sizes), ints(strides), bool(flags([ceil_mode], 1)[0])
    cache: dict = {}

    def explicit_pads(x):
        """F.pad's argument for x's size (None: no padding)."""
        key = x.shape[2:]
        if key not in cache:
            pads = spatial_pads(pad_type, pad, list(key), k, s, [1] * len(k))
            cache[key] = torch_pad_arg(pads) if any(sum(p) for p in pads) else None
        return cache[key]

    return k, s, ceil, explicit_pads


@planner("max_pool")
def plan_max_pool(kernel_sizes, strides, pad_type, pad, ceil_mode):
    k, s, ceil, explicit_pads = _plan(kernel_sizes, strides, pad_type, pad, ceil_mode)

    def run(x):
        explicit = explicit_pads(x)
        x = x if explicit is None else F.pad(x, explicit, value=-math.inf)
        if len(k) == 2 and k[0] * k[1] <= 4 and not ceil and not _small(x):
            return _max_of_shifts(x, k, s)
        return _MAX[len(k)](x, k, s, 0, 1, ceil)

    return run


@op("avg_pool")
def avg_pool(x, kernel_sizes, strides, pad_type, pad, exclude_padding_from_average, ceil_mode):
    return plan_avg_pool(kernel_sizes, strides, pad_type, pad, exclude_padding_from_average,
                         ceil_mode)(x)


@planner("avg_pool")
def plan_avg_pool(kernel_sizes, strides, pad_type, pad, exclude_padding_from_average,
                  ceil_mode):
    k, s, ceil, explicit_pads = _plan(kernel_sizes, strides, pad_type, pad, ceil_mode)
    exclude = bool(flags([exclude_padding_from_average], 1)[0])

    def run(x):
        explicit = explicit_pads(x)
        return _average(x, k, s, explicit, ceil, exclude)

    return run


def _average(x, k, s, explicit, ceil, exclude):
    padded = x if explicit is None else F.pad(x, explicit)
    sums = _AVG[len(k)](padded, k, s, 0, ceil, True, divisor_override=1)
    if exclude:
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype)
        ones = ones if explicit is None else F.pad(ones, explicit)
        count = _AVG[len(k)](ones, k, s, 0, ceil, True, divisor_override=1)
        return sums / count
    return sums / math.prod(k)


@op("l2_pool")
def l2_pool(x, kernel_sizes, strides, pad_type, pad, ceil_mode):
    k, s, ceil, explicit_pads = _plan(kernel_sizes, strides, pad_type, pad, ceil_mode)
    explicit = explicit_pads(x)
    sq = x * x if explicit is None else F.pad(x * x, explicit)
    return torch.sqrt(_AVG[len(k)](sq, k, s, 0, ceil, True, divisor_override=1))
