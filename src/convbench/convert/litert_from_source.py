"""Keras or PyTorch -> LiteRT (`.tflite`).

Keras: the model is exported as a SavedModel (`Model.export`) and converted with TensorFlow's
`TFLiteConverter`; the batch axis stays dynamic (the interpreter resizes its input), and where
the converter needs static shapes (Keras' recurrent layers lower to tensor lists that must
be), the batch is fixed at 1, as a user would (larger batches then run as loops). PyTorch:
`litert_torch.convert` (the `litert-torch` package, an optional install: it pulls JAX and more),
at a fixed batch of 1, as it exports. `precision` "fp32" (default) or "fp16": post-training
FP16 weights (`tflite-fp16`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from convbench.convert.base import Converter, about_shapes, first_route
from convbench.records import Artifact

PRECISIONS = ("fp32", "fp16")


class _LitertConverter(Converter):
    target, suffix = "litert", ".tflite"

    def _precision(self) -> str:
        p = self.options.get("precision", "fp32")
        if p not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {p!r}")
        return p


class LitertFromKeras(_LitertConverter):
    """Options: `precision`, `trust_model`, `custom_objects`."""

    source = "keras"
    packages = ("tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert")

    def _convert(self, src: Artifact, out: Path) -> dict:
        import tensorflow as tf

        from convbench.convert.keras_routes import input_signature
        from convbench.models.load import load_keras

        precision = self._precision()
        model = load_keras(src.path, trust=self.options.get("trust_model", False),
                           custom=self.options.get("custom_objects"))
        shape, dtype = input_signature(model, src.meta.get("input_shape"),
                                       src.meta.get("input_dtype"))

        def export(batch: int | None) -> dict:
            with tempfile.TemporaryDirectory() as tmp:
                saved = str(Path(tmp) / "saved")
                model.export(saved, format="tf_saved_model", verbose=False,
                             input_signature=[tf.TensorSpec((batch, *shape), dtype)])
                converter = tf.lite.TFLiteConverter.from_saved_model(saved)
                if precision == "fp16":
                    converter.optimizations = [tf.lite.Optimize.DEFAULT]
                    converter.target_spec.supported_types = [tf.float16]
                out.write_bytes(converter.convert())
            return {"batch": "dynamic" if batch is None else "fixed"}

        meta = first_route([("dynamic", lambda: export(None)), ("fixed", lambda: export(1))],
                           about_shapes, key="batch_route", free=1)
        return {**meta, "layout": src.meta.get("layout", "nhwc"), "input_shape": list(shape),
                "input_dtype": str(dtype), "precision": precision,
                "converter": "TFLiteConverter",
                "holds": f"LiteRT flatbuffer, {precision.upper()} weights"}


class LitertFromTorch(_LitertConverter):
    """Options: `precision` (fp32 only here), `factory`, `trust_model`."""

    source = "torch"
    packages = ("torch", "litert-torch", "ai-edge-litert")
    requires = {"litert_torch": "litert-torch"}

    def _convert(self, src: Artifact, out: Path) -> dict:
        import litert_torch
        import torch

        from convbench.models.load import load_torch

        if self._precision() != "fp32":
            raise ValueError("litert-torch converts FP32 here; FP16 LiteRT is for Keras models")
        module = load_torch(src.path, src.meta.get("architecture"), self.options.get("factory"),
                            self.options.get("trust_model", False)).eval()
        shape, dtype = src.meta["input_shape"], src.meta.get("input_dtype", "float32")
        example = torch.zeros((1, *shape), dtype=getattr(torch, dtype))
        litert_torch.convert(module, (example,)).export(str(out))
        return {"layout": src.meta.get("layout", "nchw"), "input_shape": shape,
                "input_dtype": dtype, "precision": "fp32", "batch": "fixed",
                "converter": "litert-torch", "holds": "LiteRT flatbuffer, FP32 weights"}
