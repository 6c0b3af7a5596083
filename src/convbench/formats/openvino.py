"""OpenVINO IR: converted with `openvino.convert_model` from a PyTorch module (directly, or
through convbench's ONNX export), a Keras model or an ONNX file; run on OpenVINO's CPU plugin."""

from convbench.formats.base import CALIBRATION_SIZE, Format, Target

_CONVERTER = "convbench.convert.openvino_from_source:"

FORMAT = Format(
    name="openvino",
    converters={"torch": _CONVERTER + "OpenvinoFromTorch",
                "keras": _CONVERTER + "OpenvinoFromKeras",
                "onnx": _CONVERTER + "OpenvinoFromOnnx"},
    runtimes={"openvino": "convbench.runtimes.openvino_runner:OpenvinoRunner"},
    targets=(Target("openvino", {"route": "direct", "compress_to_fp16": False},
                    "OpenVINO IR, FP32 weights, from the framework's model directly"),
             Target("openvino-onnx", {"route": "onnx", "compress_to_fp16": False},
                    "OpenVINO IR through the ONNX export"),
             Target("openvino-fp16", {"route": "direct", "compress_to_fp16": True},
                    "OpenVINO IR, FP16 weights, save_model's default"),
             Target("openvino-int8", {"route": "direct", "compress_to_fp16": False,
                                      "quantize": "int8", "calibration_size": CALIBRATION_SIZE},
                    "OpenVINO IR, int8 by NNCF post-training quantisation calibrated on "
                    "training inputs")),
    packages=("openvino", "nncf"),
)
