"""Normalisation, rearrangement, indexing, detection and random layers.

The legacy (rank-5 era) layers here (mvn, lrn, bias, permute, reshape, sequenceRepeat, crop,
dot, reorganizeData) read their axes from the end, as [Seq, Batch, C, H, W]: a rank 3 input is
[C, H, W], and leading dims before C are batch. The ND layers of spec version 4+ take their axes
as given. Indices come out as fp32, as every NeuralNetwork tensor does.

The random layers draw from their documented distributions with a torch generator seeded from
the layer's `seed`: the draws cannot equal those of Apple's generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convbench.mil.ops import detection, image
from convbench.mil.ops import norm as mil_norm
from convbench.mil.ops import shape as mil_shape
from convbench.nn.layers import layer
from convbench.nn.layers.dense import _as_nchw
from convbench.nn.layers.tensor import _MODES, _ints
from convbench.nn.weights import weights


def _chw_param(v: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """A [1], [C], [1, H, W] or [C, H, W] parameter shaped to broadcast over [..., C, H, W]."""
    if len(shape) == 3:
        return v.reshape(shape)
    return v.reshape(()) if v.numel() == 1 else v.reshape(-1, 1, 1)


# --- Normalisation --------------------------------------------------------------------------


@layer("mvn")
def mvn(p, xs, interp, env):
    """Mean (and variance) normalisation over [C, H, W] (acrossChannels) or [H, W]:
    (x - mean) / sqrt(var + eps) with the population variance, as layer_norm's."""
    x = xs[0]
    dims = (-3, -2, -1) if p.acrossChannels else (-2, -1)
    y = x - x.mean(dim=dims, keepdim=True)
    if p.normalizeVariance:
        var = x.var(dim=dims, keepdim=True, unbiased=False)
        y = y / torch.sqrt(var + (p.epsilon or 1e-6))
    return y


@layer("layerNormalization")
def layer_normalization(p, xs, interp, env):
    x = xs[0]
    shape = _ints(p.normalizedShape)
    axes = list(range(-len(shape), 0))
    return mil_norm.layer_norm(x, axes, weights(p.gamma, shape), weights(p.beta, shape), p.eps)


@layer("lrn")
def lrn(p, xs, interp, env):
    """x / (k + alpha / localSize * sum of x^2 over a window of localSize channels)^beta."""
    x, unfold = _as_nchw(xs[0])
    return unfold(F.local_response_norm(x, int(p.localSize), p.alpha, p.beta, p.k or 1.0))


@layer("bias")
def bias(p, xs, interp, env):
    shape = _ints(p.shape) or [1]
    return xs[0] + _chw_param(weights(p.bias), shape)


@layer("dot")
def dot(p, xs, interp, env):
    """Dot product (or cosine similarity) of [..., C, 1, 1] vectors -> [..., 1, 1, 1]."""
    a, b = xs
    dims = (-3, -2, -1)
    y = (a * b).sum(dim=dims, keepdim=True)
    if p.cosineSimilarity:
        norms = (a * a).sum(dim=dims, keepdim=True) * (b * b).sum(dim=dims, keepdim=True)
        y = y / torch.sqrt(norms)
    return y


# --- Legacy rearrangements ------------------------------------------------------------------


def _as_rank5(x):
    """x as [Seq, Batch, C, H, W] (rank 3: [C, H, W]; rank 4: [Batch, C, H, W])."""
    return x.reshape((1,) * (5 - x.dim()) + tuple(x.shape)) if x.dim() < 5 else x


@layer("permute")
def permute(p, xs, interp, env):
    """Permutes [Seq, C, H, W] by `axis` (a permutation of [0, 1, 2, 3]); Batch stays put."""
    x = xs[0]
    order = _ints(p.axis) or [0, 1, 2, 3]
    if x.dim() == 5:
        dims = [0, 2, 3, 4]
        return x.permute(dims[order[0]], 1, *(dims[a] for a in order[1:]))
    if x.dim() == 4:  # [Seq, C, H, W]
        return x.permute(order)
    y = x.unsqueeze(0).permute(order)  # [C, H, W]: a unit sequence
    return y[0] if y.shape[0] == 1 else y


@layer("reshape")
def reshape(p, xs, interp, env):
    """Per batch item, flattens [Seq, C, H, W] (channel first, or channel last: H, W, C) and
    reshapes to the target [C, H, W] (each sequence step) or [Seq, C, H, W]."""
    x = xs[0]
    x5 = _as_rank5(x)
    seq, batch = x5.shape[:2]
    target = _ints(p.targetShape)
    last = type(p).ReshapeOrder.Name(p.mode) == "CHANNEL_LAST"
    if last:
        x5 = x5.permute(0, 1, 3, 4, 2)
    if len(target) == 3:
        c, h, w = target
        y = x5.reshape(seq, batch, *((h, w, c) if last else (c, h, w)))
    else:
        s, c, h, w = target
        y = x5.transpose(0, 1).reshape(batch, s, *((h, w, c) if last else (c, h, w)))
        y = y.transpose(0, 1)
    if last:
        y = y.permute(0, 1, 4, 2, 3)
    if x.dim() < 5 and len(target) == 3:
        return y.reshape(y.shape[5 - x.dim():])
    return y


@layer("sequenceRepeat")
def sequence_repeat(p, xs, interp, env):
    """The whole sequence (axis -5) repeated nRepetitions times."""
    x = _as_rank5(xs[0])
    reps = [1] * x.dim()
    reps[-5] = int(p.nRepetitions) or 1
    return x.repeat(reps)


@layer("crop")
def crop(p, xs, interp, env):
    x = xs[0]
    if len(xs) > 1:  # the second input's [H, W] from `offset`
        oh, ow = (_ints(p.offset) + [0, 0])[:2]
        h, w = xs[1].shape[-2:]
        return x[..., oh:oh + h, ow:ow + w]
    (t, b), (left, r) = [(int(a.startEdgeSize), int(a.endEdgeSize))
                         for a in p.cropAmounts.borderAmounts] or [(0, 0), (0, 0)]
    return x[..., t:x.shape[-2] - b, left:x.shape[-1] - r]


@layer("reorganizeData")
def reorganize_data(p, xs, interp, env):
    """SPACE_TO_DEPTH / DEPTH_TO_SPACE with the block offset outer in the channel index
    (TensorFlow's order); PIXEL_SHUFFLE with it inner (PyTorch's)."""
    x, unfold = _as_nchw(xs[0])
    block = int(p.blockSize)
    mode = type(p).ReorganizationType.Name(p.mode)
    fn = {"SPACE_TO_DEPTH": mil_shape.space_to_depth, "DEPTH_TO_SPACE": mil_shape.depth_to_space,
          "PIXEL_SHUFFLE": mil_shape.pixel_shuffle}[mode]
    return unfold(fn(x, block))


# --- Resizing -------------------------------------------------------------------------------

def _grid(start, size, n: int, mode) -> torch.Tensor:
    """The n sampling points of a SamplingMode over [start, start + size - 1] (float64)."""
    method = type(mode).Method.Name(mode.samplingMethod)
    return image.sample_points(start, start + size - 1, n, image.NN_SAMPLING[method])


@layer("resizeBilinear")
def resize_bilinear(p, xs, interp, env):
    x = xs[0]
    h, w = (_ints(p.targetSize) + [1, 1])[:2] if len(p.targetSize) else (1, 1)
    x = image.lerp(x, x.dim() - 2, _grid(0.0, x.shape[-2], h, p.mode))
    return image.lerp(x, x.dim() - 1, _grid(0.0, x.shape[-1], w, p.mode))


@layer("cropResize")
def crop_resize(p, xs, interp, env):
    """Bilinear crops of [1, Batch, C, H, W] at RoIs [N, 1, 4 | 5, 1, 1] -> [N, Batch | 1, C,
    h, w]: the sampling mode's grid over each box's extent (points off the image read the
    nearest edge)."""
    x, roi = xs[0], xs[1].reshape(xs[1].shape[0], -1).double()
    x = x.reshape((-1, *x.shape[-3:]))
    th, tw = (_ints(p.targetSize) + [1, 1])[:2] if len(p.targetSize) else (1, 1)
    mode = type(p.boxIndicesMode).Coordinates.Name(p.boxIndicesMode.boxMode)
    h0, w0, h1, w1 = image.corners(roi[:, -4:], mode)
    if p.normalizedCoordinates:
        h0, h1 = h0 * (x.shape[-2] - 1), h1 * (x.shape[-2] - 1)
        w0, w1 = w0 * (x.shape[-1] - 1), w1 * (x.shape[-1] - 1)
    scale = p.spatialScale or 1.0
    crops = []
    for n in range(roi.shape[0]):
        img = x if roi.shape[1] == 4 else x[int(roi[n, 0]):int(roi[n, 0]) + 1]
        gh = _grid(float(h0[n]) * scale, float(h1[n] - h0[n]) * scale + 1, th, p.mode)
        gw = _grid(float(w0[n]) * scale, float(w1[n] - w0[n]) * scale + 1, tw, p.mode)
        crops.append(image.lerp(image.lerp(img, 2, gh), 3, gw))
    return torch.stack(crops)


# --- ND indexing and shaping ----------------------------------------------------------------


@layer("sliceBySize")
def slice_by_size(p, xs, interp, env):
    x = xs[0]
    a = int(p.axis) % x.dim()
    begin = int(xs[1].reshape(-1)[0])
    begin = begin + x.shape[a] if begin < 0 else begin
    return x.narrow(a, begin, int(p.size))


@layer("constantPad")
def constant_pad(p, xs, interp, env):
    """Pads (before, after) per dim, the amounts for the last dims when fewer; in
    padToGivenOutputSizeMode a non-zero amount is that dim's output size instead."""
    x = xs[0]
    amounts = _ints(xs[1].reshape(-1).tolist()) if len(xs) > 1 else _ints(p.padAmounts)
    amounts = [0] * (2 * x.dim() - len(amounts)) + amounts
    if p.padToGivenOutputSizeMode:
        for d in range(x.dim()):
            b, e = amounts[2 * d], amounts[2 * d + 1]
            amounts[2 * d] = max(b - x.shape[d], 0) if b else 0
            amounts[2 * d + 1] = max(e - x.shape[d], 0) if e else 0
    return mil_shape.pad(x, amounts, "constant", p.value)


@layer("reverse")
def reverse(p, xs, interp, env):
    x = xs[0]
    dims = [d for d, flag in enumerate(p.reverseDim) if flag and d < x.dim()]
    return torch.flip(x, dims) if dims else x


@layer("reverseSeq")
def reverse_seq(p, xs, interp, env):
    """Along batchAxis, item i has its first lengths[i] elements along sequenceAxis reversed."""
    x = xs[0]
    sa, ba = int(p.sequenceAxis) % x.dim(), int(p.batchAxis) % x.dim()
    pos = torch.arange(x.shape[sa])
    lengths = xs[1].reshape(-1, 1).long()
    src = torch.where(pos < lengths, lengths - 1 - pos, pos)  # [batch, seq]
    shape = [1] * x.dim()
    shape[ba], shape[sa] = x.shape[ba], x.shape[sa]
    index = (src if ba < sa else src.T).reshape(shape).expand(x.shape)
    return torch.gather(x, sa, index)


@layer("topK")
def top_k(p, xs, interp, env):
    k = int(xs[1].reshape(-1)[0]) if len(xs) > 1 else int(p.K)
    values, indices = mil_shape.topk(xs[0], k, int(p.axis), bool(p.useBottomK))
    return [values, indices.float()]


@layer("argSort")
def arg_sort(p, xs, interp, env):
    return mil_shape.argsort(xs[0], int(p.axis), not p.descending).float()


@layer("cumSum")
def cum_sum(p, xs, interp, env):
    a = int(xs[1].reshape(-1)[0]) if len(xs) > 1 else int(p.axis)
    return mil_shape.cumsum(xs[0], a, bool(p.excludeFinalSum), bool(p.reverse))


@layer("gatherND")
def gather_nd(p, xs, interp, env):
    return mil_shape.gather_nd(xs[0], xs[1].long())


_SCATTER = {"update": lambda d, i, u: d.scatter(0, i, u),
            "add": lambda d, i, u: d.scatter_reduce(0, i, u, "sum"),
            "sub": lambda d, i, u: d.scatter_reduce(0, i, -u, "sum"),
            "mul": lambda d, i, u: d.scatter_reduce(0, i, u, "prod"),
            "div": lambda d, i, u: d.scatter_reduce(0, i, 1.0 / u, "prod"),
            "max": lambda d, i, u: d.scatter_reduce(0, i, u, "amax"),
            "min": lambda d, i, u: d.scatter_reduce(0, i, u, "amin")}


@layer("scatterND")
def scatter_nd(p, xs, interp, env):
    """container[indices[..., :]] (mode)= updates, the indices' last dim indexing the
    container's leading dims."""
    data, indices, updates = xs
    k = indices.shape[-1]
    lead = torch.tensor(data.shape[:k])
    idx = indices.long().reshape(-1, k)
    idx = torch.where(idx < 0, idx + lead, idx)
    strides = torch.tensor([int(lead[i + 1:].prod()) for i in range(k)])
    flat = data.reshape(-1, *data.shape[k:])
    upd = updates.reshape(-1, *data.shape[k:])
    index = (idx * strides).sum(-1).reshape(-1, *([1] * (flat.dim() - 1))).expand(upd.shape)
    return _SCATTER[_MODES[p.mode]](flat, index, upd).reshape(data.shape)


@layer("matrixBandPart")
def matrix_band_part(p, xs, interp, env):
    return mil_shape.band_part(xs[0], int(p.numLower), int(p.numUpper))


@layer("lowerTriangular")
def lower_triangular(p, xs, interp, env):
    return torch.tril(xs[0], int(p.k))


@layer("upperTriangular")
def upper_triangular(p, xs, interp, env):
    return torch.triu(xs[0], int(p.k))


@layer("oneHot")
def one_hot(p, xs, interp, env):
    """onValue where the index equals the position, offValue elsewhere (an index out of
    [0, size) gives a vector of offValue); the new dim at `axis` of the output."""
    idx = xs[0].long()
    n = int(xs[1].reshape(-1)[0]) if len(xs) > 1 else int(p.oneHotVectorSize)
    hot = idx.unsqueeze(-1) == torch.arange(n)
    out = torch.where(hot, torch.tensor(p.onValue), torch.tensor(p.offValue))
    return out.movedim(-1, int(p.axis) % out.dim())


@layer("whereNonZero")
def where_non_zero(p, xs, interp, env):
    return torch.nonzero(xs[0]).float()


@layer("slidingWindows")
def sliding_windows(p, xs, interp, env):
    """Windows of windowSize every `step` along `axis`: [.., L, ..] -> [.., M, W, ..]."""
    x = xs[0]
    a = int(p.axis) % x.dim()
    return x.unfold(a, int(p.windowSize), int(p.step) or 1).movedim(-1, a + 1)


# --- Detection ------------------------------------------------------------------------------


def _nms_one(boxes, scores, iou, threshold, max_boxes, per_class) -> list[int]:
    """MIL's greedy NMS of one batch item; when no box scores above the threshold, the
    best-scored box alone (as NeuralNetwork.proto says)."""
    kept = detection.select(boxes, scores, iou, threshold, max_boxes, per_class)
    return kept or [int(scores.max(dim=-1).values.argmax())]


@layer("NonMaximumSuppression")
def non_maximum_suppression(p, xs, interp, env):
    """Greedy NMS of boxes [B, N, 4] (centre x, y, width, height) scored [B, N, C]: boxes,
    scores, indices (padded with 0, 0 and -1 to maxBoxes) and counts. Boxes scoring below the
    threshold are dropped first; when none is left, the best-scored box is the one output."""
    boxes, scores = xs[0], xs[1]
    iou = float(xs[2].reshape(-1)[0]) if len(xs) > 2 else p.iouThreshold
    threshold = float(xs[3].reshape(-1)[0]) if len(xs) > 3 else p.scoreThreshold
    max_boxes = int(xs[4].reshape(-1)[0]) if len(xs) > 4 else int(p.maxBoxes)
    n = boxes.shape[0]
    out_boxes = boxes.new_zeros((n, max_boxes, 4))
    out_scores = scores.new_zeros((n, max_boxes, scores.shape[-1]))
    out_idx = torch.full((n, max_boxes), -1.0)
    counts = torch.zeros(n)
    for b in range(n):
        kept = _nms_one(boxes[b], scores[b], iou, threshold, max_boxes,
                        bool(p.perClassSuppression))
        m = len(kept)
        out_boxes[b, :m], out_scores[b, :m] = boxes[b, kept], scores[b, kept]
        out_idx[b, :m], counts[b] = torch.tensor(kept, dtype=torch.float32), m
    return [out_boxes, out_scores, out_idx, counts]


# --- Random draws ---------------------------------------------------------------------------


def _generator(seed: int) -> torch.Generator:
    """A torch generator seeded from the layer's `seed`; a negative seed (the builder's -1,
    "random") takes a fresh one each run.

    The draws of the random layers come from the documented distributions but cannot equal
    those of Apple's generator: what a model computes from them compares in distribution only.
    """
    g = torch.Generator()
    if seed >= 0:
        g.manual_seed(seed)
    else:
        g.seed()
    return g


def _normal(shape, p):
    return torch.randn(shape, generator=_generator(int(p.seed))) * p.stdDev + p.mean


def _uniform(shape, p):
    return torch.rand(shape, generator=_generator(int(p.seed))) * (p.maxVal - p.minVal) + p.minVal


def _bernoulli(shape, p):
    return torch.bernoulli(torch.full(shape, float(p.prob)), generator=_generator(int(p.seed)))


_SHAPES = {"Static": lambda p, xs: _ints(p.outputShape),
           "Dynamic": lambda p, xs: _ints(xs[0].reshape(-1).tolist()),
           "Like": lambda p, xs: list(xs[0].shape)}
for _kind, _shape in _SHAPES.items():
    for _name, _draw in (("randomNormal", _normal), ("randomUniform", _uniform),
                         ("randomBernoulli", _bernoulli)):
        layer(_name + _kind)(lambda p, xs, interp, env, _shape=_shape, _draw=_draw:
                             _draw(_shape(p, xs), p))


@layer("categoricalDistribution")
def categorical_distribution(p, xs, interp, env):
    """numSamples class indices drawn with replacement from each distribution of the last dim:
    softmax(logits / temperature), the logits being the input (isLogits) or log(x + eps)."""
    x = xs[0]
    logits = x if p.isLogits else torch.log(x + (p.eps or 1e-10))
    probs = torch.softmax(logits / (p.temperature or 1.0), dim=-1).reshape(-1, x.shape[-1])
    drawn = torch.multinomial(probs, int(p.numSamples), replacement=True,
                              generator=_generator(int(p.seed)))
    return drawn.reshape(*x.shape[:-1], -1).float()
