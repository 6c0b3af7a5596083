"""Recurrent layers: lstm, gru, rnn (iOS15 recurrent.py; x is <seq, batch, input>)."""

from __future__ import annotations

import torch

from convbench.mil.ops import op
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
