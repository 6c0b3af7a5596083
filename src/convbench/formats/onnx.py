"""ONNX: exported from PyTorch (dynamo or TorchScript exporter) and Keras (tf2onnx), or a user's
ONNX file compared with ONNX Runtime's optimised graph; run on ONNX Runtime."""

from convbench.formats.base import CALIBRATION_SIZE, Format, Target

FORMAT = Format(
    name="onnx",
    converters={"torch": "convbench.convert.onnx_from_torch:OnnxFromTorch",
                "keras": "convbench.convert.onnx_from_keras:OnnxFromKeras",
                "onnx": "convbench.convert.onnx_from_onnx:OnnxFromOnnx"},
    runtimes={"onnxruntime": "convbench.runtimes.ort_runner:OrtRunner"},
    targets=(Target("onnx", {}, "ONNX graph, run on ONNX Runtime"),
             Target("onnx-int8", {"variant": "int8"},
                    "ONNX Runtime dynamic quantisation, int8 weights"),
             Target("onnx-int8-static", {"variant": "int8-static",
                                         "calibration_size": CALIBRATION_SIZE},
                    "ONNX Runtime static quantisation (QDQ), int8 weights and activations "
                    "calibrated on training inputs"),
             Target("onnx-fp16", {"variant": "fp16"},
                    "FP16 graph by onnxconverter-common, FP32 inputs and outputs")),
    packages=("onnx", "onnxruntime", "onnxscript", "tf2onnx", "onnxconverter-common"),
    variants="convbench.convert.variants:onnx",
    cli={"opset": "opset", "exporter": "exporter", "optimization": "ort_optimization"},
)
