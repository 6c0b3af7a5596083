"""Converters from an original format to an exchange format, one module each.

`convert(artifact, target, out_dir, **options) -> Conversion` picks the converter registered for
(source format, target format), caches its output by content hash, and turns any failure into a
categorised `Conversion` instead of an exception. A target is a format or a named variant of one
(`TARGETS`, declared by the format plug-ins in `convbench.formats`): "coreml" is an FP16 ML
Program, "coreml-fp32" an FP32 one, "coreml-nn" the NeuralNetwork `.mlmodel` format the study
used.
"""

from convbench.convert.base import CONVERTERS, TARGETS, Conversion, Converter, convert, \
    resolve_target
from convbench.formats import FORMATS

for _fmt in FORMATS.names():  # each format plug-in names its converters
    for _source, _path in FORMATS.get(_fmt).converters.items():
        CONVERTERS.register_lazy(f"{_fmt}_from_{_source}", _path)

__all__ = ["CONVERTERS", "TARGETS", "Conversion", "Converter", "convert", "resolve_target"]
