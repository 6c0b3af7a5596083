"""Runners: one runtime each (PyTorch, Keras, ONNX Runtime, Core ML), registered by name."""

from convbench.runtimes.base import RUNNERS, Runner, RuntimeUnavailable, default_runtime, \
    open_runner

RUNNERS.register_lazy("torch", "convbench.runtimes.torch_runner:TorchRunner")
RUNNERS.register_lazy("keras", "convbench.runtimes.keras_runner:KerasRunner")
RUNNERS.register_lazy("onnxruntime", "convbench.runtimes.ort_runner:OrtRunner")
RUNNERS.register_lazy("coreml", "convbench.runtimes.coreml_runner:CoremlRunner")

__all__ = ["RUNNERS", "Runner", "RuntimeUnavailable", "default_runtime", "open_runner"]
