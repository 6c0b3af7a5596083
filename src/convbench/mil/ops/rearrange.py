"""Rearranging and updating tensors beyond shape.py: space/batch moves, pixel unshuffle,
partial reversal, sliding windows, N-d scatter, slice update, fill_like (iOS15-18
tensor_transformation.py, scatter_gather.py, tensor_operation.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convbench.mil.ops import op
from convbench.mil.ops._util import axis, flags, ints, scalar
from convbench.mil.ops.shape import _scatter_into, _updates


@op("space_to_batch", moves=True)
def space_to_batch(x, block_shape, paddings):
    """TensorFlow's space_to_batch_nd on [n, C, H, W]: the block offset (bh, bw) becomes the
    outer part of the new batch index, (bh * bw_size + bw) * n + b."""
    bh, bw = ints(block_shape)
    (t, b), (left, r) = ints(paddings)[0:2], ints(paddings)[2:4]
    x = F.pad(x, [left, r, t, b])
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // bh, bh, w // bw, bw).permute(3, 5, 0, 1, 2, 4)
    return x.reshape(bh * bw * n, c, h // bh, w // bw)


@op("batch_to_space", moves=True)
def batch_to_space(x, block_shape, crops):
    bh, bw = ints(block_shape)
    (t, b), (left, r) = ints(crops)[0:2], ints(crops)[2:4]
    nn, c, h, w = x.shape
    n = nn // (bh * bw)
    x = x.reshape(bh, bw, n, c, h, w).permute(2, 3, 4, 0, 5, 1).reshape(n, c, h * bh, w * bw)
    return x[:, :, t:h * bh - b, left:w * bw - r]


@op("pixel_unshuffle", moves=True)
def pixel_unshuffle(x, downscale_factor):
    return F.pixel_unshuffle(x, int(scalar(downscale_factor)))


@op("reverse_sequence", moves=True)
def reverse_sequence(x, lengths, seq_axis, batch_axis):
    """Along `batch_axis`, slice i has its first lengths[i] elements along `seq_axis`
    reversed; the rest stay."""
    sa, ba = axis(seq_axis, x.dim()), axis(batch_axis, x.dim())
    n = x.shape[sa]
    pos = torch.arange(n)
    lens = lengths.long().reshape(-1, 1)
    src = torch.where(pos < lens, lens - 1 - pos, pos)  # [batch, seq]
    shape = [1] * x.dim()
    shape[ba], shape[sa] = x.shape[ba], n
    index = (src if ba < sa else src.T).reshape(shape).expand(x.shape)
    return torch.gather(x, sa, index)


@op("sliding_windows", moves=True)
def sliding_windows(x, axis, size, stride):
    a = _axis(axis, x.dim())
    # unfold appends the window dim last; MIL puts it right after the windows' axis
    return x.unfold(a, int(scalar(size)), int(scalar(stride))).movedim(-1, a + 1)


def _axis(a, rank):
    return axis(a, rank)


@op("scatter_nd", moves=_updates)
def scatter_nd(data, indices, updates, mode, validate_indices=None):
    """data[indices[..., :]] (op)= updates, the last dim of `indices` indexing data's leading
    dims (negative indices count from the end)."""
    k = indices.shape[-1]
    lead = data.shape[:k]
    idx = indices.long().reshape(-1, k)
    idx = torch.where(idx < 0, idx + torch.tensor(lead), idx)
    strides = torch.tensor([int(torch.tensor(lead[i + 1:]).prod()) for i in range(k)])
    flat_idx = (idx * strides).sum(-1)
    flat = data.reshape(-1, *data.shape[k:])
    upd = updates.reshape(-1, *data.shape[k:]).to(data.dtype)
    index = flat_idx.reshape(-1, *([1] * (flat.dim() - 1))).expand(upd.shape)
    return _scatter_into(flat, 0, index, upd, mode).reshape(data.shape)


@op("slice_update")
def slice_update(x, update, begin, end, stride, begin_mask, end_mask, squeeze_mask):
    """x with x[begin:end:stride, ...] (as slice_by_index reads it) replaced by `update`."""
    rank = x.dim()
    b, e = ints(begin), ints(end)
    s = ints(stride) if stride is not None else [1] * rank
    bm, em, sm = flags(begin_mask, rank), flags(end_mask, rank), flags(squeeze_mask, rank)
    index = []
    for d in range(rank):
        size = x.shape[d]
        if sm[d]:
            index.append(torch.tensor([b[d] + size if b[d] < 0 else b[d]]))
            continue
        start, stop, step = slice(None if bm[d] else b[d], None if em[d] else e[d],
                                  s[d]).indices(size)
        index.append(torch.arange(start, stop, step))
    out = x.clone()
    shape = [len(i) for i in index]
    out[torch.meshgrid(*index, indexing="ij")] = update.to(x.dtype).reshape(shape)
    return out


@op("fill_like")
def fill_like(ref_tensor, value):
    v = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    return torch.full(ref_tensor.shape, v.item(), dtype=v.dtype)


@op("reshape_like", moves=True)
def reshape_like(x, ref_tensors, begins, ends, end_masks):
    """x reshaped to the concatenation of ref_tensors[i].shape[begins[i]:ends[i]] (to the end
    where end_masks[i])."""
    shape: list[int] = []
    for ref, b, e, m in zip(ref_tensors, begins, ends, end_masks):
        dims = list(ref.shape)
        shape += dims[int(scalar(b)):] if bool(scalar(m)) else dims[int(scalar(b)):int(scalar(e))]
    return x.reshape(shape)
