"""Tensor transformations and operations: shapes, slicing, gathering, padding
(iOS15 tensor_transformation.py, tensor_operation.py, scatter_gather.py)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from convbench.mil.ops import op, planner
from convbench.mil.ops._util import axis, flags, ints, scalar


@op("reshape", moves=True)
def reshape(x, shape):
    s = ints(shape)
    if len(s) == x.dim():  # 0 inherits the input's dimension when ranks agree
        s = [x.shape[i] if v == 0 else v for i, v in enumerate(s)]
    return x.reshape(s)


@planner("reshape")
def plan_reshape(shape):
    """A constant shape read once."""
    s = ints(shape)
    if 0 in s:
        return None  # inherits from the input: read per run
    return lambda x: x.reshape(s)


@op("transpose", moves=True)
def transpose(x, perm):
    return x.permute(ints(perm))


@op("squeeze", moves=True)
def squeeze(x, axes):
    if axes is None:
        return x.reshape([d for d in x.shape if d != 1])
    dims = {axis(a, x.dim()) for a in ints(axes)}
    return x.reshape([d for i, d in enumerate(x.shape) if i not in dims])


@op("expand_dims", moves=True)
def expand_dims(x, axes):
    rank = x.dim() + len(ints(axes))
    for a in sorted(axis(a, rank) for a in ints(axes)):
        x = x.unsqueeze(a)
    return x


@op("flatten2d", moves=True)
def flatten2d(x, axis):
    a = int(scalar(axis)) % x.dim() if x.dim() else 0
    return x.reshape(math.prod(x.shape[:a]), math.prod(x.shape[a:]))


@op("concat", moves=True)
def concat(values, axis, interleave):
    values = [v if isinstance(v, torch.Tensor) else torch.as_tensor(v) for v in values]
    dtype = values[0].dtype
    values = [v.to(dtype).reshape(v.shape if v.dim() else (1,)) for v in values]
    a = _axis(axis, values[0].dim())
    if bool(scalar(interleave)):
        # [a0, b0, a1, b1, ...] along the axis: stack after the axis, then merge
        stacked = torch.stack(values, dim=a + 1)
        shape = list(values[0].shape)
        shape[a] *= len(values)
        return stacked.reshape(shape)
    return torch.cat(values, dim=a)


@planner("concat", inputs=("values",))
def plan_concat(axis, interleave):
    """A constant axis read once; tensors of one dtype and rank go straight to `torch.cat`
    (DenseNet121 runs 58 concats)."""
    if bool(scalar(interleave)):
        return None
    a = int(scalar(axis))

    def run(values):
        first = values[0]
        if isinstance(first, torch.Tensor) and first.dim() and all(
                isinstance(v, torch.Tensor) and v.dtype == first.dtype
                and v.dim() == first.dim() for v in values):
            return torch.cat(values, dim=a)
        return concat(values, a, False)

    return run


def _axis(a, rank):
    return axis(a, rank)


@op("stack", moves=True)
def stack(values, axis):
    return torch.stack(values, dim=_axis(axis, values[0].dim() + 1))


@op("split", moves=True)
def split(x, num_splits, split_sizes, axis):
    a = _axis(axis, x.dim())
    if split_sizes is not None:
        return tuple(torch.split(x, ints(split_sizes), dim=a))
    return tuple(torch.chunk(x, int(scalar(num_splits)), dim=a))


@op("slice_by_index", moves=True)
def slice_by_index(x, begin, end, stride, begin_mask, end_mask, squeeze_mask):
    """numpy slicing x[b0:e0:s0, ...]; masks drop begin/end; squeeze_mask picks one index."""
    rank = x.dim()
    b, e = ints(begin), ints(end)
    s = ints(stride) if stride is not None else [1] * rank
    bm, em, sm = flags(begin_mask, rank), flags(end_mask, rank), flags(squeeze_mask, rank)
    for d in range(rank):
        size = x.shape[d]
        if sm[d]:
            i = b[d] + size if b[d] < 0 else b[d]
            x = x.narrow(d, i, 1)
            continue
        start, stop, step = slice(None if bm[d] else b[d], None if em[d] else e[d],
                                  s[d]).indices(size)
        if step > 0:
            x = x[(slice(None),) * d + (slice(start, stop, step),)]
        else:
            x = x.index_select(d, torch.arange(start, stop, step, dtype=torch.long))
    if any(sm):
        x = x.reshape([n for i, n in enumerate(x.shape) if not sm[i]])
    return x


@op("slice_by_size", moves=True)
def slice_by_size(x, begin, size):
    for d, (b, n) in enumerate(zip(ints(begin), ints(size))):
        b = b + x.shape[d] if b < 0 else b
        x = x.narrow(d, b, x.shape[d] - b if n == -1 else n)
    return x


def _index(indices, size):
    idx = indices.long()
    return torch.where(idx < 0, idx + size, idx)


@op("gather", moves=True)
def gather(x, indices, axis, batch_dims=None, validate_indices=None):
    if batch_dims is not None and int(scalar(batch_dims)) != 0:
        raise NotImplementedError("gather with batch_dims > 0")
    a = _axis(axis, x.dim())
    idx = _index(torch.as_tensor(indices), x.shape[a])
    out = x.index_select(a, idx.reshape(-1))
    return out.reshape(list(x.shape[:a]) + list(idx.shape) + list(x.shape[a + 1:]))


@op("gather_along_axis", moves=True)
def gather_along_axis(x, indices, axis, validate_indices=None):
    a = _axis(axis, x.dim())
    return torch.gather(x, a, _index(indices, x.shape[a]))


@op("gather_nd", moves=True)
def gather_nd(x, indices, batch_dims=None, validate_indices=None):
    if batch_dims is not None and int(scalar(batch_dims)) != 0:
        raise NotImplementedError("gather_nd with batch_dims > 0")
    idx = indices.long()
    return x[tuple(idx[..., i] for i in range(idx.shape[-1]))]


_SCATTER = {"update": None, "add": "sum", "mul": "prod", "max": "amax", "min": "amin"}


def _updates(fixed) -> bool:
    """A scatter that writes its updates as they are (no arithmetic) only moves values."""
    return fixed.get("mode") == "update"


def _scatter_into(data, a, index, updates, mode, in_place=False):
    """The scatter, into a copy of `data` or, `in_place`, into `data` itself (the compiled
    engine's choice when nothing reads `data` afterwards: the same values, without copying
    all of it for each write, as a loop that fills a sequence one step at a time does)."""
    reduce = data.scatter_reduce_ if in_place else data.scatter_reduce
    if mode == "sub":
        return reduce(a, index, -updates, "sum")
    if mode == "div":
        return reduce(a, index, 1.0 / updates, "prod")
    if mode not in _SCATTER:
        raise ValueError(f"unknown scatter mode {mode!r}")
    if mode == "update":
        return (data.scatter_ if in_place else data.scatter)(a, index, updates)
    return reduce(a, index, updates, _SCATTER[mode])


@op("scatter", moves=_updates)
def scatter(data, indices, updates, axis, mode, validate_indices=None, in_place=False):
    a = _axis(axis, data.dim())
    idx = _index(indices, data.shape[a]).reshape(-1)
    shape = [1] * data.dim()
    shape[a] = -1
    index = idx.reshape(shape).expand(updates.shape)
    return _scatter_into(data, a, index, updates.to(data.dtype), mode, in_place)


@op("scatter_along_axis", moves=_updates)
def scatter_along_axis(data, indices, updates, axis, mode, validate_indices=None,
                       in_place=False):
    a = _axis(axis, data.dim())
    return _scatter_into(data, a, _index(indices, data.shape[a]), updates.to(data.dtype), mode,
                         in_place)


#: ops that can write into their `data` input (`in_place=True`) when it is not read again
IN_PLACE = ("scatter", "scatter_along_axis")

_COMBINE = {"add": torch.add, "sub": lambda c, u: c + (-u), "mul": torch.mul,
            "div": lambda c, u: c * (1.0 / u), "max": torch.maximum, "min": torch.minimum}


def scatter_into_stored(data, indices, updates, axis, mode, validate_indices=None):
    """`scatter` of fp32 `updates` into fp16 `data`, in place, as the interpreter computes it
    (data widened, combined in fp32, the whole rounded back to fp16): only the written
    positions change, each rounded once, so only they are widened. Distinct indices only (a
    repeated one sums its updates first): otherwise the widened way."""
    a = _axis(axis, data.dim())
    idx = _index(indices, data.shape[a]).reshape(-1)
    shape = [1] * data.dim()
    shape[a] = -1
    index = idx.reshape(shape).expand(updates.shape)
    if mode not in _COMBINE or (idx.numel() > 1 and idx.unique().numel() != idx.numel()):
        wide = _scatter_into(data.float(), a, index, updates, mode, in_place=True)
        return data.copy_(wide)
    current = data.gather(a, index).float()
    return data.scatter_(a, index, _COMBINE[mode](current, updates).to(data.dtype))


def _pads_with_stored_values(constants) -> bool:
    """A pad only moves values unless it fills with a constant fp16 cannot hold (a program
    whose values are fp16 pads with an fp16 constant: always)."""
    v = constants.get("constant_val")
    if constants.get("mode", "constant") != "constant" or v is None:
        return True
    v = float(scalar(v))
    return math.isnan(v) or float(torch.tensor(v, dtype=torch.float16)) == v


@op("pad", moves=_pads_with_stored_values)
def pad(x, pad, mode, constant_val):
    p = ints(pad)
    pairs = [(p[2 * i], p[2 * i + 1]) for i in range(len(p) // 2)]
    arg = []
    for b, e in reversed(pairs):  # F.pad lists the last dim first
        arg += [b, e]
    if mode == "constant":
        return F.pad(x, arg, value=float(scalar(constant_val)))
    # torch's reflect/replicate pad wants a batch and channel axis before the padded dims
    lead = x.dim() - len(pairs)
    y = x.reshape((1,) * max(0, 2 - lead) + tuple(x.shape)) if lead < 2 else x
    y = F.pad(y, arg, mode={"reflect": "reflect", "replicate": "replicate"}[mode])
    return y.reshape(y.shape[max(0, 2 - lead):]) if lead < 2 else y


@op("fill")
def fill(shape, value):
    v = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    return torch.full(ints(shape), scalar(v), dtype=v.dtype)


@op("shape")
def shape(x):
    return torch.tensor(list(x.shape), dtype=torch.int32)


@op("tile", moves=True)
def tile(x, reps):
    return x.repeat(ints(reps))


@op("range_1d")
def range_1d(end, start, step):
    dtype = torch.float32 if any(isinstance(v, torch.Tensor) and v.is_floating_point()
                                 for v in (end, start, step)) else torch.int32
    return torch.arange(scalar(start), scalar(end), scalar(step), dtype=dtype)


@op("reverse", moves=True)
def reverse(x, axes):
    dims = list(range(x.dim())) if axes is None else [axis(a, x.dim()) for a in ints(axes)]
    return torch.flip(x, dims)


@op("depth_to_space", moves=True)
def depth_to_space(x, block_size):
    """TensorFlow's DepthToSpace in NCHW ("DCR": the block offset is the outer part of the
    channel index), which coremltools' TF frontend maps here; PyTorch's pixel_shuffle ("CRD")
    is the `pixel_shuffle` op."""
    b = int(scalar(block_size))
    n, c, h, w = x.shape
    y = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (b * b), h * b, w * b)


@op("space_to_depth", moves=True)
def space_to_depth(x, block_size):
    """TensorFlow's SpaceToDepth in NCHW: the inverse of `depth_to_space`."""
    b = int(scalar(block_size))
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


@op("pixel_shuffle", moves=True)
def pixel_shuffle(x, upscale_factor):
    return F.pixel_shuffle(x, int(scalar(upscale_factor)))


@op("cumsum")
def cumsum(x, axis, exclusive, reverse):
    a = _axis(axis, x.dim())
    y = torch.flip(x, [a]) if bool(scalar(reverse)) else x
    out = torch.cumsum(y, dim=a).to(x.dtype)
    if bool(scalar(exclusive)):
        out = out - y
    return torch.flip(out, [a]) if bool(scalar(reverse)) else out


@op("topk")
def topk(x, k, axis, ascending, sort=None, return_indices=None, output_indices_dtype=None):
    a = _axis(axis, x.dim())
    kk = int(scalar(k))
    kk = x.shape[a] if kk == -1 else kk
    values, indices = torch.topk(x, kk, dim=a, largest=not bool(scalar(ascending)),
                                 sorted=True if sort is None else bool(scalar(sort)))
    return values, indices.to(torch.int32)


@op("argsort")
def argsort(x, axis, ascending):
    a = _axis(axis, x.dim())
    return torch.argsort(x, dim=a, descending=not bool(scalar(ascending)), stable=True) \
        .to(torch.int32)


@op("one_hot")
def one_hot(indices, one_hot_vector_size, axis, on_value, off_value):
    n = int(scalar(one_hot_vector_size))
    hot = F.one_hot(indices.long(), n)
    dtype = on_value.dtype if isinstance(on_value, torch.Tensor) else torch.float32
    out = torch.where(hot.bool(), torch.as_tensor(scalar(on_value), dtype=dtype),
                      torch.as_tensor(scalar(off_value), dtype=dtype))
    return out.movedim(-1, _axis(axis, out.dim()))


@op("band_part")
def band_part(x, lower, upper):
    lo, up = int(scalar(lower)), int(scalar(upper))
    m, n = x.shape[-2:]
    i = torch.arange(m).reshape(-1, 1)
    j = torch.arange(n).reshape(1, -1)
    keep = ((lo < 0) | (i - j <= lo)) & ((up < 0) | (j - i <= up))
    return torch.where(keep, x, torch.zeros_like(x))


@op("non_zero")
def non_zero(x):
    return torch.nonzero(x).to(torch.int32)




