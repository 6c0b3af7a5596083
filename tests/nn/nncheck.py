"""Build one-layer NeuralNetwork specs with coremltools' builder and run them on convbench."""

from __future__ import annotations

import numpy as np


def build(inputs: dict[str, tuple], add, outputs=("y",)):
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    b = NeuralNetworkBuilder([(n, datatypes.Array(*s)) for n, s in inputs.items()],
                             [(o, None) for o in outputs], disable_rank5_shape_mapping=True)
    add(b)
    return b.spec


def run(inputs: dict[str, np.ndarray], add, outputs=("y",), arith="fp32"):
    from convbench.nn import NeuralNetworkInterpreter

    spec = build({n: v.shape for n, v in inputs.items()}, add, outputs)
    return NeuralNetworkInterpreter(spec, arith=arith).run(inputs)
