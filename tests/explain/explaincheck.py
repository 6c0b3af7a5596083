"""Helpers of the explain tests: a zoo model and its conversions, and their traces."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convbench.records import Artifact

TARGETS = ("onnx", "coreml-fp32", "coreml", "coreml-nn")


@dataclass
class Pair:
    framework: str
    model: str
    original: Artifact
    converted: dict[str, Artifact]
    x: np.ndarray  # canonical layout (NCHW)


def traces(pair: Pair, target: str | None = None, samples: int = 4):
    """The original's trace (and the converted one's) on the pair's first `samples` rows."""
    from convbench.explain import _trace

    xs = pair.x[:samples]
    to = _trace(pair.original, xs, None, {}, None)
    return to if target is None else (to, _trace(pair.converted[target], xs, None, {}, None))
