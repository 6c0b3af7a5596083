"""Shape, slicing, gathering, constants and reductions (the ND layers of spec version 4+)."""

from __future__ import annotations

import torch

from convbench.mil.ops import shape as mil_shape
from convbench.nn.layers import layer
from convbench.nn.weights import weights


def _ints(v) -> list[int]:
    return [int(x) for x in v]


@layer("reshapeStatic")
def reshape_static(p, xs, interp, env):
    return xs[0].reshape(_ints(p.targetShape))


@layer("rankPreservingReshape")
def rank_preserving_reshape(p, xs, interp, env):
    x = xs[0]
    shape = [x.shape[i] if v == 0 else v for i, v in enumerate(_ints(p.targetShape))]
    return x.reshape(shape)


@layer("reshapeDynamic")
def reshape_dynamic(p, xs, interp, env):
    return xs[0].reshape(_ints(xs[1].tolist()))


@layer("reshapeLike")
def reshape_like(p, xs, interp, env):
    return xs[0].reshape(xs[1].shape)


@layer("flattenTo2D")
def flatten_to_2d(p, xs, interp, env):
    x = xs[0]
    a = int(p.axis) % x.dim() if x.dim() else 0
    return x.reshape(int(torch.tensor(x.shape[:a]).prod()), -1)


@layer("flatten")
def flatten(p, xs, interp, env):
    x = xs[0]  # [..., C, H, W] -> [..., C*H*W, 1, 1], channel-first or channel-last order
    if type(p).FlattenOrder.Name(p.mode) == "CHANNEL_LAST":
        x = x.movedim(-3, -1)
    return x.reshape((*x.shape[:-3], -1, 1, 1))


@layer("transpose")
def transpose(p, xs, interp, env):
    return xs[0].permute(_ints(p.axes))


@layer("concatND")
def concat_nd(p, xs, interp, env):
    return torch.cat(xs, dim=int(p.axis))


@layer("concat")
def concat(p, xs, interp, env):
    return torch.cat(xs, dim=-5 if p.sequenceConcat else -3)


@layer("splitND")
def split_nd(p, xs, interp, env):
    x, a = xs[0], int(p.axis)
    if len(p.splitSizes):
        return list(torch.split(x, _ints(p.splitSizes), dim=a))
    return list(torch.chunk(x, int(p.numSplits), dim=a))


@layer("split")
def split(p, xs, interp, env):
    return list(torch.chunk(xs[0], int(p.nOutputs), dim=-3))


@layer("stack")
def stack(p, xs, interp, env):
    return torch.stack(xs, dim=int(p.axis))


@layer("squeeze")
def squeeze(p, xs, interp, env):
    return mil_shape.squeeze(xs[0], None if p.squeezeAll else _ints(p.axes))


@layer("expandDims")
def expand_dims(p, xs, interp, env):
    return mil_shape.expand_dims(xs[0], _ints(p.axes))


def _masks(v, n):
    return [bool(b) for b in v] if len(v) else [False] * n


@layer("sliceStatic")
def slice_static(p, xs, interp, env):
    x = xs[0]
    n = x.dim()
    return mil_shape.slice_by_index(x, _ints(p.beginIds), _ints(p.endIds),
                                    _ints(p.strides) or None, _masks(p.beginMasks, n),
                                    _masks(p.endMasks, n), _masks(p.squeezeMasks, n))


@layer("sliceDynamic")
def slice_dynamic(p, xs, interp, env):
    x = xs[0]
    n = x.dim()
    begin = _ints(xs[1].tolist())
    end = _ints(xs[2].tolist()) if len(xs) > 2 else _ints(p.endIds)
    strides = _ints(xs[3].tolist()) if len(xs) > 3 else (_ints(p.strides) or None)
    return mil_shape.slice_by_index(x, begin, end, strides, _masks(p.beginMasks, n),
                                    _masks(p.endMasks, n), _masks(p.squeezeMasks, n))


@layer("slice")
def slice_(p, xs, interp, env):
    x = xs[0]
    axis = {0: -3, 1: -2, 2: -1}[p.axis]
    index = [slice(None)] * x.dim()
    index[axis] = slice(int(p.startIndex), int(p.endIndex), int(p.stride) or 1)
    return x[tuple(index)]


@layer("gather")
def gather(p, xs, interp, env):
    return mil_shape.gather(xs[0], xs[1].long(), int(p.axis))


@layer("gatherAlongAxis")
def gather_along_axis(p, xs, interp, env):
    return mil_shape.gather_along_axis(xs[0], xs[1].long(), int(p.axis))


_MODES = {0: "update", 1: "add", 2: "sub", 3: "mul", 4: "div", 5: "max", 6: "min"}


@layer("scatter")
def scatter(p, xs, interp, env):
    return mil_shape.scatter(xs[0], xs[1].long(), xs[2], int(p.axis), _MODES[p.mode])


@layer("scatterAlongAxis")
def scatter_along_axis(p, xs, interp, env):
    return mil_shape.scatter_along_axis(xs[0], xs[1].long(), xs[2], int(p.axis),
                                        _MODES[p.mode])


@layer("getShape")
def get_shape(p, xs, interp, env):
    return torch.tensor(list(xs[0].shape), dtype=torch.float32)


@layer("loadConstantND", "loadConstant")
def load_constant(p, xs, interp, env):
    shape = _ints(p.shape)
    return weights(p.data, shape)


@layer("fillDynamic")
def fill_dynamic(p, xs, interp, env):
    return torch.full(_ints(xs[0].tolist()), p.value)


@layer("fillStatic")
def fill_static(p, xs, interp, env):
    return torch.full(_ints(p.targetShape), p.value)


@layer("fillLike")
def fill_like(p, xs, interp, env):
    return torch.full_like(xs[0], p.value)


@layer("tile")
def tile(p, xs, interp, env):
    reps = _ints(p.reps) if len(p.reps) else _ints(xs[1].tolist())
    return xs[0].repeat(reps)


@layer("broadcastToStatic")
def broadcast_to_static(p, xs, interp, env):
    return xs[0].expand(_ints(p.targetShape)).clone()


@layer("broadcastToLike")
def broadcast_to_like(p, xs, interp, env):
    return xs[0].expand(xs[1].shape).clone()


@layer("broadcastToDynamic")
def broadcast_to_dynamic(p, xs, interp, env):
    return xs[0].expand(_ints(xs[1].tolist())).clone()


_REDUCE = {"reduceSum": lambda x, d, k: x.sum(d, keepdim=k),
           "reduceMean": lambda x, d, k: x.mean(d, keepdim=k),
           "reduceMax": lambda x, d, k: x.amax(d, keepdim=k),
           "reduceMin": lambda x, d, k: x.amin(d, keepdim=k),
           "reduceProd": lambda x, d, k: _prod(x, d, k),
           "reduceL1": lambda x, d, k: x.abs().sum(d, keepdim=k),
           "reduceL2": lambda x, d, k: (x * x).sum(d, keepdim=k).sqrt(),
           "reduceSumSquare": lambda x, d, k: (x * x).sum(d, keepdim=k),
           "reduceLogSum": lambda x, d, k: x.sum(d, keepdim=k).log(),
           "reduceLogSumExp": lambda x, d, k: torch.logsumexp(x, d, keepdim=k)}


def _prod(x, dims, keep):
    for d in sorted((d % x.dim() for d in dims), reverse=True):
        x = x.prod(d, keepdim=keep)
    return x


for _name, _fn in _REDUCE.items():
    layer(_name)(lambda p, xs, interp, env, _fn=_fn: _fn(
        xs[0], tuple(range(xs[0].dim())) if p.reduceAll else tuple(_ints(p.axes)),
        bool(p.keepDims)))


@layer("reduce")
def reduce_legacy(p, xs, interp, env):
    x = xs[0]
    dims = {0: (-3, -2, -1), 1: (-2, -1), 2: (-3,), 3: (-2,), 4: (-1,)}[p.axis]
    mode = type(p).ReduceOperation.Name(p.mode)
    if mode == "ARGMAX":
        return x.argmax(dim=dims[0], keepdim=True).float()
    if mode == "LOGSUM":
        return torch.log(x + (p.epsilon or 1e-6)).sum(dims, keepdim=True)
    names = {"SUM": "reduceSum", "AVG": "reduceMean", "PROD": "reduceProd",
             "SUMSQUARE": "reduceSumSquare", "L1": "reduceL1", "L2": "reduceL2",
             "MAX": "reduceMax", "MIN": "reduceMin"}
    return _REDUCE[names[mode]](x, dims, True)


@layer("argMax")
def arg_max(p, xs, interp, env):
    return xs[0].argmax(dim=int(p.axis), keepdim=not p.removeDim).float()


@layer("argMin")
def arg_min(p, xs, interp, env):
    return xs[0].argmin(dim=int(p.axis), keepdim=not p.removeDim).float()


@layer("rangeStatic")
def range_static(p, xs, interp, env):
    return torch.arange(p.startValue, p.endValue, p.stepSizeValue, dtype=torch.float32)


@layer("rangeDynamic")
def range_dynamic(p, xs, interp, env):
    end = float(xs[0].reshape(-1)[0])
    start = float(xs[1].reshape(-1)[0]) if len(xs) > 1 else p.startValue
    step = float(xs[2].reshape(-1)[0]) if len(xs) > 2 else p.stepSizeValue
    return torch.arange(start, end, step, dtype=torch.float32)
