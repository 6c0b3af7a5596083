"""What the Core ML converters share: the target options and how a model is saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from convbench.records import Artifact


def convert_options(options: dict[str, Any]) -> dict[str, Any]:
    """`coremltools.convert` keyword arguments for convbench's Core ML options."""
    import coremltools as ct

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


def suffix(options: dict[str, Any]) -> str:
    """`.mlpackage` for an ML Program, `.mlmodel` for the NeuralNetwork format."""
    return ".mlmodel" if options.get("convert_to") == "neuralnetwork" else ".mlpackage"


def save_model(mlmodel, out: Path, src: Artifact, options: dict[str, Any], route: str) -> dict:
    """Save the converted model to `out`; return the artifact's meta."""
    spec = mlmodel.get_spec()
    program = spec.WhichOneof("Type") == "mlProgram"
    mlmodel.save(str(out))
    return {"layout": src.meta.get("layout"), "input_shape": src.meta["input_shape"],
            "input_dtype": src.meta.get("input_dtype", "float32"), "route": route,
            "model_type": "mlprogram" if program else "neuralnetwork",
            "precision": options.get("precision", "fp16") if program else "fp32",
            "spec_version": spec.specificationVersion,
            "holds": ("ML Program package: MIL program and weight.bin" if program else
                      "NeuralNetwork .mlmodel: layers and weights in one protobuf")}
