"""Convolutions: conv and conv_transpose, 1-3 spatial dims (iOS15 conv.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convbench.mil.ops import op, planner
from convbench.mil.ops._util import ints, scalar, spatial_pads, torch_pad_arg

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _channels_last(t):
    """fp32 2-D convolutions run channels-last (NHWC in memory, NCHW in meaning): PyTorch's
    oneDNN kernels are 1.3-2x faster so on this CPU, depthwise ones most (bench/coreml_profile)."""
    if t.dim() == 4 and t.dtype == torch.float32:
        return t.contiguous(memory_format=torch.channels_last)
    return t


@op("conv")
def conv(x, weight, bias, strides, pad_type, pad, dilations, groups):
    return _conv(x, _channels_last(weight), bias, ints(strides), pad_type, pad,
                 ints(dilations), int(scalar(groups)))


def _conv(x, weight, bias, s, pad_type, pad, d, groups, cache=None):
    key = (x.shape[1:], x.dtype, x.shape[0] == 1)  # batch 1 may choose another kernel
    run = None if cache is None else cache.get(key)
    if run is None:
        run = _geometry(x, weight, bias, s, pad_type, pad, d, groups)
        if cache is not None:
            cache[key] = run
    return run(x)


def _geometry(x, weight, bias, s, pad_type, pad, d, groups):
    """The convolution of inputs like x (its sizes but the batch's, its dtype), as a function
    of x: padding, any cut of the kernel, the kernel and its layout worked out once."""
    n, sizes = x.dim() - 2, list(x.shape[2:])
    pads = spatial_pads(pad_type, pad, sizes, list(weight.shape[2:]), s, d)
    w, pads, crop = _reachable(weight, pads, sizes, s, d)
    w = w.to(x.dtype)  # fp16 weights widened once, for fp32 arithmetic: exact
    fp32 = x.dtype == torch.float32
    if fp32 and x.dim() == 4:
        pointwise = _pointwise(_channels_last(w), bias, pads, crop, s, groups)
        if pointwise is not None:
            return pointwise
    if all(b == e for b, e in pads):
        padding, explicit = [b for b, _ in pads], None
    else:  # asymmetric (same with an odd total, or custom): pad explicitly with zeros
        padding, explicit = [0] * n, torch_pad_arg(pads)
    cut = None if not crop else (slice(None), slice(None), *(slice(0, c) for c in crop))
    b = None if bias is None else bias.to(x.dtype)
    if fp32 and _small(x, w, d, groups):
        w, k = w.contiguous(), list(w.shape[2:])

        def small(x):
            x = x if cut is None else x[cut]  # input rows no output reads
            x = x if explicit is None else F.pad(x, explicit)
            return _thnn_conv2d(x.contiguous(), w, k, b, s, padding)

        return small
    w, conv = _channels_last(w), _CONV[n]

    def general(x):
        x = x if cut is None else x[cut]
        x = x if explicit is None else F.pad(x, explicit)
        return conv(_channels_last(x), w, b, s, padding, d, groups)

    return general


#: PyTorch's own im2col + GEMM convolution (what `F.conv2d` runs when oneDNN is off)
_thnn_conv2d = getattr(torch._C._nn, "thnn_conv2d", None)


def _small(x, w, d, groups) -> bool:
    """A batch-1 fp32 2-D convolution over few input channels (<= 8: image stems, LeNet-5):
    PyTorch's im2col + GEMM kernel takes a quarter to a half of oneDNN's time there (measured
    here, medians of bare calls: LeNet-5's 1->6 5x5 conv at 28x28 18-24 us against 77-110 us,
    its 6->16 conv 29-36 against 64-109 us), and about the same on 3-channel stems; with 16
    channels or batch 4 oneDNN is as fast or faster. The same sums in another order: within
    fp32 rounding of oneDNN's."""
    return (_thnn_conv2d is not None and x.dim() == 4 and x.shape[0] == 1 and groups == 1
            and w.shape[1] <= 8 and w.dtype == torch.float32 and all(v == 1 for v in d))


def _pointwise(w, bias, pads, crop, s, groups):
    """A 2-D fp32 convolution whose (cut) kernel is 1x1, unstrided and unpadded, as what it is:
    a matrix product over the channels (groups == 1), or a per-channel scale (depthwise). The
    same sums as oneDNN's convolution kernels, which at small spatial sizes cost several times
    a GEMM's time (a 1x1 conv over a 1x1 map at batch 32: 570 us against 100)."""
    if w.dim() != 4 or w.dtype != torch.float32 or tuple(w.shape[2:]) != (1, 1) or crop \
            or any(p != (0, 0) for p in pads) or any(v != 1 for v in s):
        return None
    out, per_group = w.shape[0], w.shape[1]
    b = None if bias is None else bias.to(torch.float32)
    if groups == 1:
        wt = w.reshape(out, per_group).t().contiguous()  # K x N: 1.3-2x faster for few rows

        def gemm(x):
            n, c, h, wd = x.shape
            rows = x.permute(0, 2, 3, 1).reshape(-1, c)  # a view of channels-last storage
            y = torch.mm(rows, wt) if b is None else torch.addmm(b, rows, wt)
            return y.reshape(n, h, wd, out).permute(0, 3, 1, 2)  # channels-last, NCHW meaning

        return gemm
    if per_group == 1 and groups == out:
        scale = w.reshape(1, out, 1, 1)
        shift = None if b is None else b.reshape(1, out, 1, 1)
        return (lambda x: x * scale) if shift is None \
            else (lambda x: torch.addcmul(shift, x, scale))
    return None


def _reachable(weight, pads, sizes, s, d):
    """The kernel cut to the taps that ever read the input (not only its zero padding), the
    padding that keeps every output where it was, and the input length each dim needs (None
    when all of it): the same sums, without the terms that are zero by construction. A 5x5
    depthwise kernel over a 1x1 map ("same" padding) is one multiply, not 25 (PyTorch's CPU
    kernels take 100x longer over the 24 padded taps). Dilated kernels are left whole."""
    k = list(weight.shape[2:])
    if any(v != 1 for v in d):
        return weight, pads, None
    taps, new_pads, lengths = [], [], []
    for (before, after), size, kk, st in zip(pads, sizes, k, s):
        out = (size + before + after - kk) // st + 1
        lo = max(0, before - (out - 1) * st)
        hi = min(kk - 1, before + size - 1)
        if hi < lo:  # no tap reads the input: keep the kernel (outputs are the bias)
            return weight, pads, None
        before2 = before - lo
        after2 = (out - 1) * st + (hi - lo + 1) - size - before2
        lengths.append(size + min(after2, 0))
        taps.append(slice(lo, hi + 1))
        new_pads.append((before2, max(after2, 0)))
    if all(t == slice(0, kk) for t, kk in zip(taps, k)):
        return weight, pads, None
    crop = lengths if any(n != size for n, size in zip(lengths, sizes)) else None
    return weight[(slice(None), slice(None), *taps)].contiguous(), new_pads, crop


@planner("conv")
def plan_conv(weight, bias, strides, pad_type, pad, dilations, groups):
    """Constant weights laid out once, the geometry (and any cut of the kernel) worked out
    once per input size."""
    w, s, d, g = _channels_last(weight), ints(strides), ints(dilations), int(scalar(groups))
    cache: dict = {}

    def run(x):
        return _conv(x, w, bias, s, pad_type, pad, d, g, cache)

    return run


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
