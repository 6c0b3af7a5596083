"""ONNX Runtime `InferenceSession`, providers and thread count configurable and recorded."""

from __future__ import annotations

import numpy as np

from convbench.runtimes.base import Runner


class OrtRunner(Runner):
    """Options: `providers` (default CPU), `threads` (intra-op; None: ORT's default)."""

    name, formats = "onnxruntime", ("onnx",)
    module = "onnxruntime"

    def _load(self):
        import onnxruntime as ort

        so = ort.SessionOptions()
        if self.threads:
            so.intra_op_num_threads = self.threads
        so.log_severity_level = 3
        providers = self.options.get("providers") or ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(self.artifact.path, so, providers=providers)
        self.providers = self.session.get_providers()
        self._input = self.session.get_inputs()[0].name

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input: x})[0]

    def describe(self):
        return {**super().describe(), "providers": getattr(self, "providers", None)}

    def close(self):
        self.session = None
