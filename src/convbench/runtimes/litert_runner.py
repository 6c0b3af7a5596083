"""The LiteRT interpreter (`ai_edge_litert.interpreter.Interpreter`, XNNPACK on CPU)."""

from __future__ import annotations

import numpy as np

from convbench.runtimes.base import Runner, in_fixed_batches


class LitertRunner(Runner):
    """Options: `threads`. The input is resized to each batch (a model converted with a
    dynamic batch); a model with a fixed batch runs larger batches as loops."""

    name, formats = "litert", ("litert",)
    module = "ai_edge_litert.interpreter"
    requires = {"ai_edge_litert": "ai-edge-litert"}

    def _load(self):
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=self.artifact.path, num_threads=self.threads)
        inp = self.interp.get_input_details()[0]
        self._in, self._dtype = inp["index"], inp["dtype"]
        self._out = self.interp.get_output_details()[0]["index"]
        self._dynamic = int(inp["shape_signature"][0]) == -1
        self._fixed = None if self._dynamic else int(inp["shape"][0])
        self._batch = int(inp["shape"][0])
        self.interp.allocate_tensors()

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self._dynamic and len(x) != self._batch:
            self.interp.resize_tensor_input(self._in, [len(x), *x.shape[1:]])
            self.interp.allocate_tensors()
            self._batch = len(x)
        self.interp.set_tensor(self._in, np.ascontiguousarray(x, dtype=self._dtype))
        self.interp.invoke()
        return self.interp.get_tensor(self._out)  # a copy: the interpreter reuses its buffer

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self._fixed is None or len(x) == self._fixed:
            return self._run(x)
        return in_fixed_batches(x, self._fixed, self._run)

    def trace(self, x: np.ndarray):
        """Every op's output on `x` (the interpreter keeps all its tensors; quantised ones
        read back as real values)."""
        from convbench.explain.litert_trace import trace_litert

        return trace_litert(self.artifact.path, x, self.threads)

    def close(self):
        self.interp = None
