"""Recurrent layers of the NeuralNetwork format: uni- and biDirectionalLSTM, gru, simpleRecurrent.

Inputs are rank 5 `[Seq, Batch, C, 1, 1]` (rank 3 accepted); pre-activations are clipped to
[-50, 50] as the specification says, and the LSTM cell state to its clip threshold.
"""

from __future__ import annotations

import torch

from convbench.nn.layers import layer
from convbench.nn.layers.activation import apply_activation
from convbench.nn.weights import weights

CLIP = 50.0


def _seq(x):
    return x.reshape(x.shape[0], x.shape[1], x.shape[2])


def _shape_like(y, x):
    return y.reshape((*y.shape, 1, 1)) if x.dim() == 5 else y


def _state(xs, i, batch, hidden):
    if len(xs) > i:
        return xs[i].reshape(batch, hidden)
    return torch.zeros(batch, hidden)


def _activation(params):
    """A recurrent layer's activation: hard sigmoid and scaled tanh take the fixed parameters
    the specification gives recurrent layers (0.2, 0.5 and 1.7159, 2/3)."""
    kind = params.WhichOneof("NonlinearityType")
    if kind == "sigmoidHard":
        return lambda v: torch.clamp(0.2 * v + 0.5, 0.0, 1.0)
    if kind == "scaledTanh":
        return lambda v: 1.7159 * torch.tanh(v * (2.0 / 3.0))
    return lambda v: apply_activation(params, v)


def _order(n, reverse):
    return range(n - 1, -1, -1) if reverse else range(n)


_GATES = ("inputGate", "forgetGate", "blockInput", "outputGate")


def _lstm(x, w, params, activations, hidden, inp, reverse, h, c):
    """One LSTM direction over x [Seq, Batch, inp] from states h, c: its outputs by time
    step and its final h and c."""
    W = [weights(getattr(w, f"{g}WeightMatrix"), (hidden, inp)) for g in _GATES]
    R = [weights(getattr(w, f"{g}RecursionMatrix"), (hidden, hidden)) for g in _GATES]
    if params.hasBiasVectors:
        b = [weights(getattr(w, f"{g}BiasVector")) for g in _GATES]
    else:
        b = [torch.zeros(hidden)] * 4
    if params.forgetBias:
        b[1] = b[1] + 1.0
    peep = ([weights(getattr(w, f"{g}PeepholeVector")) for g in
             ("inputGate", "forgetGate", "outputGate")] if params.hasPeepholeVectors else None)
    f, g, h_act = (_activation(a) for a in activations[:3])
    cell_clip = params.cellClipThreshold or CLIP
    Wx = [torch.matmul(x, Wi.T) + bi for Wi, bi in zip(W, b)]
    outs = [None] * x.shape[0]
    for t in _order(x.shape[0], reverse):
        pre = [Wx[k][t] + torch.matmul(h, R[k].T) for k in range(4)]
        if peep is not None:
            pre[0], pre[1] = pre[0] + peep[0] * c, pre[1] + peep[1] * c
        i_t = f(torch.clamp(pre[0], -CLIP, CLIP))
        z_t = g(torch.clamp(pre[2], -CLIP, CLIP))
        f_t = 1 - i_t if params.coupledInputAndForgetGate else \
            f(torch.clamp(pre[1], -CLIP, CLIP))
        c = torch.clamp(c * f_t + i_t * z_t, -cell_clip, cell_clip)
        o_pre = pre[3] + (peep[2] * c if peep is not None else 0)
        h = h_act(c) * f(torch.clamp(o_pre, -CLIP, CLIP))
        outs[t] = h
    return outs, h, c


@layer("uniDirectionalLSTM")
def uni_lstm(p, xs, interp, env):
    x = _seq(xs[0])
    hidden, inp = int(p.outputVectorSize), int(p.inputVectorSize)
    outs, h, c = _lstm(x, p.weightParams, p.params, p.activations, hidden, inp, p.reverseInput,
                       _state(xs, 1, x.shape[1], hidden), _state(xs, 2, x.shape[1], hidden))
    seq = torch.stack(outs) if p.params.sequenceOutput else h.unsqueeze(0)
    x5 = xs[0]
    return [_shape_like(seq, x5), _shape_like(h.unsqueeze(0), x5), _shape_like(c.unsqueeze(0), x5)]


@layer("biDirectionalLSTM")
def bi_lstm(p, xs, interp, env):
    """A forward and a backward LSTM over the sequence; at each step the output is the two
    directions' outputs there, concatenated ([forward, backward] along the features). Inputs
    x, h, c, h_back, c_back; outputs y, h, c, h_back, c_back."""
    x = _seq(xs[0])
    hidden, inp = int(p.outputVectorSize), int(p.inputVectorSize)
    batch = x.shape[1]
    back_acts = p.activationsBackwardLSTM or p.activationsForwardLSTM
    fwd, h_f, c_f = _lstm(x, p.weightParams[0], p.params, p.activationsForwardLSTM, hidden, inp,
                          False, _state(xs, 1, batch, hidden), _state(xs, 2, batch, hidden))
    bwd, h_b, c_b = _lstm(x, p.weightParams[1], p.params, back_acts, hidden, inp, True,
                          _state(xs, 3, batch, hidden), _state(xs, 4, batch, hidden))
    if p.params.sequenceOutput:
        seq = torch.stack([torch.cat([a, b], dim=-1) for a, b in zip(fwd, bwd)])
    else:
        seq = torch.cat([h_f, h_b], dim=-1).unsqueeze(0)
    x5 = xs[0]
    return [_shape_like(seq, x5)] + [_shape_like(v.unsqueeze(0), x5) for v in (h_f, c_f, h_b, c_b)]


@layer("gru")
def gru(p, xs, interp, env):
    x = _seq(xs[0])
    hidden, inp = int(p.outputVectorSize), int(p.inputVectorSize)
    W = {g: weights(getattr(p, f"{g}GateWeightMatrix"), (hidden, inp))
         for g in ("update", "reset", "output")}
    R = {g: weights(getattr(p, f"{g}GateRecursionMatrix"), (hidden, hidden))
         for g in ("update", "reset", "output")}
    b = {g: weights(getattr(p, f"{g}GateBiasVector")) if p.hasBiasVectors else
         torch.zeros(hidden) for g in ("update", "reset", "output")}
    f, g = (_activation(a) for a in p.activations[:2])
    h = _state(xs, 1, x.shape[1], hidden)
    outs = [None] * x.shape[0]
    for t in _order(x.shape[0], p.reverseInput):
        xt = x[t]
        z = f(torch.clamp(xt @ W["update"].T + h @ R["update"].T + b["update"], -CLIP, CLIP))
        r = f(torch.clamp(xt @ W["reset"].T + h @ R["reset"].T + b["reset"], -CLIP, CLIP))
        o = g(torch.clamp(xt @ W["output"].T + (h * r) @ R["output"].T + b["output"],
                          -CLIP, CLIP))
        h = (1 - z) * o + z * h
        outs[t] = h
    seq = torch.stack(outs) if p.sequenceOutput else h.unsqueeze(0)
    return [_shape_like(seq, xs[0]), _shape_like(h.unsqueeze(0), xs[0])]


@layer("simpleRecurrent")
def simple_recurrent(p, xs, interp, env):
    x = _seq(xs[0])
    hidden, inp = int(p.outputVectorSize), int(p.inputVectorSize)
    W = weights(p.weightMatrix, (hidden, inp))
    R = weights(p.recursionMatrix, (hidden, hidden))
    b = weights(p.biasVector) if p.hasBiasVector else torch.zeros(hidden)
    act = _activation(p.activation)
    h = _state(xs, 1, x.shape[1], hidden)
    outs = [None] * x.shape[0]
    for t in _order(x.shape[0], p.reverseInput):
        h = act(torch.clamp(x[t] @ W.T + h @ R.T + b, -CLIP, CLIP))
        outs[t] = h
    seq = torch.stack(outs) if p.sequenceOutput else h.unsqueeze(0)
    return [_shape_like(seq, xs[0]), _shape_like(h.unsqueeze(0), xs[0])]
