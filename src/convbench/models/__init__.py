"""The model zoo: each architecture defined once per framework with the same layers.

`ZOO` maps a model name to its `ModelSpec`; `build(framework, name, ...)` returns a fresh model.
Images enter PyTorch models as NCHW and Keras models as NHWC; all models end in a softmax.
"""

from convbench.models.spec import ZOO, ModelSpec, build, count_params, to_layout

__all__ = ["ZOO", "ModelSpec", "build", "count_params", "to_layout"]
