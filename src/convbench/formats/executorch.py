"""ExecuTorch `.pte` programs: `torch.export`, `to_edge_transform_and_lower` (with the XNNPACK
delegate, or the portable kernels alone), `to_executorch`; run with ExecuTorch's Python
runtime."""

from convbench.formats.base import Format, Target

FORMAT = Format(
    name="executorch",
    converters={"torch": "convbench.convert.executorch_from_torch:ExecutorchFromTorch"},
    runtimes={"executorch": "convbench.runtimes.executorch_runner:ExecutorchRunner"},
    targets=(Target("executorch", {"backend": "xnnpack"},
                    "ExecuTorch program, XNNPACK delegate, FP32"),
             Target("executorch-portable", {"backend": "portable"},
                    "ExecuTorch program on the portable kernels, no delegate")),
    packages=("executorch", "torchao"),
)
