"""What the Core ML converters share: the target options and how a model is saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from convbench.convert.base import about_shapes, first_route
from convbench.records import Artifact


def convert_options(options: dict[str, Any]) -> dict[str, Any]:
    """`coremltools.convert` keyword arguments for convbench's Core ML options."""
    from convbench.coreml_import import coremltools

    ct = coremltools()

    to = options.get("convert_to", "mlprogram")
    if to not in ("mlprogram", "neuralnetwork"):
        raise ValueError(f"convert_to must be 'mlprogram' or 'neuralnetwork', got {to!r}")
    kw: dict[str, Any] = {"convert_to": to}
    target = options.get("minimum_deployment_target")
    if target:
        try:
            kw["minimum_deployment_target"] = getattr(ct.target, target)
        except AttributeError:
            raise ValueError(f"unknown deployment target {target!r}; use iOS15, iOS16, iOS17, "
                             f"iOS18, macOS12, ...") from None
    precision = options.get("precision", "fp16")
    if to == "mlprogram":
        kw["compute_precision"] = {"fp16": ct.precision.FLOAT16,
                                   "fp32": ct.precision.FLOAT32}[precision]
    elif precision != "fp16" and "precision" in options:
        raise ValueError("the NeuralNetwork format takes no compute precision (it stores fp32)")
    return kw


#: The batch sizes a model converted with enumerated shapes takes: convbench's latency sweep
#: and its accuracy pass; other sizes run as a loop over these.
ENUMERATED_BATCHES = (1, 32, 128)


def with_batch_routes(shape: list[int], convert: Callable[[Any, str], dict],
                      free_axes=()) -> dict:
    """`convert(batch_shape, route)`'s meta with the first batch route that converts: a
    flexible batch (`RangeDim`), else enumerated batch sizes, else a fixed batch of 1 (what a
    user does when a flexible batch fails; larger batches then run as loops). The route taken
    and the errors of the earlier routes are recorded; when none works, the first error is
    raised with the others'. `free_axes` (of one sample: a sequence the model leaves free)
    stay free in the flexible route, up to 4096."""
    from convbench.coreml_import import coremltools

    ct = coremltools()

    flexible = [ct.RangeDim(1, 4096, d) if i in free_axes else d for i, d in enumerate(shape)]
    routes = [("flexible", lambda: ct.Shape((ct.RangeDim(1, 1024, 2), *flexible))),
              ("enumerated", lambda: ct.EnumeratedShapes(
                  [(b, *shape) for b in ENUMERATED_BATCHES], default=(1, *shape))),
              ("fixed", lambda: (1, *shape))]
    # an unsupported op fails whatever the batch: past the flexible route, shape errors only
    meta = first_route([(name, lambda make=make, name=name: convert(make(), name))
                        for name, make in routes], about_shapes, key="batch", free=1)
    if meta["batch"] != "flexible":  # enumerated and fixed shapes fix a free sequence too
        meta["free_axes"] = []
    return meta


def suffix(options: dict[str, Any]) -> str:
    """`.mlpackage` for an ML Program, `.mlmodel` for the NeuralNetwork format."""
    return ".mlmodel" if options.get("convert_to") == "neuralnetwork" else ".mlpackage"


def save_model(mlmodel, out: Path, src: Artifact, options: dict[str, Any], route: str) -> dict:
    """Save the converted model to `out`; return the artifact's meta."""
    spec = mlmodel.get_spec()
    program = spec.WhichOneof("Type") == "mlProgram"
    mlmodel.save(str(out))
    return {"layout": src.meta.get("layout"), "input_shape": src.meta["input_shape"],
            "free_axes": src.meta.get("free_axes", []),
            "input_dtype": src.meta.get("input_dtype", "float32"), "route": route,
            "model_type": "mlprogram" if program else "neuralnetwork",
            "precision": options.get("precision", "fp16") if program else "fp32",
            "spec_version": spec.specificationVersion,
            "holds": ("ML Program package: MIL program and weight.bin" if program else
                      "NeuralNetwork .mlmodel: layers and weights in one protobuf")}
