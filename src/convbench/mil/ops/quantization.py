"""Activation quantization and weight-quantized convolution (iOS17 quantization_ops.py, iOS15
conv_quantized)."""

from __future__ import annotations

import torch

from convbench.mil.ops import op
from convbench.mil.ops._util import axis
from convbench.mil.ops.conv import conv

_RANGE = {"int8": (-128, 127), "uint8": (0, 255)}


def _along(v, x, a):
    """A scalar, or a vector along axis `a`, shaped to broadcast against x."""
    if v is None or v.dim() == 0 or v.numel() == 1:
        return v
    shape = [1] * x.dim()
    shape[axis(a, x.dim())] = -1
    return v.reshape(shape)


@op("quantize")
def quantize(input, scale, output_dtype, zero_point=None, axis=None):
    """clip(round(input / scale) + zero_point) in int8 or uint8 (round half to even, as
    numpy and coremltools' own value inference round)."""
    lo, hi = _RANGE[output_dtype]
    q = torch.round(input / _along(scale.to(input.dtype), input, axis))
    if zero_point is not None:
        q = q + _along(zero_point.to(input.dtype), input, axis)
    return q.clamp(lo, hi).to({"int8": torch.int8, "uint8": torch.uint8}[output_dtype])


@op("dequantize")
def dequantize(input, scale, zero_point=None, axis=None):
    x = input.to(torch.float32)
    if zero_point is not None:
        x = x - _along(zero_point.to(torch.float32), x, axis)
    return x * _along(scale.to(torch.float32), x, axis)


@op("conv_quantized")
def conv_quantized(x, weight, bias, quantization_type, nbits, quant_scale, quant_bias, strides,
                   pad_type, pad, dilations, groups):
    """conv with weights W_quantized * scale + bias ("linear"; scale and bias scalars or per
    output channel); "lut": weights index the table quant_scale."""
    if quantization_type == "linear":
        shape = [-1] + [1] * (weight.dim() - 1) if quant_scale.numel() > 1 else []
        w = weight.to(x.dtype) * quant_scale.to(x.dtype).reshape(shape) \
            + quant_bias.to(x.dtype).reshape(shape if quant_bias.numel() > 1 else [])
    elif quantization_type == "lut":
        w = quant_scale.reshape(-1).to(x.dtype)[weight.long()]
    else:
        raise ValueError(f"unknown quantization_type {quantization_type!r}")
    del nbits  # the stored integers carry it
    return conv(x, w, bias, strides, pad_type, pad, dilations, groups)
