"""Copy a Keras zoo model's weights into its PyTorch twin (the same function, other framework).

Used by the Core ML "torch-twin" route for Keras recurrent models. Gate orders: Keras LSTM
i,f,c,o equals PyTorch's i,f,g,o; Keras GRU z,r,h becomes PyTorch's r,z,n. Keras keeps one LSTM
bias (PyTorch's b_hh is set to zero) and, with reset_after=True, two GRU biases as PyTorch does.
"""

from __future__ import annotations

import numpy as np


def _gru_rows(w: np.ndarray, h: int) -> np.ndarray:
    """Keras z,r,h blocks (last axis) -> PyTorch r,z,n blocks (first axis)."""
    z, r, n = w[..., :h], w[..., h:2 * h], w[..., 2 * h:]
    return np.concatenate([r, z, n], axis=-1)


def torch_twin(keras_model, arch: dict):
    """A PyTorch zoo model holding `keras_model`'s weights (recurrent zoo models)."""
    import torch

    from convbench.models.spec import build

    name = arch["model"]
    if name not in ("lstm", "gru"):
        raise ValueError(f"no Keras -> PyTorch weight transfer for {name!r} (only lstm, gru)")
    twin = build("torch", name, arch["input_shape"], arch["num_classes"], vocab=arch["vocab"],
                 **arch.get("options", {}))
    body = twin.body
    layers = [layer for layer in keras_model.layers if layer.get_weights()]
    embed, *rnns, dense = layers
    h = body.rnn.hidden_size
    state = {"embed.weight": embed.get_weights()[0]}
    for i, layer in enumerate(rnns):
        kernel, recurrent, bias = layer.get_weights()
        if name == "lstm":
            b_ih, b_hh = bias, np.zeros_like(bias)
        else:
            kernel, recurrent = _gru_rows(kernel, h), _gru_rows(recurrent, h)
            b_ih, b_hh = _gru_rows(bias[0], h), _gru_rows(bias[1], h)
        state.update({f"rnn.weight_ih_l{i}": kernel.T, f"rnn.weight_hh_l{i}": recurrent.T,
                      f"rnn.bias_ih_l{i}": b_ih, f"rnn.bias_hh_l{i}": b_hh})
    kernel, bias = dense.get_weights()
    state.update({"fc.weight": kernel.T, "fc.bias": bias})
    body.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    return twin.eval()
