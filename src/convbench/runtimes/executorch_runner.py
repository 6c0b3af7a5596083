"""ExecuTorch's Python runtime (`executorch.runtime.Runtime`) running a `.pte` program."""

from __future__ import annotations

import numpy as np

from convbench.runtimes.base import Runner, in_fixed_batches


class ExecutorchRunner(Runner):
    """Options: `threads` (the size of ExecuTorch's thread pool, which XNNPACK uses; one pool
    per process). A program runs at most the batch its memory was planned for (its input's
    planned size, which `torch.export` may have narrowed below the range asked for), larger
    batches as loops over that size; a program exported at a fixed batch, as loops over it."""

    name, formats = "executorch", ("executorch",)
    module = "executorch.runtime"
    requires = {"executorch": "'convbench[executorch]'"}

    def _load(self):
        from executorch.runtime import Runtime

        if self.threads:
            from executorch.extension.pybindings import portable_lib

            portable_lib._unsafe_reset_threadpool(self.threads)
        self.method = Runtime.get().load_program(self.artifact.path).load_method("forward")
        planned = int(self.method.metadata.input_tensor_meta(0).sizes()[0])
        self._fixed = planned if self.artifact.meta.get("batch") == "fixed" else None
        self._max = planned

    def _run(self, x: np.ndarray) -> np.ndarray:
        import torch

        return self.method.execute([torch.from_numpy(np.ascontiguousarray(x))])[0].numpy()

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self._fixed is not None and len(x) != self._fixed:
            return in_fixed_batches(x, self._fixed, self._run)
        if len(x) <= self._max:
            return self._run(x)
        return np.concatenate([self._run(x[i:i + self._max])
                               for i in range(0, len(x), self._max)])

    def describe(self):
        return {**super().describe(), "max_batch": getattr(self, "_max", None)}

    def close(self):
        self.method = None
