"""NeuralNetwork layer implementations, registered under the spec's `layer` oneof names.

A layer is `fn(params, inputs, interpreter, env)` returning a tensor or a list of tensors, one
per output name. Tensors are fp32 (the NeuralNetwork runtime's type, shapes included).
"""

from __future__ import annotations

import importlib

from convbench.registry import Registry

LAYERS: Registry = Registry("NeuralNetwork layer")


def layer(*names: str):
    def deco(fn):
        for n in names:
            LAYERS.register(n, fn)
        return fn

    return deco


for _family in ("activation", "control", "dense", "more", "recurrent", "tensor"):
    importlib.import_module(f"convbench.nn.layers.{_family}")
