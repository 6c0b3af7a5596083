"""Compressed weights (iOS16 constexpr_ops.py, iOS18 compression.py), decompressed at load."""

from __future__ import annotations

import numpy as np
import torch

from convbench.mil.ops import op
from convbench.mil.ops._util import ints, scalar


def _np(v):
    return v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def _along(v: np.ndarray, rank: int, axis: int) -> np.ndarray:
    """A scalar or a vector along `axis`, shaped to broadcast against a rank-`rank` tensor."""
    if v.ndim == 0 or v.ndim == rank:
        return v
    shape = [1] * rank
    shape[axis] = -1
    return v.reshape(shape)


def unpack_bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """`count` unsigned `nbits`-bit values packed least significant bit first."""
    bits = np.unpackbits(packed.astype(np.uint8), bitorder="little")[: count * nbits]
    return (bits.reshape(count, nbits) << np.arange(nbits)).sum(axis=1)


@op("constexpr_affine_dequantize", constexpr=True)
def constexpr_affine_dequantize(quantized_data, zero_point, scale, axis):
    q, zp, s = _np(quantized_data), _np(zero_point), _np(scale)
    a = int(scalar(axis)) % q.ndim
    out = (q.astype(np.float32) - _along(zp, q.ndim, a).astype(np.float32)) * _along(s, q.ndim, a)
    return out.astype(s.dtype)


@op("constexpr_cast", constexpr=True)
def constexpr_cast(source_val, output_dtype):
    return _np(source_val).astype({"fp16": np.float16, "fp32": np.float32}[output_dtype])


@op("constexpr_lut_to_dense", constexpr=True)
def constexpr_lut_to_dense(lut, indices, shape=None, vector_axis=None):
    lut, idx = _np(lut), _np(indices)
    if shape is not None:  # iOS16: a flat LUT, indices packed into uint8
        dims = ints(shape)
        nbits = int(np.log2(lut.size))
        return lut[unpack_bits(idx, nbits, int(np.prod(dims)))].reshape(dims)
    # iOS18: lut <*blocks, palettes, vector>, indices <*shape>, one palette per block
    if lut.shape[-1] != 1:
        raise NotImplementedError("vector palettization (LUT vector size > 1)")
    blocks = lut.shape[:-2]
    block_size = [d // b for d, b in zip(idx.shape, blocks)]
    grids = np.meshgrid(*[np.arange(d) // s for d, s in zip(idx.shape, block_size)],
                        indexing="ij")
    return lut[(*grids, idx.astype(np.int64), np.zeros_like(idx, dtype=np.int64))]


@op("constexpr_blockwise_shift_scale", constexpr=True)
def constexpr_blockwise_shift_scale(data, scale, offset):
    d, s = _np(data), _np(scale)
    o = None if offset is None else _np(offset)

    def repeat(v):
        for ax, (n, m) in enumerate(zip(d.shape, v.shape)):
            if n // m > 1:
                v = np.repeat(v, n // m, axis=ax)
        return v

    out = d.astype(s.dtype)
    if o is not None:
        out = out - repeat(o).astype(s.dtype)
    return out * repeat(s)


@op("constexpr_sparse_to_dense", constexpr=True)
def constexpr_sparse_to_dense(nonzero_data, mask, shape=None):
    values, m = _np(nonzero_data), _np(mask)
    if shape is not None:  # iOS16: mask packed into uint8 bits
        dims = ints(shape)
        keep = unpack_bits(m, 1, int(np.prod(dims))).astype(bool).reshape(dims)
    else:
        keep = m.astype(bool)
    out = np.zeros(keep.shape, dtype=values.dtype)
    out[keep] = values
    return out


def _block_of(mask: np.ndarray, per_block: np.ndarray) -> tuple:
    """For each nonzero of `mask` (row-major), the index of its block in `per_block`, whose
    leading dims divide mask's dims (a block is mask.shape / per_block.shape[:rank])."""
    where = np.nonzero(mask)
    size = [d // b for d, b in zip(mask.shape, per_block.shape[:mask.ndim])]
    return tuple(w // s for w, s in zip(where, size))


@op("constexpr_lut_to_sparse", constexpr=True)
def constexpr_lut_to_sparse(indices_mask, indices_nonzero_data, lut, vector_axis=None):
    """(mask, the LUT's value of each nonzero index): iOS18 sparse palettization."""
    m, idx, table = _np(indices_mask).astype(bool), _np(indices_nonzero_data), _np(lut)
    if table.shape[-1] != 1:
        raise NotImplementedError("vector palettization (LUT vector size > 1)")
    blocks = _block_of(m, table)
    return m, table[(*blocks, idx.astype(np.int64), np.zeros_like(idx, dtype=np.int64))]


@op("constexpr_sparse_blockwise_shift_scale", constexpr=True)
def constexpr_sparse_blockwise_shift_scale(data_mask, nonzero_data, scale, offset=None):
    """(mask, (nonzero - offset) * scale with each value's block's offset and scale)."""
    m, values, s = _np(data_mask).astype(bool), _np(nonzero_data), _np(scale)
    blocks = _block_of(m, s)
    out = values.astype(s.dtype)
    if offset is not None:
        out = out - _np(offset)[blocks].astype(s.dtype)
    return m, out * s[blocks]
