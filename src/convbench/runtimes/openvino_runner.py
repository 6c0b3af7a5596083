"""OpenVINO's CPU plugin (`openvino.Core().compile_model(..., "CPU")`)."""

from __future__ import annotations

import numpy as np

from convbench.runtimes.base import Runner

#: inference precisions the CPU plugin takes (`INFERENCE_PRECISION_HINT`)
PRECISIONS = ("f32", "bf16", "f16")


class OpenvinoRunner(Runner):
    """Options: `precision` "f32" (default) | "bf16" | "f16", the CPU plugin's inference
    precision, and `threads`. OpenVINO's own default on CPUs with bfloat16 instructions is bf16,
    which would round every activation: convbench asks for f32 unless told, so the model runs
    at the precision its file declares, and records the precision it got."""

    name, formats = "openvino", ("openvino",)
    module = "openvino"
    requires = {"openvino": "openvino"}

    @classmethod
    def available(cls, **options):
        ok, why = super().available(**options)
        if not ok:
            return ok, why
        precision = options.get("precision", "f32")
        if precision not in PRECISIONS:
            return False, f"precision {precision!r}: give one of {', '.join(PRECISIONS)}"
        return True, ""

    def _load(self):
        import openvino as ov

        from pathlib import Path

        config = {"INFERENCE_PRECISION_HINT": self.options.get("precision", "f32")}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        core = ov.Core()
        self.compiled = core.compile_model(str(Path(self.artifact.path) / "model.xml"), "CPU",
                                           config)
        got = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = got.to_string() if hasattr(got, "to_string") else str(got)
        self._request = self.compiled.create_infer_request()
        self._output = self.compiled.output(0)
        self._dtype = self.compiled.input(0).get_element_type().to_dtype()

    def infer(self, x: np.ndarray) -> np.ndarray:
        if x.dtype != self._dtype:  # token ids: the model may take int64 where data is int32
            x = x.astype(self._dtype)
        return self._request.infer({0: x}, share_inputs=True)[self._output].copy()

    def trace(self, x: np.ndarray):
        """Every op's output on `x` (each added as a model output), at the runner's
        precision."""
        from convbench.explain.openvino_trace import trace_openvino

        trace = trace_openvino(self.artifact.path, x, self.options.get("precision", "f32"),
                               self.threads)
        trace.layout = self.artifact.meta.get("layout", "nchw")
        return trace

    def describe(self):
        return {**super().describe(), "precision": getattr(self, "precision", None)}

    def close(self):
        self._request = self.compiled = None
