"""Convolutions: conv and conv_transpose, 1-3 spatial dims (iOS15 conv.py)."""

from __future__ import annotations

import torch.nn.functional as F

from convbench.mil.ops import op
from convbench.mil.ops._util import ints, scalar, spatial_pads, torch_pad_arg

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@op("conv")
def conv(x, weight, bias, strides, pad_type, pad, dilations, groups):
    n = x.dim() - 2
    s, d = ints(strides), ints(dilations)
    pads = spatial_pads(pad_type, pad, list(x.shape[2:]), list(weight.shape[2:]), s, d)
    if all(b == e for b, e in pads):
        padding = [b for b, _ in pads]
    else:  # asymmetric (same with an odd total, or custom): pad explicitly with zeros
        x, padding = F.pad(x, torch_pad_arg(pads)), [0] * n
    return _CONV[n](x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype), s,
                    padding, d, int(scalar(groups)))


@op("conv_transpose")
def conv_transpose(x, weight, bias, pad, output_shape, pad_type, strides, dilations, groups):
    n = x.dim() - 2
    s, d = ints(strides), ints(dilations)
    y = _CONV_T[n](x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype), s, 0, 0,
                   int(scalar(groups)), d)
    full = list(y.shape[2:])
    if pad_type == "custom":
        p = ints(pad)
        begins, ends = p[0::2], [f - e for f, e in zip(full, p[1::2])]
    elif pad_type == "same":
        target = [st * i for st, i in zip(s, x.shape[2:])]
        begins = [(f - t) // 2 for f, t in zip(full, target)]
        ends = [b + t for b, t in zip(begins, target)]
    else:
        begins, ends = [0] * n, full
    if output_shape is not None:
        ends = [b + o for b, o in zip(begins, ints(output_shape)[2:])]
    index = [slice(None), slice(None)] + [slice(b, e) for b, e in zip(begins, ends)]
    return y[tuple(index)]
