"""`ModelSpec`: one zoo architecture, its default dataset, options and per-framework builders."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convbench.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    """An architecture of the zoo.

    Attributes:
        name: zoo name, the same in both frameworks.
        kind: "image" or "text": what it takes as input.
        dataset: the dataset of the study it is trained on by default.
        defaults: architecture options (width multiplier, hidden size, ...) and their defaults.
        extra_torch_params: parameters PyTorch's own layers carry beyond Keras' (e.g. a second
            LSTM bias) as a function of the options; 0 where the layers hold the same numbers.
    """

    name: str
    kind: str
    dataset: str
    defaults: dict[str, Any] = field(default_factory=dict)
    extra_torch_params: Any = None

    def options(self, **overrides: Any) -> dict[str, Any]:
        unknown = set(overrides) - set(self.defaults)
        if unknown:
            raise ValueError(f"model {self.name!r} has no option(s) {sorted(unknown)}; "
                             f"its options are {sorted(self.defaults)}")
        return {**self.defaults, **overrides}


ZOO: Registry[ModelSpec] = Registry("model")

#: VGG-16's convolution widths, "M" for a 2x2 max pool (used by both frameworks' builders).
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
             512, 512, 512, "M"]


def _lstm_extra(o):  # PyTorch LSTM keeps b_ih and b_hh (4h each); Keras one 4h bias per layer
    return 4 * o["hidden"] * o["layers"]


for _spec in (
    ModelSpec("lenet5", "image", "mnist", {"width": 1.0}),
    ModelSpec("resnet18", "image", "cifar10", {"width": 1.0}),
    ModelSpec("vgg16", "image", "cifar10", {"width": 1.0}),
    # Keras GRU with reset_after=True (its default) carries two biases, as PyTorch's GRU does.
    ModelSpec("lstm", "text", "imdb", {"embed": 64, "hidden": 256, "layers": 2}, _lstm_extra),
    ModelSpec("gru", "text", "imdb", {"embed": 64, "hidden": 256, "layers": 2}),
):
    ZOO.register(_spec.name, _spec)

_BUILDERS = {"torch": "convbench.models.torch_zoo", "keras": "convbench.models.keras_zoo"}


def build(framework: str, name: str, input_shape: tuple[int, ...], num_classes: int,
          vocab: int | None = None, **options: Any):
    """A fresh, untrained model of the zoo.

    Args:
        framework: "torch" or "keras".
        input_shape: one sample's shape in PyTorch layout (C, H, W) for images, (T,) for text.
        vocab: vocabulary size of text models.
    """
    spec = ZOO.get(name)
    if framework not in _BUILDERS:
        raise ValueError(f"unknown framework {framework!r}; choose one of {sorted(_BUILDERS)}")
    module = importlib.import_module(_BUILDERS[framework])
    opts = spec.options(**options)
    if spec.kind == "text":
        if not vocab:
            raise ValueError(f"{name} needs the vocabulary size (vocab=...)")
        opts["vocab"] = vocab
    return getattr(module, name)(tuple(input_shape), num_classes, **opts)


def count_params(framework: str, model) -> int:
    """Every number a model stores: weights and, for batch norm, its running statistics."""
    if framework == "keras":
        return int(model.count_params())
    n = sum(p.numel() for p in model.parameters())
    return int(n + sum(b.numel() for k, b in model.named_buffers()
                       if not k.endswith("num_batches_tracked")))


def to_layout(x: np.ndarray, framework: str) -> np.ndarray:
    """Turn canonical NCHW images into the framework's layout (NHWC for Keras); text unchanged.
    A user's data read on demand (`convbench.data.user.Rows`) stays so, in that layout."""
    if hasattr(x, "in_layout"):
        return x.in_layout("nhwc" if framework == "keras" and x.ndim == 4 else "nchw")
    if framework == "keras" and x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x
