"""Converters from an original format to an exchange format, one module each.

`convert(artifact, target, out_dir, **options) -> Conversion` picks the converter registered for
(source format, target format), caches its output by content hash, and turns any failure into a
categorised `Conversion` instead of an exception. A target is a format or a named variant of one
(`TARGETS`): "coreml" is an FP16 ML Program, "coreml-fp32" an FP32 one, "coreml-nn" the
NeuralNetwork `.mlmodel` format the study used.
"""

from convbench.convert.base import CONVERTERS, TARGETS, Conversion, Converter, convert, \
    resolve_target

CONVERTERS.register_lazy("onnx_from_torch", "convbench.convert.onnx_from_torch:OnnxFromTorch")
CONVERTERS.register_lazy("onnx_from_keras", "convbench.convert.onnx_from_keras:OnnxFromKeras")
CONVERTERS.register_lazy("onnx_from_onnx", "convbench.convert.onnx_from_onnx:OnnxFromOnnx")
CONVERTERS.register_lazy("coreml_from_torch",
                         "convbench.convert.coreml_from_torch:CoremlFromTorch")
CONVERTERS.register_lazy("coreml_from_keras",
                         "convbench.convert.coreml_from_keras:CoremlFromKeras")

__all__ = ["CONVERTERS", "TARGETS", "Conversion", "Converter", "convert", "resolve_target"]
