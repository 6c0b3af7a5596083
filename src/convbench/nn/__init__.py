"""An interpreter for Core ML NeuralNetwork (`.mlmodel`) models: the format the study used.

`NeuralNetworkInterpreter(spec)` checks every layer (loop and branch bodies included) against
`nn.layers`, naming unknown ones before any input runs; `run(inputs)` executes the layers in
order on torch tensors. The NeuralNetwork runtime computes in fp32; `arith="fp16"` rounds each
layer's output to fp16 to model a half-precision engine.
"""


def __getattr__(name):
    if name == "NeuralNetworkInterpreter":
        from convbench.nn.interpreter import NeuralNetworkInterpreter

        return NeuralNetworkInterpreter
    raise AttributeError(name)


__all__ = ["NeuralNetworkInterpreter"]
