"""Layers with weights or windows: convolution, innerProduct, embedding, batchnorm, pooling,
padding, upsample (rank >= 4 inputs: leading dims before [C, H, W] are batch), and the 3-D
convolution and pooling layers ([B, C, D, H, W])."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from convbench.mil.ops import conv as mil_conv
from convbench.mil.ops import pool as mil_pool
from convbench.mil.ops._util import torch_pad_arg
from convbench.nn.layers import layer
from convbench.nn.weights import weights


def _as_nchw(x):
    """Fold the leading dims into one batch dim; return the folded tensor and an unfold fn."""
    lead = x.shape[:-3]
    y = x.reshape((-1, *x.shape[-3:]))
    return y, (lambda t: t.reshape((*lead, *t.shape[1:])))


def _pads(kind, p, x_hw, kernel, stride, dilation=(1, 1)):
    """(before, after) per spatial dim for a "valid" (with amounts) or "same" padding."""
    if kind == "same":
        out = []
        heavy_end = p.same.asymmetryMode == 0  # BOTTOM_RIGHT_HEAVY
        for size, k, s, d in zip(x_hw, kernel, stride, dilation):
            eff = (k - 1) * d + 1
            total = max((-(-size // s) - 1) * s + eff - size, 0)
            small, big = total // 2, total - total // 2
            out.append((small, big) if heavy_end else (big, small))
        return out
    if kind in ("valid", None):
        amounts = p.valid.paddingAmounts.borderAmounts
        return [(int(a.startEdgeSize), int(a.endEdgeSize)) for a in amounts] or [(0, 0), (0, 0)]
    raise NotImplementedError(f"padding {kind!r}")


@layer("convolution")
def convolution(p, xs, interp, env):
    x, unfold = _as_nchw(xs[0])
    k = [int(v) for v in p.kernelSize] or [3, 3]
    s = [int(v) for v in p.stride] or [1, 1]
    d = [int(v) for v in p.dilationFactor] or [1, 1]
    groups = int(p.nGroups) or 1
    bias = weights(p.bias) if p.hasBias else None
    if p.isDeconvolution:
        w = weights(p.weights, (int(p.kernelChannels), int(p.outputChannels) // groups, *k))
        y = F.conv_transpose2d(x, w, bias, s, 0, 0, groups, d)
        if len(p.outputShape):
            hw = [int(v) for v in p.outputShape]
            pads = [((f - o) // 2, f - o - (f - o) // 2) for f, o in zip(y.shape[2:], hw)]
        elif p.WhichOneof("ConvolutionPaddingType") == "same":
            hw = [st * i for st, i in zip(s, x.shape[2:])]
            pads = [((f - o) // 2, f - o - (f - o) // 2) for f, o in zip(y.shape[2:], hw)]
        else:
            pads = _pads(p.WhichOneof("ConvolutionPaddingType"), p, x.shape[2:], k, s)
        y = y[:, :, pads[0][0]:y.shape[2] - pads[0][1], pads[1][0]:y.shape[3] - pads[1][1]]
        return unfold(y)
    w = weights(p.weights, (int(p.outputChannels), int(p.kernelChannels), *k))
    pads = _pads(p.WhichOneof("ConvolutionPaddingType"), p, x.shape[2:], k, s, d)
    if pads[0][0] == pads[0][1] and pads[1][0] == pads[1][1]:
        return unfold(F.conv2d(x, w, bias, s, [pads[0][0], pads[1][0]], d, groups))
    return unfold(F.conv2d(F.pad(x, torch_pad_arg(pads)), w, bias, s, 0, d, groups))


@layer("innerProduct")
def inner_product(p, xs, interp, env):
    x = xs[0]
    w = weights(p.weights, (int(p.outputChannels), int(p.inputChannels)))
    b = weights(p.bias) if p.hasBias else None
    if x.dim() <= 3:  # rank 1-3: the last dim holds C_in
        return F.linear(x, w, b)
    lead = x.shape[:-3]  # rank 4-5: the last three dims hold C_in
    y = F.linear(x.reshape(-1, int(p.inputChannels)), w, b)
    return y.reshape((*lead, int(p.outputChannels), 1, 1))


@layer("batchedMatmul")
def batched_matmul(p, xs, interp, env):
    if len(xs) == 2:
        a, b = xs
        a = a.transpose(-1, -2) if p.transposeA else a
        b = b.transpose(-1, -2) if p.transposeB else b
        return torch.matmul(a, b)
    x1, x2 = int(p.weightMatrixFirstDimension), int(p.weightMatrixSecondDimension)
    w = weights(p.weights, (x2, x1)).T  # stored column major
    y = torch.matmul(xs[0], w)
    return y + weights(p.bias) if p.hasBias else y


@layer("embeddingND")
def embedding_nd(p, xs, interp, env):
    w = weights(p.weights, (int(p.embeddingSize), int(p.vocabSize)))
    idx = xs[0].squeeze(-1).long()
    y = F.embedding(idx, w.T)
    return y + weights(p.bias) if p.hasBias else y


@layer("embedding")
def embedding(p, xs, interp, env):
    x = xs[0]
    w = weights(p.weights, (int(p.outputChannels), int(p.inputDim)))
    y = F.embedding(x.reshape(x.shape[:-3]).long(), w.T)
    y = y + weights(p.bias) if p.hasBias else y
    return y.reshape((*y.shape, 1, 1))


@layer("batchnorm")
def batchnorm(p, xs, interp, env):
    x = xs[0]
    eps = p.epsilon or 1e-5
    shape = [-1, 1, 1]
    if p.computeMeanVar:
        dims = (-2, -1) if p.instanceNormalization else \
            tuple(d for d in range(x.dim()) if d != x.dim() - 3)
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, keepdim=True, unbiased=False)
    else:
        mean, var = weights(p.mean).reshape(shape), weights(p.variance).reshape(shape)
    return (x - mean) / torch.sqrt(var + eps) * weights(p.gamma).reshape(shape) + \
        weights(p.beta).reshape(shape)


@layer("l2normalize")
def l2normalize(p, xs, interp, env):
    x = xs[0]
    dims = tuple(range(max(x.dim() - 3, 0), x.dim()))
    return x / torch.sqrt((x * x).sum(dim=dims, keepdim=True) + (p.epsilon or 1e-6))


@layer("pooling")
def pooling(p, xs, interp, env):
    x, unfold = _as_nchw(xs[0])
    kind = type(p).PoolingType.Name(p.type)
    if p.globalPooling:
        k, s, pads, ceil = list(x.shape[2:]), [1, 1], [(0, 0), (0, 0)], False
    else:
        k = [int(v) for v in p.kernelSize] or [3, 3]
        s = [int(v) for v in p.stride] or [1, 1]
        ceil = p.WhichOneof("PoolingPaddingType") == "includeLastPixel"
        if ceil:
            amounts = [int(v) for v in p.includeLastPixel.paddingAmounts] or [0, 0]
            pads = [(a, a) for a in amounts]
        else:
            pads = _pads(p.WhichOneof("PoolingPaddingType"), p, x.shape[2:], k, s)
    symmetric = all(b == e for b, e in pads) and all(b <= kk // 2 for (b, _), kk in zip(pads, k))
    pad_arg = [b for b, _ in pads] if symmetric else [0, 0]
    if kind == "MAX":
        if not symmetric:
            x = F.pad(x, torch_pad_arg(pads), value=-math.inf)
        return unfold(F.max_pool2d(x, k, s, pad_arg, 1, ceil))
    if kind == "L2":
        sq = x * x if symmetric else F.pad(x * x, torch_pad_arg(pads))
        return unfold(torch.sqrt(F.avg_pool2d(sq, k, s, pad_arg, ceil, True, 1)))
    if symmetric:
        return unfold(F.avg_pool2d(x, k, s, pad_arg, ceil, not p.avgPoolExcludePadding))
    padded = F.pad(x, torch_pad_arg(pads))
    sums = F.avg_pool2d(padded, k, s, 0, ceil, True, 1)
    if p.avgPoolExcludePadding:
        ones = F.pad(torch.ones((1, 1, *x.shape[2:])), torch_pad_arg(pads))
        return unfold(sums / F.avg_pool2d(ones, k, s, 0, ceil, True, 1))
    return unfold(sums / (k[0] * k[1]))


@layer("padding")
def padding(p, xs, interp, env):
    x = xs[0]
    amounts = [(int(a.startEdgeSize), int(a.endEdgeSize))
               for a in p.paddingAmounts.borderAmounts] or [(0, 0), (0, 0)]
    kind = p.WhichOneof("PaddingType")
    if kind == "constant":
        return F.pad(x, torch_pad_arg(amounts), value=p.constant.value)
    y, unfold = _as_nchw(x)
    mode = {"reflection": "reflect", "replication": "replicate"}[kind]
    return unfold(F.pad(y, torch_pad_arg(amounts), mode=mode))


@layer("upsample")
def upsample(p, xs, interp, env):
    x, unfold = _as_nchw(xs[0])
    factors = [float(v) for v in (p.fractionalScalingFactor or p.scalingFactor)] or [1.0, 1.0]
    size = [int(math.floor(d * f)) for d, f in zip(x.shape[2:], factors)]
    if type(p).InterpolationMode.Name(p.mode) == "NN":
        return unfold(F.interpolate(x, size=size, mode="nearest"))
    align = type(p).LinearUpsampleMode.Name(p.linearUpsampleMode) == "ALIGN_CORNERS_TRUE"
    return unfold(F.interpolate(x, size=size, mode="bilinear", align_corners=align))


@layer("scale")
def scale(p, xs, interp, env):
    x = xs[0]
    shape = [int(v) for v in p.shapeScale] or [1]
    y = x * weights(p.scale, shape if len(shape) > 1 else None).reshape(
        shape if len(shape) == 3 else ([-1, 1, 1] if shape[0] > 1 else []))
    if p.hasBias:
        bshape = [int(v) for v in p.shapeBias] or [1]
        y = y + weights(p.bias).reshape(bshape if len(bshape) == 3 else
                                        ([-1, 1, 1] if bshape[0] > 1 else []))
    return y


def _pads3d(p, kind: str) -> tuple[str, list[int]]:
    """A 3-D layer's padding as a MIL pad type and [front, back, top, bottom, left, right]."""
    custom = [int(p.customPaddingFront), int(p.customPaddingBack), int(p.customPaddingTop),
              int(p.customPaddingBottom), int(p.customPaddingLeft), int(p.customPaddingRight)]
    return kind.lower(), custom


@layer("convolution3d")
def convolution3d(p, xs, interp, env):
    """3-D convolution (or transposed) of [B, C, D, H, W]; "same" puts an odd padding unit
    after."""
    x = xs[0]
    k = [int(p.kernelDepth), int(p.kernelHeight), int(p.kernelWidth)]
    s = [int(p.strideDepth) or 1, int(p.strideHeight) or 1, int(p.strideWidth) or 1]
    d = [int(p.dilationDepth) or 1, int(p.dilationHeight) or 1, int(p.dilationWidth) or 1]
    groups = int(p.nGroups) or 1
    cin, cout = int(p.inputChannels), int(p.outputChannels)
    bias = weights(p.bias) if p.hasBias else None
    pad_type, pad = _pads3d(p, type(p).PaddingType.Name(p.paddingType))
    if p.isDeconvolution:  # stored as [C_in, C_out / groups, kD, kH, kW]
        w = weights(p.weights, (cin, cout // groups, *k))
        shape = [0, 0, *(int(v) for v in p.outputShape)] if len(p.outputShape) else None
        return mil_conv.conv_transpose(x, w, bias, pad, shape, pad_type, s, d, groups)
    w = weights(p.weights, (cout, cin // groups, *k))
    return mil_conv.conv(x, w, bias, s, pad_type, pad, d, groups)


@layer("pooling3d")
def pooling3d(p, xs, interp, env):
    """MAX or AVERAGE pooling of [B, C, D, H, W] (max ignores the padding)."""
    x = xs[0]
    k = [int(p.kernelDepth), int(p.kernelHeight), int(p.kernelWidth)]
    s = [int(p.strideDepth) or 1, int(p.strideHeight) or 1, int(p.strideWidth) or 1]
    pad_type, pad = _pads3d(p, type(p).Pooling3DPaddingType.Name(p.paddingType))
    if type(p).PoolingType3D.Name(p.type) == "MAX":
        return mil_pool.max_pool(x, k, s, pad_type, pad, False)
    return mil_pool.avg_pool(x, k, s, pad_type, pad, bool(p.countExcludePadding), False)


@layer("globalPooling3d")
def global_pooling3d(p, xs, interp, env):
    x, dims = xs[0], (-3, -2, -1)
    if type(p).GlobalPoolingType3D.Name(p.type) == "MAX":
        return x.amax(dim=dims, keepdim=True)
    return x.mean(dim=dims, keepdim=True)
