"""Executing a NeuralNetwork spec layer by layer (one flat namespace, as Core ML's)."""

from __future__ import annotations

import numpy as np
import torch

from convbench.mil.errors import MilError, UnsupportedOpError
from convbench.nn.layers import LAYERS
from convbench.nn.layers.control import ControlSignal

# Nested networks (loop and branch bodies) are walked for unknown layers too.
NESTED = {"loop": ("conditionNetwork", "bodyNetwork"), "branch": ("ifBranch", "elseBranch")}


class NeuralNetworkInterpreter:
    """Runs the `neuralNetwork` (or classifier/regressor) of a Core ML model spec."""

    def __init__(self, spec, arith: str = "fp32") -> None:
        kind = spec.WhichOneof("Type")
        if kind not in ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor"):
            raise MilError(f"a {kind} model is not a NeuralNetwork; ML Programs run on "
                           f"convbench's MIL interpreter")
        if arith not in ("fp32", "fp16"):
            raise ValueError(f"arith must be 'fp32' or 'fp16', got {arith!r}")
        self.net = getattr(spec, kind)
        self.arith = arith
        #: called as tap(layer, outputs) after each layer (`convbench explain` reads them all)
        self.tap = None
        self.inputs = [i.name for i in spec.description.input]
        self.outputs = [o.name for o in spec.description.output]
        unknown = list(self._unknown(self.net, "main"))
        if unknown:
            lines = "\n".join(f"  {k} (layer {n!r} in {w})" for k, n, w in unknown)
            raise UnsupportedOpError(f"the model uses layers convbench's NeuralNetwork "
                                     f"interpreter does not implement:\n{lines}")

    def _unknown(self, net, where):
        for layer in net.layers:
            kind = layer.WhichOneof("layer")
            if kind not in LAYERS:
                yield kind, layer.name, where
            for field in NESTED.get(kind, ()):
                sub = getattr(getattr(layer, kind), field)
                yield from self._unknown(sub, f"{where}/{layer.name}.{field}")

    def run_network(self, net, env: dict) -> None:
        for layer in net.layers:
            kind = layer.WhichOneof("layer")
            xs = [env[name] for name in layer.input]
            try:
                out = LAYERS.get(kind)(getattr(layer, kind), xs, self, env)
            except (MilError, ControlSignal):
                raise
            except Exception as e:
                raise MilError(f"layer {kind} {layer.name!r} failed: {type(e).__name__}: "
                               f"{e}") from e
            outs = out if isinstance(out, (list, tuple)) else [out]
            for name, value in zip(layer.output, outs):
                if self.arith == "fp16" and value.is_floating_point():
                    value = value.half().float()
                env[name] = value
            if self.tap is not None:
                self.tap(layer, [env[name] for name in layer.output])

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        env = {n: torch.as_tensor(np.asarray(inputs[n])).float() for n in self.inputs}
        with torch.inference_mode():
            self.run_network(self.net, env)
        return [env[n].numpy() for n in self.outputs]
