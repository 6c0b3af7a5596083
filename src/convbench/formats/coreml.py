"""Core ML: ML Program (FP16 or FP32) and NeuralNetwork models from coremltools; run by Apple's
runtime on macOS and by convbench's interpreters anywhere."""

from convbench.formats.base import Format, Target

FORMAT = Format(
    name="coreml",
    converters={"torch": "convbench.convert.coreml_from_torch:CoremlFromTorch",
                "keras": "convbench.convert.coreml_from_keras:CoremlFromKeras"},
    runtimes={"coreml": "convbench.runtimes.coreml_runner:CoremlRunner"},
    targets=(Target("coreml", {"convert_to": "mlprogram", "precision": "fp16"},
                    "ML Program, FP16 compute precision, coremltools' default"),
             Target("coreml-fp32", {"convert_to": "mlprogram", "precision": "fp32"},
                    "ML Program, FP32"),
             Target("coreml-nn", {"convert_to": "neuralnetwork"},
                    "NeuralNetwork .mlmodel, the study's format"),
             Target("coreml-int8", {"convert_to": "mlprogram", "precision": "fp32",
                                    "variant": "int8"},
                    "FP32 ML Program with int8 weights, coremltools' linear quantisation"),
             Target("coreml-palettized", {"convert_to": "mlprogram", "precision": "fp32",
                                          "variant": "palettized"},
                    "FP32 ML Program with 4-bit k-means palettized weights")),
    packages=("coremltools",),
    variants="convbench.convert.variants:coreml",
    cli={"minimum_deployment_target": "coreml_target", "source": "coreml_source"},
)
