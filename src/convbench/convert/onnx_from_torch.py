"""PyTorch -> ONNX with `torch.onnx.export`: dynamo (default) or the TorchScript exporter."""

from __future__ import annotations

from pathlib import Path

from convbench.convert.base import Converter, about_shapes, first_route
from convbench.records import Artifact


class OnnxFromTorch(Converter):
    """Options: `exporter` "dynamo" | "torchscript", `opset` (None: the exporter's default),
    `factory` for a user model outside the zoo, `trust_model` for TorchScript and ExportedProgram
    files. The batch axis is dynamic where the exporter can keep it so; weights are embedded.

    With `fallbacks` (a user's model; a study's cells keep the route they name), the routes a
    user would try: the chosen exporter with a dynamic batch, then the other exporter (a
    TorchScript module cannot go through dynamo), then, for an error about shapes, the chosen
    one with a static batch of 1 (larger batches then run as loops). Earlier routes' errors
    are recorded."""

    source, target, suffix = "torch", "onnx", ".onnx"
    packages = ("torch", "onnx", "onnxscript")

    def _convert(self, src: Artifact, out: Path) -> dict:
        import onnx
        import torch

        model = self.torch_module(src)
        exporter = self.options.get("exporter", "dynamo")
        if exporter not in ("dynamo", "torchscript"):
            raise ValueError(f"exporter must be 'dynamo' or 'torchscript', got {exporter!r}")
        shape, dtype = src.meta["input_shape"], src.meta.get("input_dtype", "float32")
        common = dict(input_names=["input"], output_names=["output"],
                      opset_version=self.options.get("opset"))

        free = list(src.meta.get("free_axes", []))  # a sequence axis the model leaves free

        def export(how: str, dynamic: bool) -> dict:
            # dynamo needs an example batch of at least 2 to keep the batch axis symbolic
            example = torch.zeros((2 if dynamic else 1, *shape), dtype=getattr(torch, dtype))
            if how == "dynamo":
                dims = ({0: torch.export.Dim("batch", min=1),
                         **{i + 1: torch.export.Dim(f"axis{i + 1}", min=1) for i in free}},) \
                    if dynamic else None
                torch.onnx.export(model, (example,), str(out), dynamo=True,
                                  external_data=False, verbose=False, dynamic_shapes=dims,
                                  **common)
            else:
                axes = {"input": {0: "batch", **{i + 1: f"axis{i + 1}" for i in free}},
                        "output": {0: "batch"}} if dynamic else None
                torch.onnx.export(model, (example,), str(out), dynamo=False,
                                  do_constant_folding=True, dynamic_axes=axes, **common)
            # a static export fixes every axis: a free sequence is free no more
            return {"exporter": how, "batch": "dynamic" if dynamic else "fixed",
                    "free_axes": free if dynamic else []}

        other = "torchscript" if exporter == "dynamo" else "dynamo"
        routes = [(f"{exporter}-dynamic", lambda: export(exporter, True))]
        if self.options.get("fallbacks"):
            routes += [(f"{other}-dynamic", lambda: export(other, True)),
                       (f"{exporter}-static", lambda: export(exporter, False))]
        meta = first_route(routes, about_shapes)
        proto = onnx.load(str(out))
        onnx.checker.check_model(proto, full_check=True)
        return {**meta, "layout": src.meta.get("layout", "nchw"), "input_shape": shape,
                "input_dtype": dtype,
                "opset": max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                "holds": "ONNX graph with embedded weights"}
