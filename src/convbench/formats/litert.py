"""LiteRT (TensorFlow Lite) flatbuffers: from Keras with TensorFlow's converter, from PyTorch
with `litert-torch` (optional); run with `ai-edge-litert`'s interpreter."""

from convbench.formats.base import CALIBRATION_SIZE, Format, Target

_CONVERTER = "convbench.convert.litert_from_source:"

FORMAT = Format(
    name="litert",
    converters={"keras": _CONVERTER + "LitertFromKeras",
                "torch": _CONVERTER + "LitertFromTorch"},
    runtimes={"litert": "convbench.runtimes.litert_runner:LitertRunner"},
    targets=(Target("tflite", {"precision": "fp32"}, "LiteRT flatbuffer, FP32"),
             Target("tflite-fp16", {"precision": "fp16"},
                    "LiteRT flatbuffer, post-training FP16 weights"),
             Target("tflite-int8", {"precision": "int8", "calibration_size": CALIBRATION_SIZE},
                    "LiteRT flatbuffer, full-integer int8 (weights and activations, "
                    "calibrated on training inputs; FP32 inputs and outputs)")),
    packages=("ai-edge-litert", "litert-torch"),
)
