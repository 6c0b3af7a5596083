"""Building attack `Target`s from artifacts and loaded runners (canonical layout outside)."""

from __future__ import annotations

import numpy as np

from convbench.attacks.base import Target, load_art
from convbench.models import to_layout
from convbench.records import Artifact
from convbench.runtimes.base import Runner


def _framework_layout(art: Artifact) -> str:
    return "keras" if art.meta.get("layout") == "nhwc" else "torch"


def target_for(art: Artifact, runner: Runner, nb_classes: int, canonical_shape: tuple[int, ...],
               vocab: dict[int, str] | None = None, probabilities: bool = True) -> Target:
    """A Target over a loaded runner; with gradients when the runner is the original framework
    (`probabilities`: the model ends in a softmax; else its outputs are logits)."""
    layout = _framework_layout(art)
    image = len(canonical_shape) == 3

    infer_all, relayout = runner.infer_all, image and layout == "keras"

    def predict(x: np.ndarray) -> np.ndarray:  # attacks call it many times: kept bare
        if relayout or (image and type(x) is not np.ndarray):  # NHWC, or a user's images
            x = to_layout(x, layout)
        return infer_all(x, 128)

    estimator = None
    if image and "gradients" in runner.capabilities:
        estimator = (lambda: _torch_estimator(runner, nb_classes, canonical_shape,
                                              probabilities)) \
            if art.format == "torch" else \
            (lambda: _keras_estimator(runner, nb_classes, canonical_shape, probabilities))
    return Target(predict, nb_classes, tuple(canonical_shape), estimator, vocab)


def _torch_estimator(runner, nb_classes, shape, probabilities=True):
    import torch
    load_art()
    from art.estimators.classification import PyTorchClassifier

    model = runner.model
    # gradients of the cross-entropy of the logits; a model without a logits body gets its
    # log-probabilities, which softmax maps back to the same probabilities
    logits = model.body if hasattr(model, "body") else \
        _log_probabilities(model) if probabilities else model
    return PyTorchClassifier(model=logits.eval(), loss=torch.nn.CrossEntropyLoss(),
                             input_shape=shape, nb_classes=nb_classes, clip_values=(0.0, 1.0),
                             device_type="cpu")


def _log_probabilities(model):
    """A module returning log(model(x)): logits for a model that ends in a softmax."""
    import torch

    class LogProbabilities(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return torch.log(self.inner(x).clamp_min(1e-12))

    return LogProbabilities(model)


def _keras_estimator(runner, nb_classes, shape, probabilities=True):
    import tensorflow as tf
    load_art()
    from art.estimators.classification import TensorFlowV2Classifier

    model = runner.model

    def nchw_model(x, training=False):  # ART works in canonical NCHW; Keras takes NHWC
        return model(tf.transpose(x, [0, 2, 3, 1]), training=training)

    return TensorFlowV2Classifier(
        model=nchw_model, nb_classes=nb_classes, input_shape=shape, clip_values=(0.0, 1.0),
        loss_object=tf.keras.losses.CategoricalCrossentropy(from_logits=not probabilities))
