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

        from convbench.convert.keras_routes import with_fallbacks
        from convbench.models.load import load_keras

        model = load_keras(src.path, trust=self.options.get("trust_model", False))
        shape = tuple(model.inputs[0].shape[1:])
        dtype = model.inputs[0].dtype
        dtype = getattr(dtype, "name", dtype)
        spec = [tf.TensorSpec((None, *shape), dtype, name="input")]

        def export(m) -> dict:
            proto, _ = tf2onnx.convert.from_keras(m, input_signature=spec,
                                                  opset=self.options.get("opset"),
                                                  output_path=str(out))
            return {"opset": max(o.version for o in proto.opset_import
                                 if o.domain in ("", "ai.onnx"))}

        done = with_fallbacks(model, export)
        onnx.checker.check_model(onnx.load(str(out)), full_check=True)
        return {**done, "layout": src.meta.get("layout", "nhwc"), "input_shape": list(shape),
                "input_dtype": str(dtype), "exporter": "tf2onnx",
                "holds": "ONNX graph with embedded weights"}
