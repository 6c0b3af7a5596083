"""Compressed variants of a converted model, applied to the converter's output in place (the
`variant` option of a target; each format plug-in names its function in `Format.variants`).

ONNX: "int8" is ONNX Runtime's dynamic quantisation (int8 weights, activations quantised at
run time), "fp16" onnxconverter-common's FP16 conversion with FP32 inputs and outputs kept.
Core ML: "int8" is coremltools' symmetric linear weight quantisation, "palettized" its k-means
palettisation to 4 bits (16 values per weight tensor). None of them needs calibration data.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

PALETTE_BITS = 4


def onnx(path: Path, variant: str) -> dict:
    import onnx as onnx_lib

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "variant.onnx"
        if variant == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8)
            meta = {"holds": "ONNX graph, int8 weights (dynamic quantisation)"}
        elif variant == "fp16":
            from onnxconverter_common import float16

            model = float16.convert_float_to_float16(onnx_lib.load(str(path)),
                                                     keep_io_types=True)
            onnx_lib.save(model, str(out))
            meta = {"holds": "ONNX graph, FP16 weights and compute, FP32 inputs and outputs",
                    "precision": "fp16"}
        else:
            raise ValueError(f"ONNX variant must be int8 or fp16, not {variant!r}")
        onnx_lib.checker.check_model(onnx_lib.load(str(out)), full_check=True)
        shutil.move(str(out), str(path))
    return {"variant": variant, **meta}


def coreml(path: Path, variant: str) -> dict:
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    model = ct.models.MLModel(str(path), skip_model_load=True)
    if model.get_spec().WhichOneof("Type") != "mlProgram":
        raise ValueError("Core ML weight compression needs an ML Program (convert_to: "
                         "mlprogram)")
    if variant == "int8":
        config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8")
        small = cto.linear_quantize_weights(model, cto.OptimizationConfig(global_config=config))
        meta = {"holds": "ML Program, int8 weights (linear, symmetric)"}
    elif variant == "palettized":
        config = cto.OpPalettizerConfig(mode="kmeans", nbits=PALETTE_BITS)
        small = cto.palettize_weights(model, cto.OptimizationConfig(global_config=config))
        meta = {"holds": f"ML Program, {PALETTE_BITS}-bit palettized weights (k-means)",
                "palette_bits": PALETTE_BITS}
    else:
        raise ValueError(f"Core ML variant must be int8 or palettized, not {variant!r}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "variant.mlpackage"
        small.save(str(out))
        shutil.rmtree(path)
        shutil.move(str(out), str(path))
    return {"variant": variant, **meta}
