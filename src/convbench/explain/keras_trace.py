"""A Keras model's intermediate tensors: every layer's output through a functional sub-model,
and the pre-activation of layers with a built-in activation (what converters emit as two ops)."""

from __future__ import annotations

import numpy as np

from convbench.explain.trace import Node, Trace, as_float, plain

#: Layer config keys that are hyperparameters, as convbench names them across frameworks.
ATTRS = {"strides": "strides", "padding": "padding", "dilation_rate": "dilations",
         "groups": "groups", "kernel_size": "kernel", "pool_size": "kernel",
         "epsilon": "epsilon", "activation": "activation", "negative_slope": "alpha",
         "axis": "axis", "data_format": "data_format"}


def _attrs(layer) -> dict:
    try:
        config = layer.get_config()
    except Exception:
        return {}
    return {ATTRS[k]: plain(v) for k, v in config.items() if k in ATTRS and
            isinstance(v, (int, float, str, tuple, list))}


def _weights(layer) -> dict[str, np.ndarray]:
    out = {}
    for w in layer.weights:
        arr = np.asarray(w.numpy() if hasattr(w, "numpy") else w)
        if arr.size > 1 and np.issubdtype(arr.dtype, np.floating):
            out[w.name.split("/")[-1].split(":")[0]] = arr.astype(np.float32)
    return out


def _activated(layer) -> bool:
    """A layer that applies its activation last, as a plain attribute (Dense, Conv*): not a
    recurrent layer, whose activation acts inside its cell."""
    act = vars(layer).get("activation")
    return (act is not None and type(layer).__name__ != "Activation"
            and getattr(act, "__name__", "") not in ("linear", ""))


def _source(tensor) -> str:
    history = getattr(tensor, "_keras_history", None)
    op = history[0] if history else None
    return "input" if op is None or type(op).__name__ == "InputLayer" else op.name


def _pre_activation(layer, value):
    """The layer's output before its activation, on its (traced) input."""
    import keras

    act = layer.activation
    layer.activation = keras.activations.linear
    try:
        return layer(value, training=False)
    finally:
        layer.activation = act


def trace_keras(model, x: np.ndarray) -> Trace:
    import keras

    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    try:
        outs, pres = [], []
        for layer in layers:
            outs.append(layer.output)
            if _activated(layer):
                pres.append(layer.input)
        sub = keras.Model(model.input, outs + pres)  # the input as the model takes it
        values = sub(x, training=False)
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        inputs = {layer.name: [_source(t) for t in keras.tree.flatten(layer.input)]
                  for layer in layers}
    except (AttributeError, ValueError, RuntimeError) as e:  # never called symbolically
        if not isinstance(model, keras.Sequential):
            from convbench.explain import ExplainError

            raise ExplainError(f"the Keras model {model.name!r}: its layers' outputs cannot be "
                               f"read one by one ({type(e).__name__}: {str(e)[:200]}); a "
                               f"subclassed model, a layer called more than once or a model "
                               f"of several inputs has no single graph of layers: explain a "
                               f"functional or Sequential equivalent") from e
        values, pre_in, v = [], [], x  # a Sequential model: its layers in order
        for layer in layers:
            if _activated(layer):
                pre_in.append(v)
            v = layer(v, training=False)
            values.append(v)
        values += pre_in
        names = ["input"] + [layer.name for layer in layers]
        inputs = {layer.name: [names[i]] for i, layer in enumerate(layers)}
    nodes = []
    pre_values = iter(values[len(layers):])
    for layer, value in zip(layers, values):
        kind = type(layer).__name__
        reads = inputs[layer.name]
        if _activated(layer):
            pre = _pre_activation(layer, next(pre_values))
            nodes.append(Node(f"{layer.name}/linear", kind, reads, f"{layer.name}/linear",
                              as_float(pre), _weights(layer),
                              {**_attrs(layer), "activation": "linear"}))
            act = getattr(layer.activation, "__name__", str(layer.activation))
            nodes.append(Node(layer.name, "Activation", [f"{layer.name}/linear"], layer.name,
                              as_float(value), attrs={"activation": act}))
            continue
        first = value[0] if isinstance(value, (list, tuple)) else value
        nodes.append(Node(layer.name, kind, reads, layer.name, as_float(first), _weights(layer),
                          _attrs(layer)))
    return Trace(nodes, "input", x, layout="nhwc" if np.ndim(x) >= 3 else "none")
