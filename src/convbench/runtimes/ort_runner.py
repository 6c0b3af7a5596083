"""ONNX Runtime `InferenceSession`, providers and thread count configurable and recorded."""

from __future__ import annotations

import numpy as np

from convbench.runtimes.base import Runner, in_fixed_batches


#: ONNX Runtime's graph optimisation levels by the names convbench takes.
LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
          "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def optimization_level(name: str):
    import onnxruntime as ort

    if name not in LEVELS:
        raise ValueError(f"ONNX Runtime optimisation {name!r}: give one of {', '.join(LEVELS)}")
    return getattr(ort.GraphOptimizationLevel, LEVELS[name])


class OrtRunner(Runner):
    """Options: `providers` (default CPU), `threads` (intra-op; None: ORT's default),
    `optimization` (graph optimisation level, default "all"; a model's meta `ort_optimization`
    overrides it: an ONNX source runs unoptimised, its ORT-optimised twin as saved). A model
    with a fixed batch runs larger batches as loops."""

    name, formats = "onnxruntime", ("onnx",)
    module = "onnxruntime"

    def _load(self):
        import onnxruntime as ort

        so = ort.SessionOptions()
        if self.threads:
            so.intra_op_num_threads = self.threads
        so.log_severity_level = 3
        self.optimization = self.artifact.meta.get("ort_optimization") or \
            self.options.get("optimization", "all")
        so.graph_optimization_level = optimization_level(self.optimization)
        providers = self.options.get("providers") or ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(self.artifact.path, so, providers=providers)
        self.providers = self.session.get_providers()
        first = self.session.get_inputs()[0]
        self._input = first.name
        batch = first.shape[0] if first.shape else None
        self._fixed = batch if isinstance(batch, int) and batch > 0 else None

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self._fixed is None or len(x) == self._fixed:
            return self.session.run(None, {self._input: x})[0]
        return in_fixed_batches(x, self._fixed,
                                lambda part: self.session.run(None, {self._input: part})[0])

    def describe(self):
        return {**super().describe(), "providers": getattr(self, "providers", None),
                "optimization": getattr(self, "optimization", None),
                **({"fixed_batch": self._fixed} if getattr(self, "_fixed", None) else {})}

    def close(self):
        self.session = None

    def trace(self, x: np.ndarray):
        """Every node's output on `x` (each made a graph output; the graph run unoptimised)."""
        from convbench.explain.onnx_trace import trace_onnx

        trace = trace_onnx(self.artifact.path, x, self.threads)
        trace.layout = self.artifact.meta.get("layout", trace.layout)
        return trace
