"""What the Keras converters share: the routes a Keras model takes into a converter.

tf2onnx's `from_keras` and coremltools' TensorFlow frontend read a functional model's input and
output names; a `Sequential` model has none (tf2onnx: `KeyError: 'keras_tensor_N'`, coremltools:
`'Sequential' object has no attribute 'output_names'`). A user's two-line call would wrap it in a
functional model first, so convbench does too, after trying the model as it is: the route taken
and the error of every earlier route are recorded with the converted model.
"""

from __future__ import annotations

from typing import Any, Callable


def input_signature(model, shape=None, dtype=None) -> tuple[tuple, str]:
    """One sample's shape and the input dtype: the model's own where it has built inputs
    (functional, Sequential), else the given ones (a subclassed model)."""
    try:
        first = model.inputs[0]
        dt = first.dtype
        return tuple(first.shape[1:]), getattr(dt, "name", dt)
    except (AttributeError, IndexError, TypeError, ValueError):
        if shape is None:
            raise ValueError(f"{model.name}: a subclassed model declares no input shape; "
                             f"give --input-shape") from None
        return tuple(shape), dtype or "float32"


def as_functional(model, shape=None, dtype=None):
    """A functional model over `model`'s layers and weights (shared, not copied)."""
    import keras

    shape, dtype = input_signature(model, shape, dtype)
    inp = keras.Input(shape=shape, dtype=dtype, name="input")
    return keras.Model(inp, model(inp), name=f"{model.name}_functional")


def is_functional(model) -> bool:
    import keras

    return isinstance(model, keras.Model) and type(model).__name__ == "Functional"


def with_fallbacks(model, convert: Callable[[Any], dict], shape=None, dtype=None) -> dict:
    """`convert(model)`'s meta; for a model that is not functional (Sequential, subclassed)
    and fails as it is, the meta of `convert(as_functional(model))`, with `route` and
    `fallbacks` (the earlier error) said in it. When no route works: the only route's error,
    or `RoutesFailed` with each route's."""
    from convbench.convert.base import first_route

    routes = [("keras", lambda: convert(model))]
    if not is_functional(model):
        routes.append(("keras-functional", lambda: convert(as_functional(model, shape, dtype))))
    return first_route(routes)
