"""Recurrent layers: lstm, gru, rnn (iOS15 recurrent.py; x is <seq, batch, input>)."""

from __future__ import annotations

import torch

from convbench.mil.ops import op, planner
from convbench.mil.ops._util import scalar

_ACT = {
    "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "linear": lambda x: x,
    "hard_sigmoid": lambda x: torch.clamp(0.2 * x + 0.5, 0.0, 1.0),
}


def _act(name: str):
    try:
        return _ACT[name]
    except KeyError:
        raise NotImplementedError(f"recurrent activation {name!r}") from None


def _steps(seq_len: int, reverse: bool):
    return range(seq_len - 1, -1, -1) if reverse else range(seq_len)


def _lstm_direction(x, h, c, w_ih, w_hh, bias, peephole, reverse, rec, cell, out_act, clip):
    """One direction; gates in MIL's order i, f, o, z (z: the cell candidate)."""
    hidden = w_hh.shape[1]
    proj = torch.matmul(x, w_ih.T)  # all steps at once: <s, b, 4H>
    if bias is not None:
        proj = proj + bias
    pi, pf, po = (peephole.split(hidden) if peephole is not None else (None, None, None))
    outs = [None] * x.shape[0]
    for t in _steps(x.shape[0], reverse):
        g = proj[t] + torch.matmul(h, w_hh.T)
        gi, gf, go, gz = g.split(hidden, dim=-1)
        if pi is not None:
            gi, gf = gi + pi * c, gf + pf * c
        z = cell(gz)
        if clip is not None:
            z = torch.clamp(z, -clip, clip)
        c = rec(gf) * c + rec(gi) * z
        if po is not None:
            go = go + po * c
        h = rec(go) * out_act(c)
        outs[t] = h
    return torch.stack(outs), h, c


@op("lstm")
def lstm(x, initial_h, initial_c, weight_ih, weight_hh, bias, peephole, weight_ih_back,
         weight_hh_back, bias_back, peephole_back, direction, output_sequence,
         recurrent_activation, cell_activation, activation, clip):
    acts = (_act(recurrent_activation), _act(cell_activation), _act(activation))
    clip = None if clip is None else float(scalar(clip))
    hidden = weight_hh.shape[1]
    if direction == "bidirectional":
        h0, hb = initial_h.split(hidden, dim=-1)
        c0, cb = initial_c.split(hidden, dim=-1)
        f = _lstm_direction(x, h0, c0, weight_ih, weight_hh, bias, peephole, False, *acts, clip)
        b = _lstm_direction(x, hb, cb, weight_ih_back, weight_hh_back, bias_back,
                            peephole_back, True, *acts, clip)
        seq = torch.cat([f[0], b[0]], dim=-1)
        h, c = torch.cat([f[1], b[1]], dim=-1), torch.cat([f[2], b[2]], dim=-1)
        last = torch.cat([f[0][-1], b[0][0]], dim=-1)
    else:
        reverse = direction == "reverse"
        seq, h, c = _lstm_direction(x, initial_h, initial_c, weight_ih, weight_hh, bias,
                                    peephole, reverse, *acts, clip)
        last = h
    out = seq if bool(scalar(output_sequence)) else last.unsqueeze(0)
    return out, h, c


@op("gru")
def gru(x, initial_h, weight_ih, weight_hh, bias, direction, output_sequence,
        recurrent_activation, activation):
    """Gates in MIL's order r, o, z; the reset gate scales W_ho h (one summed bias)."""
    rec, act = _act(recurrent_activation), _act(activation)
    hidden = weight_hh.shape[1]
    proj = torch.matmul(x, weight_ih.T) + (bias if bias is not None else 0)
    h = initial_h
    outs = [None] * x.shape[0]
    for t in _steps(x.shape[0], direction == "reverse"):
        xr, xo, xz = proj[t].split(hidden, dim=-1)
        hr, ho, hz = torch.matmul(h, weight_hh.T).split(hidden, dim=-1)
        r, z = rec(xr + hr), rec(xz + hz)
        o = act(xo + r * ho)
        h = (1 - z) * o + z * h
        outs[t] = h
    seq = torch.stack(outs)
    return (seq if bool(scalar(output_sequence)) else h.unsqueeze(0)), h


@op("rnn")
def rnn(x, initial_h, weight_ih, weight_hh, bias, direction, output_sequence, activation):
    act = _act(activation)
    proj = torch.matmul(x, weight_ih.T) + (bias if bias is not None else 0)
    h = initial_h
    outs = [None] * x.shape[0]
    for t in _steps(x.shape[0], direction == "reverse"):
        h = act(proj[t] + torch.matmul(h, weight_hh.T))
        outs[t] = h
    seq = torch.stack(outs)
    return (seq if bool(scalar(output_sequence)) else h.unsqueeze(0)), h


def _torch_order(w, hidden: int):
    """MIL's gate blocks i, f, o, z (rows) in PyTorch's order i, f, z (its g), o."""
    i, f, o, z = w.split(hidden, dim=0)
    return torch.cat([i, f, z, o]).contiguous()


@planner("lstm", inputs=("x", "initial_h", "initial_c"))
def plan_lstm(weight_ih, weight_hh, bias, peephole, weight_ih_back, weight_hh_back, bias_back,
              peephole_back, direction, output_sequence, recurrent_activation,
              cell_activation, activation, clip):
    """An LSTM of the usual form (sigmoid gates, tanh cell and output, no peephole, no clip)
    runs on PyTorch's fused LSTM kernel, the gate blocks reordered once: the same equations,
    in C++ rather than a Python loop over the steps."""
    usual = (recurrent_activation, cell_activation, activation) == ("sigmoid", "tanh", "tanh")
    if not usual or peephole is not None or peephole_back is not None or clip is not None \
            or not isinstance(weight_ih, torch.Tensor) or weight_ih.dtype != torch.float32:
        return None
    hidden = weight_hh.shape[1]
    both = direction == "bidirectional"
    if direction == "reverse":
        return None  # PyTorch runs a reverse direction only beside a forward one

    def params(w_ih, w_hh, b):
        b = torch.zeros(4 * hidden) if b is None else b.float()
        return [_torch_order(w_ih, hidden), _torch_order(w_hh, hidden),
                _torch_order(b.reshape(-1, 1), hidden).reshape(-1), torch.zeros(4 * hidden)]

    flat = params(weight_ih, weight_hh, bias)
    if both:
        flat += params(weight_ih_back, weight_hh_back, bias_back)
    sequence = bool(scalar(output_sequence))

    def run(x, initial_h, initial_c):
        h0, c0 = initial_h, initial_c
        if both:  # <b, 2H> -> <2, b, H>
            h0 = torch.stack(h0.split(hidden, dim=-1))
            c0 = torch.stack(c0.split(hidden, dim=-1))
        else:
            h0, c0 = h0.unsqueeze(0), c0.unsqueeze(0)
        seq, h, c = torch._VF.lstm(x, (h0.contiguous(), c0.contiguous()), flat, True, 1, 0.0,
                                   False, both, False)
        h, c = (torch.cat([h[0], h[1]], -1), torch.cat([c[0], c[1]], -1)) if both \
            else (h[0], c[0])
        if sequence:
            return seq, h, c
        last = torch.cat([seq[-1, :, :hidden], seq[0, :, hidden:]], -1) if both else h
        return last.unsqueeze(0), h, c

    return run
