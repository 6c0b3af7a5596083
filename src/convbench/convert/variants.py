"""Compressed variants of a converted model, applied to the converter's output in place (the
`variant` option of a target; each format plug-in names its function in `Format.variants`).

ONNX: "int8" is ONNX Runtime's dynamic quantisation (int8 weights, activations quantised at
run time), "int8-static" its static quantisation (int8 weights and activations in QDQ form,
activation ranges calibrated on sample inputs), "fp16" onnxconverter-common's FP16 conversion
with FP32 inputs and outputs kept. Core ML: "int8" is coremltools' symmetric linear weight
quantisation, "palettized" its k-means palettisation to 4 bits (16 values per weight tensor).
Only "int8-static" needs calibration inputs.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from convbench.convert.base import Calibration

PALETTE_BITS = 4


def onnx(path: Path, variant: str, calibration: "Calibration | None" = None,
         layout: str = "nchw") -> dict:
    import onnx as onnx_lib

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "variant.onnx"
        if variant == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8)
            meta = {"holds": "ONNX graph, int8 weights (dynamic quantisation)"}
        elif variant == "int8-static":
            _quantize_static(path, out, calibration.inputs(layout))
            meta = {"holds": "ONNX graph, int8 weights and activations (static quantisation, "
                             "QDQ)"}
        elif variant == "fp16":
            from onnxconverter_common import float16

            model = float16.convert_float_to_float16(onnx_lib.load(str(path)),
                                                     keep_io_types=True)
            onnx_lib.save(model, str(out))
            meta = {"holds": "ONNX graph, FP16 weights and compute, FP32 inputs and outputs",
                    "precision": "fp16"}
        else:
            raise ValueError(f"ONNX variant must be int8, int8-static or fp16, not {variant!r}")
        onnx_lib.checker.check_model(onnx_lib.load(str(out)), full_check=True)
        shutil.move(str(out), str(path))
    return {"variant": variant, **meta}


def _quantize_static(path: Path, out: Path, x) -> None:
    """ONNX Runtime's static quantisation of `path` to `out`: per-channel int8 weights, int8
    activations whose ranges are the min-max over `x`, fed one sample at a time (a graph
    with a fixed batch of 1 takes them too)."""
    import numpy as np
    import onnxruntime.quantization as q

    class Samples(q.CalibrationDataReader):
        def __init__(self, name: str, dtype):
            self.rows = iter(np.asarray(x[i:i + 1], dtype=dtype) for i in range(len(x)))
            self.name = name

        def get_next(self):
            row = next(self.rows, None)
            return None if row is None else {self.name: row}

    import onnx as onnx_lib
    from onnx import helper

    graph = onnx_lib.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    [inp] = [i for i in graph.input if i.name not in inits]
    dtype = helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"  # shapes inferred, as the quantiser asks
        q.quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
        q.quantize_static(str(prepared), str(out), Samples(inp.name, dtype),
                          quant_format=q.QuantFormat.QDQ, per_channel=True,
                          activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
                          calibrate_method=q.CalibrationMethod.MinMax)


def coreml(path: Path, variant: str, calibration: "Calibration | None" = None,
           layout: str = "nchw") -> dict:
    from convbench.coreml_import import coremltools

    ct = coremltools()
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
