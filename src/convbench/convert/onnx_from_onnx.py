"""ONNX -> ONNX: the graph ONNX Runtime makes of an ONNX source at an optimisation level.

For a user's ONNX file the question "what did I lose?" is what the runtime's graph rewriting
(constant folding, fusions, layout changes) does to it: the converted model is the graph ORT
writes after optimising at `optimization` ("basic" | "extended" | "all", default "all"), run
as saved; the original runs with every optimisation off.
"""

from __future__ import annotations

from pathlib import Path

from convbench.convert.base import Converter
from convbench.records import Artifact


class OnnxFromOnnx(Converter):
    source, target, suffix = "onnx", "onnx", ".onnx"
    packages = ("onnx", "onnxruntime")

    def _convert(self, src: Artifact, out: Path) -> dict:
        import onnx
        import onnxruntime as ort

        from convbench.runtimes.ort_runner import optimization_level

        level = self.options.get("optimization", "all")
        if level == "disable":
            raise ValueError("optimization 'disable' gives the source itself; pick basic, "
                             "extended or all")
        so = ort.SessionOptions()
        so.graph_optimization_level = optimization_level(level)
        so.optimized_model_filepath = str(out)
        so.log_severity_level = 3
        ort.InferenceSession(src.path, so, providers=["CPUExecutionProvider"])
        proto = onnx.load(str(out))
        ops = {n.op_type for n in proto.graph.node}
        return {"layout": src.meta.get("layout", "nchw"), "input_shape": src.meta["input_shape"],
                "input_dtype": src.meta.get("input_dtype", "float32"), "route": f"ort-{level}",
                "ort_optimization": "disable", "optimization": level,
                "nodes": len(proto.graph.node), "op_types": sorted(ops),
                "holds": f"ONNX graph as ONNX Runtime optimised it ({level})"}
