"""Runners: one runtime each (PyTorch, Keras, ONNX Runtime), registered by name."""

from convbench.runtimes.base import RUNNERS, Runner, default_runtime, open_runner

RUNNERS.register_lazy("torch", "convbench.runtimes.torch_runner:TorchRunner")
RUNNERS.register_lazy("keras", "convbench.runtimes.keras_runner:KerasRunner")
RUNNERS.register_lazy("onnxruntime", "convbench.runtimes.ort_runner:OrtRunner")

__all__ = ["RUNNERS", "Runner", "default_runtime", "open_runner"]
