"""Pooling: max_pool, avg_pool, l2_pool (iOS15 pool.py)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from convbench.mil.ops import op
from convbench.mil.ops._util import flags, ints, spatial_pads, torch_pad_arg

_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _pads(x, kernel_sizes, strides, pad_type, pad):
    k, s = ints(kernel_sizes), ints(strides)
    pads = spatial_pads(pad_type, pad, list(x.shape[2:]), k, s, [1] * len(k))
    return k, s, pads


@op("max_pool")
def max_pool(x, kernel_sizes, strides, pad_type, pad, ceil_mode):
    k, s, pads = _pads(x, kernel_sizes, strides, pad_type, pad)
    x = F.pad(x, torch_pad_arg(pads), value=-math.inf) if any(sum(p) for p in pads) else x
    ceil = bool(flags([ceil_mode], 1)[0])
    if len(k) == 2 and k[0] * k[1] <= 4 and not ceil and not _small(x):
        return _max_of_shifts(x, k, s)
    return _MAX[len(k)](x, k, s, 0, 1, ceil)


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


@op("avg_pool")
def avg_pool(x, kernel_sizes, strides, pad_type, pad, exclude_padding_from_average, ceil_mode):
    k, s, pads = _pads(x, kernel_sizes, strides, pad_type, pad)
    ceil = bool(flags([ceil_mode], 1)[0])
    padded = F.pad(x, torch_pad_arg(pads)) if any(sum(p) for p in pads) else x
    sums = _AVG[len(k)](padded, k, s, 0, ceil, True, divisor_override=1)
    if bool(flags([exclude_padding_from_average], 1)[0]):
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype)
        ones = F.pad(ones, torch_pad_arg(pads)) if any(sum(p) for p in pads) else ones
        count = _AVG[len(k)](ones, k, s, 0, ceil, True, divisor_override=1)
        return sums / count
    return sums / math.prod(k)


@op("l2_pool")
def l2_pool(x, kernel_sizes, strides, pad_type, pad, ceil_mode):
    k, s, pads = _pads(x, kernel_sizes, strides, pad_type, pad)
    sq = F.pad(x * x, torch_pad_arg(pads)) if any(sum(p) for p in pads) else x * x
    ceil = bool(flags([ceil_mode], 1)[0])
    return torch.sqrt(_AVG[len(k)](sq, k, s, 0, ceil, True, divisor_override=1))
