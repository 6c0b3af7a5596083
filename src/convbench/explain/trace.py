"""What a runner exposes to explain a conversion: every layer's (or op's) output, in order.

A `Trace` is the run of one model on a few samples, one `Node` per layer of an original or op
of a converted graph, each with its output value, its weights and its hyperparameters. Runners
build it (`Runner.trace`); `convbench.explain` compares two of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Weights smaller than this are hyperparameters (a pad, a perm, a scalar), not parameters.
MIN_WEIGHT_SIZE = 2


@dataclass
class Node:
    """One layer or op: what it reads, the value it produced, its parameters and attributes."""

    name: str
    kind: str  # layer class ("Conv2d", "Dense") or op type ("Conv", "conv", "convolution")
    inputs: list[str]  # names of the tensors it reads (constants excluded)
    output: str  # the name of its (first) output tensor
    value: np.ndarray | None  # that output on the traced samples; None when not a float tensor
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"  # the declared storage type of its output
    weights_dtype: str | None = None  # the stored type of its weights, when they have one
    sources: dict[str, str] = field(default_factory=dict)  # weight -> the constant holding it

    @property
    def shape(self) -> tuple[int, ...] | None:
        return None if self.value is None else tuple(self.value.shape)


@dataclass
class Trace:
    """A model run on the traced samples, node by node in execution order.

    `input` is what the model was fed (in its own layout); `stopped` says where and why the run
    ended early (a converted graph that fails part-way is explained up to there)."""

    nodes: list[Node]
    input_name: str
    input: np.ndarray
    layout: str = "nchw"
    stopped: str | None = None

    def by_output(self) -> dict[str, Node]:
        return {n.output: n for n in self.nodes}


def as_float(value) -> np.ndarray | None:
    """A traced value as a float32 array, or None when it is not a floating tensor."""
    if value is None:
        return None
    if hasattr(value, "detach"):  # torch
        if not value.is_floating_point() or value.ndim == 0:
            return None
        return value.detach().float().cpu().numpy()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # TensorFlow
        value = value.numpy()
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.floating) or arr.ndim == 0:
        return None
    return arr.astype(np.float32, copy=False)


def plain(value) -> Any:
    """A hyperparameter as plain Python (ints, floats, strings and lists of them)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "ListFields"):  # a protobuf message: its set fields
        return {fd.name: plain(v) for fd, v in value.ListFields()}
    if hasattr(value, "__iter__") and not isinstance(value, (str, dict)):
        return [plain(v) for v in value]  # protobuf repeated fields
    return value
