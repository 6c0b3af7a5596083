"""Keras -> ONNX with `tf2onnx.convert.from_keras` (the input stays NHWC)."""

from __future__ import annotations

from pathlib import Path

from convbench.convert.base import Converter
from convbench.records import Artifact


class OnnxFromKeras(Converter):
    """Options: `opset` (None: tf2onnx's default), `trust_model` to load Lambda layers."""

    source, target, suffix = "keras", "onnx", ".onnx"
    packages = ("tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx")

    def _convert(self, src: Artifact, out: Path) -> dict:
        import onnx
        import tensorflow as tf
        import tf2onnx

        from convbench.convert.keras_routes import input_signature, with_fallbacks
        from convbench.models.load import load_keras

        model = load_keras(src.path, trust=self.options.get("trust_model", False),
                           custom=self.options.get("custom_objects"))
        shape, dtype = input_signature(model, src.meta.get("input_shape"),
                                       src.meta.get("input_dtype"))
        free = set(src.meta.get("free_axes", []))  # a sequence axis the model leaves free
        spec = [tf.TensorSpec((None, *[None if i in free else d for i, d in enumerate(shape)]),
                              dtype, name="input")]

        def export(m) -> dict:
            proto, _ = tf2onnx.convert.from_keras(m, input_signature=spec,
                                                  opset=self.options.get("opset"),
                                                  output_path=str(out))
            return {"opset": max(o.version for o in proto.opset_import
                                 if o.domain in ("", "ai.onnx"))}

        done = with_fallbacks(model, export, shape, dtype)
        onnx.checker.check_model(onnx.load(str(out)), full_check=True)
        return {**done, "layout": src.meta.get("layout", "nhwc"), "input_shape": list(shape),
                "free_axes": sorted(free),
                "input_dtype": str(dtype), "exporter": "tf2onnx",
                "holds": "ONNX graph with embedded weights"}
