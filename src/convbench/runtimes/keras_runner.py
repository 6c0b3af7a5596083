"""Keras on TensorFlow: a traced inference function (not `predict()`, which is slow per batch)."""

from __future__ import annotations

import numpy as np

from convbench.runtimes.base import Runner


class KerasRunner(Runner):
    name, formats = "keras", ("keras",)
    module = "keras"
    capabilities = frozenset({"predict", "gradients"})

    def _load(self):
        import tensorflow as tf

        from convbench.models.load import load_keras

        if self.threads:  # only possible before TensorFlow's first op; ignored after
            try:
                tf.config.threading.set_intra_op_parallelism_threads(self.threads)
            except RuntimeError:
                pass
        self.threads = tf.config.threading.get_intra_op_parallelism_threads() or None
        self.model = load_keras(self.artifact.path, trust=self.trust,
                                custom=self.artifact.meta.get("custom_objects"))
        model = self.model
        self._fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self._fn(x).numpy()

    def trace(self, x: np.ndarray):
        """Every layer's output on `x` (and the pre-activation of layers with a built-in
        activation), through a functional sub-model."""
        from convbench.explain.keras_trace import trace_keras

        return trace_keras(self.model, x)
