"""Keras or PyTorch -> LiteRT (`.tflite`).

Keras: the model is exported as a SavedModel (`Model.export`) and converted with TensorFlow's
`TFLiteConverter`; the batch axis stays dynamic (the interpreter resizes its input), and where
the converter needs static shapes (Keras' recurrent layers lower to tensor lists that must
be), the batch is fixed at 1, as a user would (larger batches then run as loops). PyTorch:
`litert_torch.convert` (the `litert-torch` package, an optional install: it pulls JAX and more),
with a dynamic batch, or a fixed batch of 1 where the export needs one. `precision` "fp32"
(default), "fp16": post-training FP16 weights (`tflite-fp16`), or "int8": full-integer
post-training quantisation (`tflite-int8`: int8 weights and activations, every op an int8
builtin, ranges calibrated on the conversion's sample inputs one at a time; FP32 inputs and
outputs, quantised at the model's edges). The FP16 and int8 variants are Keras routes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from convbench.convert.base import Converter, about_shapes, first_route, torch_export_args
from convbench.records import Artifact

PRECISIONS = ("fp32", "fp16", "int8")


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
        import numpy as np
        import tensorflow as tf

        from convbench.convert.keras_routes import input_signature
        from convbench.models.load import load_keras

        precision = self._precision()
        model = load_keras(src.path, trust=self.options.get("trust_model", False),
                           custom=self.options.get("custom_objects"))
        shape, dtype = input_signature(model, src.meta.get("input_shape"),
                                       src.meta.get("input_dtype"))
        if precision == "int8" and self.calibration is None:
            raise ValueError("int8 LiteRT calibrates on sample inputs: none were given")

        def samples():
            x = self.calibration.inputs(src.meta.get("layout", "nhwc"))
            for i in range(len(x)):
                yield [np.asarray(x[i:i + 1], dtype=dtype)]

        def export(batch: int | None) -> dict:
            with tempfile.TemporaryDirectory() as tmp:
                saved = str(Path(tmp) / "saved")
                model.export(saved, format="tf_saved_model", verbose=False,
                             input_signature=[tf.TensorSpec((batch, *shape), dtype)])
                converter = tf.lite.TFLiteConverter.from_saved_model(saved)
                if precision == "fp16":
                    converter.optimizations = [tf.lite.Optimize.DEFAULT]
                    converter.target_spec.supported_types = [tf.float16]
                elif precision == "int8":
                    converter.optimizations = [tf.lite.Optimize.DEFAULT]
                    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                    converter.representative_dataset = samples
                out.write_bytes(converter.convert())
            return {"batch": "dynamic" if batch is None else "fixed"}

        meta = first_route([("dynamic", lambda: export(None)), ("fixed", lambda: export(1))],
                           about_shapes, key="batch_route", free=1)
        return {**meta, "layout": src.meta.get("layout", "nhwc"), "input_shape": list(shape),
                "input_dtype": str(dtype), "precision": precision,
                "converter": "TFLiteConverter",
                "holds": HOLDS[precision]}


def declared_batch(path: Path) -> str:
    """"dynamic" or "fixed": what the flatbuffer's input signature says of its batch axis."""
    from ai_edge_litert.interpreter import Interpreter

    signature = Interpreter(model_path=str(path)).get_input_details()[0]["shape_signature"]
    return "dynamic" if int(signature[0]) == -1 else "fixed"


HOLDS = {"fp32": "LiteRT flatbuffer, FP32 weights", "fp16": "LiteRT flatbuffer, FP16 weights",
         "int8": "LiteRT flatbuffer, int8 weights and activations (full-integer), FP32 edges"}


class LitertFromTorch(_LitertConverter):
    """Options: `precision` (fp32 only here), `factory`, `trust_model`."""

    source = "torch"
    packages = ("torch", "litert-torch", "ai-edge-litert")
    requires = {"litert_torch": "'convbench[litert-torch]'"}

    @classmethod
    def refuses(cls, options):
        precision = options.get("precision", "fp32")
        return "" if precision == "fp32" else (
            f"{precision} LiteRT from PyTorch: convbench converts PyTorch models to FP32 "
            f"LiteRT only (its {precision} variants are made by TensorFlow's converter, for "
            f"Keras models)")

    def _convert(self, src: Artifact, out: Path) -> dict:
        import litert_torch

        module = self.torch_module(src)
        shape, dtype = src.meta["input_shape"], src.meta.get("input_dtype", "float32")

        def export(dynamic: bool) -> dict:
            example, dims = torch_export_args(src, dynamic)
            litert_torch.convert(module, example, dynamic_shapes=dims).export(str(out))
            return {"batch": declared_batch(out)}

        meta = first_route([("dynamic", lambda: export(True)), ("fixed", lambda: export(False))],
                           about_shapes, key="batch_route", free=1)
        # litert-torch narrows 64-bit inputs (token ids) to 32 bits, as on-device runtimes take
        return {**meta, "layout": src.meta.get("layout", "nchw"), "input_shape": shape,
                "input_dtype": dtype, "precision": "fp32", "converter": "litert-torch",
                "holds": HOLDS["fp32"]}
