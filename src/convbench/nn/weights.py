"""Decoding `WeightParams`: fp32, fp16, and linearly or LUT-quantised raw bytes."""

from __future__ import annotations

import numpy as np
import torch

from convbench.mil.ops.constexpr import unpack_bits


def weights(w, shape=None, count: int | None = None) -> torch.Tensor:
    """A WeightParams message as an fp32 tensor (reshaped to `shape` when given)."""
    if len(w.floatValue):
        arr = np.asarray(w.floatValue, dtype=np.float32)
    elif len(w.float16Value):
        arr = np.frombuffer(w.float16Value, dtype=np.float16).astype(np.float32)
    elif len(w.rawValue):
        arr = _dequantize(w, count if count is not None else
                          (int(np.prod(shape)) if shape is not None else None))
    else:
        arr = np.zeros(0, dtype=np.float32)
    t = torch.from_numpy(np.ascontiguousarray(arr))
    return t.reshape(shape) if shape is not None else t


def _dequantize(w, count: int | None) -> np.ndarray:
    q = w.quantization
    bits = int(q.numberOfBits)
    if not bits:
        raise NotImplementedError("raw weights without quantization parameters")
    raw = np.frombuffer(w.rawValue, dtype=np.uint8)
    n = count if count is not None else raw.size * 8 // bits
    values = raw[:n].astype(np.int64) if bits == 8 else unpack_bits(raw, bits, n)
    kind = q.WhichOneof("QuantizationType")
    if kind == "linearQuantization":
        scale = np.asarray(q.linearQuantization.scale, dtype=np.float32)
        bias = np.asarray(q.linearQuantization.bias, dtype=np.float32)
        if scale.size > 1:  # per output channel: values are laid out channel-major
            per = n // scale.size
            scale, bias = np.repeat(scale, per), np.repeat(bias, per)
        return (values * scale + bias).astype(np.float32)
    if kind == "lookupTableQuantization":
        lut = np.asarray(q.lookupTableQuantization.floatValue, dtype=np.float32)
        return lut[values]
    raise NotImplementedError(f"weight quantization {kind!r}")
