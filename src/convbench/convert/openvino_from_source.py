"""PyTorch, Keras or ONNX -> OpenVINO IR (`model.xml` + `model.bin` in a `.openvino` folder) with
`openvino.convert_model` and `openvino.save_model`.

Routes (option `route`): "direct" hands OpenVINO the framework's own model (its PyTorch
frontend traces the `nn.Module`; a Keras model converts in memory); "onnx" converts convbench's
ONNX export of it (the `onnx` target's converter), so the route's effect is a cell of its own.
ONNX files convert as they are. The batch axis stays dynamic. `compress_to_fp16` stores the
weights in FP16 (`save_model`'s own default; the `openvino-fp16` target), off for `openvino`.
`quantize` "int8" (`openvino-int8`): NNCF's post-training quantisation of the converted model
with its defaults (int8 weights and activations where NNCF quantises, ranges estimated on the
conversion's sample inputs, fast bias correction); NNCF's version is recorded with it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from convbench.convert.base import Converter
from convbench.records import Artifact

ROUTES = ("direct", "onnx")


class _OpenvinoConverter(Converter):
    target, suffix = "openvino", ".openvino"
    packages = ("openvino",)

    def _model(self, src: Artifact):
        """The framework's model handed to OpenVINO directly."""
        raise NotImplementedError

    def _through_onnx(self, src: Artifact, tmp: Path):
        """The model through convbench's ONNX export of it (written under `tmp`)."""
        import openvino as ov

        from convbench.convert.base import CONVERTERS

        keep = ("exporter", "opset", "factory", "trust_model", "fallbacks", "custom_objects")
        onnx = CONVERTERS.get(f"onnx_from_{self.source}")(
            **{k: v for k, v in self.options.items() if k in keep})
        meta = onnx._convert(src, tmp / "model.onnx")
        model = ov.convert_model(str(tmp / "model.onnx"))
        return model, {"exporter": meta.get("exporter"), "opset": meta.get("opset")}

    def _convert(self, src: Artifact, out: Path) -> dict:
        import openvino as ov

        route = self.options.get("route", "direct")
        if route not in ROUTES:
            raise ValueError(f"route must be one of {', '.join(ROUTES)}, not {route!r}")
        fp16 = bool(self.options.get("compress_to_fp16", False))
        quantize = self.options.get("quantize")
        if quantize not in (None, "int8"):
            raise ValueError(f"quantize must be 'int8' or unset, not {quantize!r}")
        with tempfile.TemporaryDirectory() as tmp:  # the ONNX file lives until it is saved
            if route == "onnx" and self.source != "onnx":
                model, extra = self._through_onnx(src, Path(tmp))
            else:
                model, extra = self._model(src)
                route = "direct"
            if quantize:
                model = self._quantized(model, self._layout(src))
                import nncf

                extra["quantized"] = ("int8 (NNCF post-training quantisation, its defaults: "
                                      "activation ranges from the calibration inputs, fast "
                                      "bias correction)")
                extra["nncf"] = nncf.__version__
            out.mkdir(parents=True)
            ov.save_model(model, str(out / "model.xml"), compress_to_fp16=fp16)
        inp = model.inputs[0]
        weights = "int8" if quantize else "fp16" if fp16 else "fp32"
        return {**extra, "route": route, "weights": weights,
                "layout": self._layout(src),
                "input_shape": src.meta.get("input_shape") or
                [d.get_length() if d.is_static else None
                 for d in list(inp.get_partial_shape())[1:]],
                "input_dtype": src.meta.get("input_dtype", "float32"),
                "free_axes": src.meta.get("free_axes", []),
                "holds": f"OpenVINO IR, {weights.upper()} weights"
                         + (" and activations" if quantize else "")}

    def _layout(self, src: Artifact) -> str:
        return src.meta.get("layout", "nchw")

    def _quantized(self, model, layout: str):
        """NNCF's int8 post-training quantisation of an `ov.Model`, on every sample given."""
        import nncf
        import numpy as np

        if self.calibration is None:
            raise ValueError("int8 OpenVINO calibrates on sample inputs: none were given")
        x = self.calibration.inputs(layout)
        dtype = model.inputs[0].get_element_type().to_dtype()
        rows = [np.asarray(x[i:i + 1], dtype=dtype) for i in range(len(x))]
        return nncf.quantize(model, nncf.Dataset(rows), subset_size=len(rows))


class OpenvinoFromTorch(_OpenvinoConverter):
    """Options: `route` "direct" (default) | "onnx", `compress_to_fp16`, `factory`,
    `trust_model`; with route "onnx", the ONNX converter's `exporter` and `opset`."""

    source = "torch"
    packages = ("torch", "onnx", "onnxscript", "openvino")

    def _model(self, src):
        import openvino as ov
        import torch

        module = self.torch_module(src)
        shape, dtype = src.meta["input_shape"], src.meta.get("input_dtype", "float32")
        example = torch.zeros((2, *shape), dtype=getattr(torch, dtype))
        free = set(src.meta.get("free_axes", []))
        dims = [-1, *[-1 if i in free else d for i, d in enumerate(shape)]]
        with torch.no_grad():
            model = ov.convert_model(module, example_input=example, input=[dims])
        return model, {}


class OpenvinoFromKeras(_OpenvinoConverter):
    """Options: `route` "direct" (default) | "onnx" (through tf2onnx), `compress_to_fp16`,
    `trust_model`, `custom_objects`."""

    source = "keras"
    packages = ("keras", "tensorflow-cpu", "tensorflow", "tf2onnx", "openvino")

    def _model(self, src):
        import openvino as ov

        from convbench.models.load import load_keras

        model = load_keras(src.path, trust=self.options.get("trust_model", False),
                           custom=self.options.get("custom_objects"))
        return ov.convert_model(model), {}

    def _layout(self, src):
        return src.meta.get("layout", "nhwc")


class OpenvinoFromOnnx(_OpenvinoConverter):
    """An ONNX file (a user's, or from another pipeline) to OpenVINO IR."""

    source = "onnx"
    packages = ("onnx", "openvino")

    def _model(self, src):
        import openvino as ov

        return ov.convert_model(src.path), {}
