"""PyTorch -> Core ML with `coremltools.convert`, from a traced TorchScript module (default)
or from `torch.export` (decomposed with `run_decompositions({})`)."""

from __future__ import annotations

from pathlib import Path

from convbench.convert.base import MAX_BATCH, Converter
from convbench.convert.coreml_common import (convert_options, save_model, suffix,
                                             with_batch_routes)
from convbench.records import Artifact


class CoremlFromTorch(Converter):
    """Options: `source` "trace" | "export", `convert_to` "mlprogram" | "neuralnetwork",
    `precision` "fp16" | "fp32" (ML Program only), `minimum_deployment_target` ("iOS15", ...),
    `factory` for a user model outside the zoo, `trust_model` for TorchScript and
    ExportedProgram files."""

    source, target = "torch", "coreml"
    packages = ("torch", "coremltools")

    def output_suffix(self) -> str:
        return suffix(self.options)

    def _convert(self, src: Artifact, out: Path) -> dict:
        from convbench.coreml_import import coremltools

        ct = coremltools()
        import numpy as np
        import torch

        model = self.torch_module(src)
        shape, dtype = src.meta["input_shape"], src.meta.get("input_dtype", "float32")
        example = torch.zeros((2, *shape), dtype=getattr(torch, dtype))
        how = self.options.get("source", "trace")
        if how == "trace":  # a TorchScript file is already a graph coremltools takes
            graph = model if isinstance(model, torch.jit.ScriptModule) else \
                torch.jit.trace(model, example)
        elif how == "export":
            batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
            graph = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
            graph = graph.run_decompositions({})
        else:
            raise ValueError(f"source must be 'trace' or 'export', got {how!r}")
        # Core ML has no int64 tensors: token ids enter as int32
        ml_dtype = np.int32 if dtype.startswith("int") else np.float32

        def convert(batch_shape, batch: str) -> dict:
            inputs = [ct.TensorType(name="input", dtype=ml_dtype, shape=batch_shape)]
            mlmodel = ct.convert(graph, inputs=inputs, **convert_options(self.options))
            return save_model(mlmodel, out, src, self.options, route=f"torch-{how}")

        return with_batch_routes(list(shape), convert, src.meta.get("free_axes", ()))
