"""Keras -> Core ML.

Route "keras" (default) hands the Keras model to `coremltools.convert` (its TensorFlow frontend;
the input stays NHWC). coremltools 9 cannot convert Keras 3 recurrent layers (its TensorFlow
while-loop conversion breaks); route "torch-twin" copies the Keras weights into the zoo's PyTorch
twin and converts that instead, and is labelled so in the results (the input becomes the twin's).
"""

from __future__ import annotations

from pathlib import Path

from convbench.convert.base import Converter
from convbench.convert.coreml_common import (convert_options, save_model, suffix,
                                             with_batch_routes)
from convbench.records import Artifact


class CoremlFromKeras(Converter):
    """Options: `route` "keras" | "torch-twin", and the Core ML options of `CoremlFromTorch`."""

    source, target = "keras", "coreml"
    packages = ("tensorflow-cpu", "tensorflow", "keras", "coremltools")

    def output_suffix(self) -> str:
        return suffix(self.options)

    def _convert(self, src: Artifact, out: Path) -> dict:
        route = self.options.get("route", "keras")
        if route == "torch-twin":
            return self._via_twin(src, out)
        if route != "keras":
            raise ValueError(f"route must be 'keras' or 'torch-twin', got {route!r}")
        from convbench.coreml_import import coremltools

        ct = coremltools()
        import numpy as np

        from convbench.convert.keras_routes import with_fallbacks
        from convbench.models.load import load_keras

        model = load_keras(src.path, trust=self.options.get("trust_model", False),
                           custom=self.options.get("custom_objects"))
        shape, dtype = src.meta["input_shape"], src.meta.get("input_dtype", "float32")
        ml_dtype = np.int32 if dtype.startswith("int") else np.float32

        def convert(m) -> dict:
            try:  # the graph's placeholder is named after the Input layer
                name = m.inputs[0].name
            except (AttributeError, IndexError, TypeError, ValueError):  # subclassed
                name = "input"

            def with_batch(batch_shape, batch: str) -> dict:
                inputs = [ct.TensorType(name=name, dtype=ml_dtype, shape=batch_shape)]
                mlmodel = ct.convert(m, source="tensorflow", inputs=inputs,
                                     **convert_options(self.options))
                return save_model(mlmodel, out, src, self.options, route="keras")

            return with_batch_routes(list(shape), with_batch, src.meta.get("free_axes", ()))

        return with_fallbacks(model, convert, shape, dtype)

    def _via_twin(self, src: Artifact, out: Path) -> dict:
        import tempfile

        import torch

        from convbench.convert.coreml_from_torch import CoremlFromTorch
        from convbench.models.load import load_keras
        from convbench.models.transfer import torch_twin

        arch = src.meta.get("architecture")
        if not arch:
            raise ValueError("route 'torch-twin' needs a zoo model (its architecture record)")
        twin = torch_twin(load_keras(src.path), arch)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "twin.pt"
            torch.save(twin.state_dict(), path)
            meta = {**src.meta, "layout": "nchw", "input_shape": arch["input_shape"]}
            twin_art = Artifact.from_path("torch", path, **meta)
            options = {k: v for k, v in self.options.items() if k != "route"}
            result = CoremlFromTorch(**options)._convert(twin_art, out)
        # the converted model takes the Keras original's inputs only where layouts agree
        return {**result, "route": "keras-weights-in-torch-twin",
                "layout": "nchw" if len(arch["input_shape"]) == 3 else src.meta.get("layout")}
