"""PyTorch: eval mode, no autograd, CPU (the original of a PyTorch cell)."""

from __future__ import annotations

import numpy as np

from convbench.runtimes.base import Runner


class TorchRunner(Runner):
    name, formats = "torch", ("torch",)
    module = "torch"
    capabilities = frozenset({"predict", "gradients"})

    def _load(self):
        import torch

        from convbench.models.load import load_torch

        if self.threads:
            torch.set_num_threads(self.threads)
        self.threads = torch.get_num_threads()
        self.model = load_torch(self.artifact.path, self.artifact.meta.get("architecture"),
                                self.artifact.meta.get("factory"), self.trust)
        self._torch = torch

    def infer(self, x: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self.model(self._torch.from_numpy(x)).numpy()

    def trace(self, x: np.ndarray):
        """Every module's and function's output on `x` (an FX trace of the model; forward
        hooks on its modules when the model does not trace symbolically)."""
        from convbench.explain.torch_trace import trace_torch

        return trace_torch(self.model, x)
