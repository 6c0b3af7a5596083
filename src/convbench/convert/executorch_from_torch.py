"""PyTorch -> ExecuTorch (`.pte`): `torch.export` with a dynamic batch (1 to 1024), then
`to_edge_transform_and_lower`, with the XNNPACK partitioner (`backend` "xnnpack", default) or
none ("portable": every op on ExecuTorch's portable kernels), then `to_executorch`. Where the
export needs static shapes, the batch is fixed at 1, as a user would (larger batches then run
as loops), and the dynamic route's error is kept."""

from __future__ import annotations

from pathlib import Path

from convbench.convert.base import Converter, about_shapes, first_route, torch_export_args
from convbench.records import Artifact

BACKENDS = ("xnnpack", "portable")


class ExecutorchFromTorch(Converter):
    """Options: `backend` "xnnpack" | "portable", `factory`, `trust_model`."""

    source, target, suffix = "torch", "executorch", ".pte"
    packages = ("torch", "executorch", "torchao")
    requires = {"executorch": "'convbench[executorch]'"}

    def _convert(self, src: Artifact, out: Path) -> dict:
        import torch
        from executorch.exir import to_edge_transform_and_lower

        backend = self.options.get("backend", "xnnpack")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        module = self.torch_module(src)
        shape, dtype = src.meta["input_shape"], src.meta.get("input_dtype", "float32")

        def export(dynamic: bool) -> dict:
            example, dims = torch_export_args(src, dynamic)
            program = torch.export.export(module, example, dynamic_shapes=dims)
            partitioners = []
            if backend == "xnnpack":
                from executorch.backends.xnnpack.partition.xnnpack_partitioner import \
                    XnnpackPartitioner

                partitioners = [XnnpackPartitioner()]
            et = to_edge_transform_and_lower(program, partitioner=partitioners).to_executorch()
            out.write_bytes(et.buffer)
            return {"batch": "dynamic" if dynamic else "fixed"}

        meta = first_route([("dynamic", lambda: export(True)), ("fixed", lambda: export(False))],
                           about_shapes, key="batch_route", free=1)
        return {**meta, "backend": backend, "layout": src.meta.get("layout", "nchw"),
                "input_shape": shape, "input_dtype": dtype,
                "holds": f"ExecuTorch program ({backend}), FP32"}
