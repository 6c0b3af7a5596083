"""PyTorch -> ONNX with `torch.onnx.export`: dynamo (default) or the TorchScript exporter."""

from __future__ import annotations

from pathlib import Path

from convbench.convert.base import Converter
from convbench.records import Artifact


class OnnxFromTorch(Converter):
    """Options: `exporter` "dynamo" | "torchscript", `opset` (None: the exporter's default),
    `factory` for a user model outside the zoo. The batch axis is dynamic; weights are embedded."""

    source, target, suffix = "torch", "onnx", ".onnx"
    packages = ("torch", "onnx", "onnxscript")

    def _convert(self, src: Artifact, out: Path) -> dict:
        import onnx
        import torch

        from convbench.models.load import load_torch

        model = load_torch(src.path, src.meta.get("architecture"), self.options.get("factory"))
        exporter = self.options.get("exporter", "dynamo")
        if exporter not in ("dynamo", "torchscript"):
            raise ValueError(f"exporter must be 'dynamo' or 'torchscript', got {exporter!r}")
        shape, dtype = src.meta["input_shape"], src.meta.get("input_dtype", "float32")
        # dynamo needs an example batch of at least 2 to keep the batch axis symbolic
        example = torch.zeros((2, *shape), dtype=getattr(torch, dtype))
        common = dict(input_names=["input"], output_names=["output"],
                      opset_version=self.options.get("opset"))
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1)
            torch.onnx.export(model, (example,), str(out), dynamo=True, external_data=False,
                              verbose=False, dynamic_shapes=({0: batch},), **common)
        else:
            torch.onnx.export(model, (example,), str(out), dynamo=False,
                              do_constant_folding=True,
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                              **common)
        proto = onnx.load(str(out))
        onnx.checker.check_model(proto, full_check=True)
        return {"layout": src.meta.get("layout", "nchw"), "input_shape": shape,
                "input_dtype": dtype, "exporter": exporter,
                "opset": max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                "holds": "ONNX graph with embedded weights"}
