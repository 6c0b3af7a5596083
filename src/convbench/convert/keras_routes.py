"""What the Keras converters share: the routes a Keras model takes into a converter.

tf2onnx's `from_keras` and coremltools' TensorFlow frontend read a functional model's input and
output names; a `Sequential` model has none (tf2onnx: `KeyError: 'keras_tensor_N'`, coremltools:
`'Sequential' object has no attribute 'output_names'`). A user's two-line call would wrap it in a
functional model first, so convbench does too, after trying the model as it is: the route taken
and the error of every earlier route are recorded with the converted model.
"""

from __future__ import annotations

from typing import Any, Callable


def as_functional(model):
    """A functional model over `model`'s layers and weights (shared, not copied)."""
    import keras

    first = model.inputs[0]
    inp = keras.Input(shape=tuple(first.shape[1:]), dtype=first.dtype, name="input")
    return keras.Model(inp, model(inp), name=f"{model.name}_functional")


def with_fallbacks(model, convert: Callable[[Any], dict]) -> dict:
    """`convert(model)`'s meta; for a model that is not functional and fails as it is, the
    meta of `convert(as_functional(model))`, with `route` and `fallbacks` (the earlier error)
    said in it. Raises the first error when no route works."""
    import keras

    try:
        return {"route": "keras", **convert(model)}
    except Exception as first:
        if not isinstance(model, keras.Sequential):
            raise
        earlier = [{"route": "keras", "error": f"{type(first).__name__}: {first}"[:2000]}]
        try:
            meta = convert(as_functional(model))
        except Exception as second:
            raise RuntimeError(f"{type(first).__name__}: {first}; wrapped in a functional "
                               f"model: {type(second).__name__}: {second}") from first
        return {**meta, "route": "keras-functional", "fallbacks": earlier}
