"""PyTorch and Keras -> ONNX: the converted model computes the same function."""

import numpy as np
import onnx
import pytest

from convbench.convert import convert
from convbench.convert.base import Converter
from convbench.models import to_layout
from convbench.records import Artifact, Category
from convbench.runtimes import open_runner


def _outputs(art, x):
    with open_runner(art) as r:
        return r.infer(x)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_onnx_from_torch(trained, digits_test, tmp_path, exporter):
    x, _ = digits_test
    src = trained["torch"].artifact
    conv = convert(src, "onnx", tmp_path, exporter=exporter)
    assert conv.ok, conv.message
    assert conv.converter == "onnx_from_torch" and conv.seconds > 0
    assert conv.versions["torch"].startswith("2.13.0")
    model = onnx.load(conv.artifact.path)
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param and not dim.dim_value  # dynamic batch axis
    assert not list(tmp_path.glob("*.data"))  # weights embedded
    np.testing.assert_allclose(_outputs(conv.artifact, x), _outputs(src, x), atol=1e-5)


def test_onnx_from_keras_keeps_nhwc(trained, digits_test, tmp_path):
    x, _ = digits_test
    src = trained["keras"].artifact
    conv = convert(src, "onnx", tmp_path, opset=13)
    assert conv.ok, conv.message
    assert conv.artifact.meta["layout"] == "nhwc" and conv.artifact.meta["opset"] == 13
    xk = to_layout(x, "keras")
    np.testing.assert_allclose(_outputs(conv.artifact, xk), _outputs(src, xk), atol=1e-5)


def test_conversion_is_cached_by_content(trained, tmp_path):
    src = trained["torch"].artifact
    first = convert(src, "onnx", tmp_path, exporter="torchscript")
    again = convert(src, "onnx", tmp_path, exporter="torchscript")
    assert not first.cached and again.cached
    assert again.artifact.sha256 == first.artifact.sha256
    assert again.seconds == first.seconds  # the recorded conversion time, not the cache hit's


def test_a_corrupt_original_is_a_categorised_result(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x00garbage")
    src = Artifact.from_path("torch", bad, input_shape=[1, 28, 28], architecture={
        "model": "lenet5", "input_shape": [1, 28, 28], "num_classes": 10, "options": {}})
    conv = convert(src, "onnx", tmp_path)
    assert not conv.ok and conv.category is Category.MODEL_LOAD_ERROR
    assert "weights_only" in conv.message


def test_unknown_target_is_a_clear_error(trained, tmp_path):
    with pytest.raises(ValueError, match="unknown target 'coreml-fp23'. Did you mean 'coreml-fp3"):
        convert(trained["torch"].artifact, "coreml-fp23", tmp_path)


@pytest.mark.parametrize("exc, category", [
    (onnx.checker.ValidationError("bad graph"), Category.INVALID_MODEL),
    (RuntimeError("Exporting the operator 'aten::foo' to ONNX opset 17 is not supported"),
     Category.UNSUPPORTED_OPERATOR),
    (RuntimeError("segmentation of the graph broke"), Category.CONVERTER_CRASH),
])
def test_failures_are_classified(exc, category):
    assert Converter.classify(exc) is category




def test_a_model_whose_dynamic_batch_fails_converts_with_a_fixed_one(trained, digits_test,
                                                                    tmp_path, monkeypatch):
    """Both exporters refusing a dynamic batch (as torch.export does for a model that pins its
    batch): the fixed-batch route converts, both earlier errors are recorded, and ONNX Runtime
    runs any number of inputs as loops over the fixed batch."""
    import torch

    real = torch.onnx.export

    def refuse_dynamic(*args, **kw):
        if kw.get("dynamic_shapes") or kw.get("dynamic_axes"):
            raise RuntimeError("Constraints violated (batch)! the batch was specialised")
        return real(*args, **kw)

    monkeypatch.setattr(torch.onnx, "export", refuse_dynamic)
    assert not convert(trained["torch"].artifact, "onnx", tmp_path).ok  # a study's route only
    conv = convert(trained["torch"].artifact, "onnx", tmp_path, fallbacks=True)
    assert conv.ok, conv.message
    meta = conv.artifact.meta
    assert (meta["route"], meta["batch"]) == ("dynamo-static", "fixed")
    assert [e["route"] for e in meta["fallbacks"]] == ["dynamo-dynamic", "torchscript-dynamic"]
    assert all("Constraints violated" in e["error"] for e in meta["fallbacks"])
    x = digits_test[0][:7]
    with open_runner(trained["torch"].artifact) as original, \
            open_runner(conv.artifact) as converted:
        want, got = original.infer(x), converted.infer(x)
        assert converted.describe()["fixed_batch"] == 1
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-5


def test_when_no_route_converts_each_routes_failure_is_kept(trained, tmp_path, monkeypatch):
    import torch

    def refuse(*args, **kw):
        raise RuntimeError(f"Constraints violated ({'dynamo' if kw.get('dynamo') else 'jit'})")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    conv = convert(trained["torch"].artifact, "onnx", tmp_path, fallbacks=True)
    assert not conv.ok and conv.category is Category.CONVERTER_CRASH
    assert [(t["route"], t["error"]) for t in conv.tried] == [
        ("dynamo-dynamic", "RuntimeError: Constraints violated (dynamo)"),
        ("torchscript-dynamic", "RuntimeError: Constraints violated (jit)"),
        ("dynamo-static", "RuntimeError: Constraints violated (dynamo)")]
    assert "also failed" in conv.message
