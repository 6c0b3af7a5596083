"""Converters from an original format to an exchange format, one module each.

`convert(artifact, target, out_dir, **options) -> Conversion` picks the converter registered for
(source format, target), caches its output by content hash, and turns any failure into a
categorised `Conversion` instead of an exception.
"""

from convbench.convert.base import CONVERTERS, Conversion, Converter, convert

CONVERTERS.register_lazy("onnx_from_torch", "convbench.convert.onnx_from_torch:OnnxFromTorch")
CONVERTERS.register_lazy("onnx_from_keras", "convbench.convert.onnx_from_keras:OnnxFromKeras")

__all__ = ["CONVERTERS", "Conversion", "Converter", "convert"]
