"""Runners: one runtime each, registered by name: the frameworks' own (PyTorch, Keras) here,
each format's from its plug-in (`convbench.formats`)."""

from convbench.formats import FORMATS
from convbench.runtimes.base import RUNNERS, Runner, RuntimeUnavailable, default_runtime, \
    open_runner

RUNNERS.register_lazy("torch", "convbench.runtimes.torch_runner:TorchRunner")
RUNNERS.register_lazy("keras", "convbench.runtimes.keras_runner:KerasRunner")
for _fmt in FORMATS.names():
    for _runtime, _path in FORMATS.get(_fmt).runtimes.items():
        RUNNERS.register_lazy(_runtime, _path)

__all__ = ["RUNNERS", "Runner", "RuntimeUnavailable", "default_runtime", "open_runner"]
