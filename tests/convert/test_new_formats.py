"""OpenVINO IR, LiteRT and ExecuTorch: every target from both frameworks (where a route exists),
run on their runtimes; FP32 routes match the original's probabilities to 1e-5, FP16 weights
keep the labels; a missing optional converter and a converter's own failure are recorded
results."""

import re
from pathlib import Path

import numpy as np
import pytest

from conftest import need_data
from convbench.convert import convert
from convbench.convert.base import Calibration
from convbench.formats import FORMATS, targets
from convbench.models import to_layout
from convbench.records import Category
from convbench.runtimes import open_runner
from convbench.training import preset_config, train

REPO = Path(__file__).resolve().parents[2]
FP32 = ["openvino", "openvino-onnx", "tflite", "executorch", "executorch-portable"]
FP16 = ["openvino-fp16", "tflite-fp16"]
NEW = FP32 + FP16


def _outputs(art, x):
    layout = "keras" if art.meta.get("layout") == "nhwc" else "torch"
    with open_runner(art, threads=2) as r:
        return r.infer_all(to_layout(x, layout), 64), r.describe()


def _converted(src, target, tmp_path):
    conv = convert(src, target, tmp_path)
    assert conv.ok, conv.message
    return conv


import importlib.util

HAS_EXECUTORCH = importlib.util.find_spec("executorch") is not None
HAS_LITERT_TORCH = importlib.util.find_spec("litert_torch") is not None

# PyTorch -> LiteRT (FP32 only) needs the litert-torch extra and ExecuTorch the executorch one:
# without them their cells are skipped (tested below). ExecuTorch takes PyTorch models only:
# a Keras one is a skipped cell, tested below.
ROUTES = [(fw, t) for fw in ("torch", "keras") for t in NEW
          if not (fw == "torch" and t.startswith("tflite") and
                  (t != "tflite" or not HAS_LITERT_TORCH))
          and not (fw == "keras" and t.startswith("executorch"))
          and (HAS_EXECUTORCH or not t.startswith("executorch"))]


@pytest.mark.parametrize("framework, target", ROUTES, ids=[f"{f}-{t}" for f, t in ROUTES])
def test_lenet5_on_each_new_target(trained, digits_test, framework, target, tmp_path):
    x, y = digits_test
    src = trained[framework].artifact
    conv = _converted(src, target, tmp_path)
    ref, _ = _outputs(src, x)
    got, described = _outputs(conv.artifact, x)
    err = np.abs(got - ref).max()
    if target in FP32:
        assert err <= 1e-5, err
    else:  # FP16 weights: rounding of 2^-11 relative per weight, labels kept
        assert 1e-7 < err < 1e-2, err
        assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.99
    if conv.artifact.format == "openvino":
        assert described["precision"] == "f32"  # not the CPU plugin's own bf16 default
        assert conv.artifact.meta["route"] == ("onnx" if target == "openvino-onnx" else "direct")
        assert conv.artifact.meta["weights"] == ("fp16" if target in FP16 else "fp32")
    elif conv.artifact.format == "executorch":
        assert conv.artifact.meta["backend"] == ("portable" if "portable" in target
                                                 else "xnnpack")
        assert conv.artifact.meta["batch"] == "dynamic"
    elif framework == "torch":  # litert-torch lowers flatten's view with a dynamic batch
        # through JAX, which needs concrete shapes: the batch is fixed at 1, the error kept
        assert conv.artifact.meta["batch"] == "fixed"
        assert "Shapes must be" in conv.artifact.meta["batch_route_fallbacks"][0]["error"]
    else:
        assert conv.artifact.meta["batch"] == "dynamic"
    # one sample and an odd batch run too (the batch axis is free)
    assert _outputs(conv.artifact, x[:3])[0].shape == (3, 10)


@pytest.mark.realdata
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_a_recurrent_model_on_openvino_and_litert(framework, tmp_path):
    need_data("imdb")
    from convbench.training.run import dataset_for

    cfg = preset_config("smoke", framework, "gru", "imdb", epochs=2, n_train=1000)
    src = train(cfg, tmp_path).artifact
    x, _, _ = dataset_for("gru", "imdb", **cfg.data_options).arrays("test", n=100)
    ref, _ = _outputs(src, x)
    # (PyTorch GRU -> ExecuTorch converts, but in ~270 s on 2 cores: too slow for the suite;
    # PyTorch GRU -> LiteRT takes ~70 s and is a cell of tests/study/test_format_cells.py)
    for target in ("openvino", "tflite"):
        if framework == "torch" and target == "tflite":
            continue
        conv = convert(src, target, tmp_path)
        assert conv.ok, conv.message
        got, _ = _outputs(conv.artifact, x)
        assert np.abs(got - ref).max() <= 1e-5
        if target == "tflite" and framework == "keras":
            # Keras' GRU lowers to tensor lists that need static shapes: the batch is fixed
            # at 1 and the dynamic route's error kept
            assert conv.artifact.meta["batch"] == "fixed"
            assert "static" in conv.artifact.meta["batch_route_fallbacks"][0]["error"]


def _without(monkeypatch, converter: str, module: str) -> None:
    """Make an optional converter's package look absent (the test install has every extra)."""
    from convbench.convert import CONVERTERS

    cls = CONVERTERS.get(converter)
    monkeypatch.setattr(cls, "requires", {f"{module}_absent_here": cls.requires[module]})


def test_litert_from_pytorch_without_litert_torch_is_unavailable(trained, tmp_path,
                                                                 monkeypatch):
    _without(monkeypatch, "litert_from_torch", "litert_torch")
    conv = convert(trained["torch"].artifact, "tflite", tmp_path)
    assert conv.category is Category.UNAVAILABLE
    assert "pip install 'convbench[litert-torch]'" in conv.message


# compressed variants on the digits test set: the mean absolute change of the probabilities
# each may make, and the share of labels it must keep (measured: int8 2.3e-4..2.8e-4 and
# 99.8-100%, FP16 7.8e-6 and 100%, 4-bit palettes 2.7e-3..3.1e-3 and 98.7-99.1%)
VARIANTS = {"onnx-int8": (1e-3, 0.99), "onnx-fp16": (1e-4, 0.999),
            "coreml-int8": (1e-3, 0.99), "coreml-palettized": (1e-2, 0.97)}


@pytest.mark.parametrize("target", list(VARIANTS))
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_compressed_variants_change_the_outputs_within_their_promise(
        trained, digits_test, framework, target, tmp_path):
    x, y = digits_test
    src = trained[framework].artifact
    plain = _converted(src, target.split("-")[0] + ("-fp32" if "coreml" in target else ""),
                       tmp_path)
    conv = _converted(src, target, tmp_path)
    assert conv.artifact.meta["variant"] == target.split("-", 1)[1]
    ref, _ = _outputs(src, x)
    got, _ = _outputs(conv.artifact, x)
    err = np.abs(got - ref)
    mean_bound, keep = VARIANTS[target]
    assert err.max() > 1e-7 and err.mean() < mean_bound, (err.max(), err.mean())
    assert (got.argmax(1) == ref.argmax(1)).mean() >= keep
    if target != "onnx-fp16":  # int8 and 4-bit weights: the file shrinks
        assert conv.artifact.size_bytes < 0.6 * plain.artifact.size_bytes


# quantised weights and activations, calibrated on 200 training digits: the mean absolute
# change of the probabilities, and the share of labels kept (measured: mean 0.9e-3 to 1.6e-3,
# max 0.08 to 0.37, 99.6-100% kept)
CALIBRATED = {"onnx-int8-static": (5e-3, 0.98), "tflite-int8": (5e-3, 0.98),
              "openvino-int8": (5e-3, 0.98)}


def _train_digits(n: int, seed: int = 0) -> Calibration:
    from convbench.data import get_dataset

    return Calibration(get_dataset("digits").arrays("train", n, seed)[0], "train", seed)


@pytest.mark.parametrize("target", list(CALIBRATED))
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_calibrated_int8_variants_record_their_data_and_keep_their_promise(
        trained, digits_test, framework, target, tmp_path):
    x, y = digits_test
    src = trained[framework].artifact
    if framework == "torch" and target == "tflite-int8":  # TensorFlow's converter: Keras only
        conv = convert(src, target, tmp_path, calibration=_train_digits)
        assert conv.category is Category.UNAVAILABLE and "FP32 LiteRT only" in conv.message
        return
    # no calibration source: a data error that says where the inputs come from
    missing = convert(src, target, tmp_path)
    assert missing.category is Category.DATA_ERROR and "training split" in missing.message
    conv = _converted_with(src, target, tmp_path, _train_digits)
    cal = conv.artifact.meta["calibration"]
    assert (cal["split"], cal["n"], cal["seed"]) == ("train", 200, 0) and len(cal["sha256"]) == 16
    ref, _ = _outputs(src, x)
    got, _ = _outputs(conv.artifact, x)
    err = np.abs(got - ref)
    kept = (got.argmax(1) == ref.argmax(1)).mean()
    print(f"{framework} {target}: mean {err.mean():.2e} max {err.max():.2e} kept {kept:.4f} "
          f"size {conv.artifact.size_bytes}")
    mean_bound, keep = CALIBRATED[target]
    assert err.max() > 1e-4 and err.mean() < mean_bound, (err.max(), err.mean())
    assert kept >= keep
    # other calibration inputs: another conversion, not the cached one
    other = _converted_with(src, target, tmp_path, lambda n: _train_digits(n, seed=1))
    assert other.artifact.path != conv.artifact.path and not other.cached
    assert other.artifact.meta["calibration"]["sha256"] != cal["sha256"]
    again = _converted_with(src, target, tmp_path, _train_digits)
    assert again.cached and again.artifact.path == conv.artifact.path


@pytest.mark.parametrize("size", [0, -5, "many"])
def test_a_calibration_size_that_is_not_a_count_is_a_data_error(trained, tmp_path, size):
    conv = convert(trained["torch"].artifact, "onnx-int8-static", tmp_path,
                   calibration=_train_digits, calibration_size=size)
    assert conv.category is Category.DATA_ERROR and "positive count" in conv.message


def _converted_with(src, target, tmp_path, calibration):
    conv = convert(src, target, tmp_path, calibration=calibration)
    assert conv.ok, conv.message
    return conv


def test_executorch_without_its_extra_is_unavailable_with_the_install_command(
        trained, tmp_path, monkeypatch):
    _without(monkeypatch, "executorch_from_torch", "executorch")
    conv = convert(trained["torch"].artifact, "executorch", tmp_path)
    assert conv.category is Category.UNAVAILABLE
    assert "pip install 'convbench[executorch]'" in conv.message


def test_a_route_that_does_not_exist_is_an_unavailable_conversion(trained, tmp_path):
    conv = convert(trained["keras"].artifact, "executorch", tmp_path)
    assert conv.category is Category.UNAVAILABLE
    assert conv.message == "no converter from 'keras' to 'executorch': executorch converts " \
                           "from torch"


def test_a_study_cell_whose_converter_is_missing_is_skipped(trained, digits_test, tmp_path,
                                                            monkeypatch):
    from convbench.records import CellKey, CellResult
    from convbench.study.cell import CellSkipped, MeasureOptions, convert_and_compare

    _without(monkeypatch, "litert_from_torch", "litert_torch")
    x, y = digits_test
    result = CellResult(CellKey("torch", "lenet5", "digits", "tflite", "litert"))
    with pytest.raises(CellSkipped,
                       match=re.escape("pip install 'convbench[litert-torch]'")) as e:
        convert_and_compare(result, trained["torch"].artifact, x[:20], y[:20], {},
                            MeasureOptions(latency_batch_sizes=[], memory=False))
    assert e.value.category is Category.UNAVAILABLE


def test_converter_failures_are_recorded_with_their_category(trained, tmp_path, monkeypatch):
    import openvino as ov
    import tensorflow as tf

    def unsupported(*a, **k):
        raise RuntimeError("OpConversionFailure: operation aten::foo is not supported")

    monkeypatch.setattr(ov, "convert_model", unsupported)
    conv = convert(trained["torch"].artifact, "openvino", tmp_path)
    assert conv.category is Category.UNSUPPORTED_OPERATOR and "aten::foo" in conv.message

    class Broken:
        def convert(self):
            raise RuntimeError("flatbuffer writer failed")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model", lambda path: Broken())
    conv = convert(trained["keras"].artifact, "tflite", tmp_path)
    assert conv.category is Category.CONVERTER_CRASH and "flatbuffer" in conv.message


def test_openvino_runs_at_the_precision_asked(trained, digits_test, tmp_path):
    x, _ = digits_test
    conv = _converted(trained["torch"].artifact, "openvino", tmp_path)
    ref, _ = _outputs(trained["torch"].artifact, x[:200])
    with open_runner(conv.artifact, precision="bf16") as r:
        low = r.infer(x[:200])
        assert r.describe()["precision"] == "bf16"
    # bf16 keeps 8 bits of mantissa: visibly off from the f32 run, yet the same digits mostly
    assert 1e-4 < np.abs(low - ref).max() < 0.2
    with pytest.raises(Exception, match="precision 'f8'"):
        open_runner(conv.artifact, precision="f8")


def test_every_format_has_converter_and_runner_tests_and_a_readme_row():
    """The plug-in contract: a format registered without its tests or its README rows fails
    here."""
    tests = "\n".join(p.read_text() for p in (REPO / "tests").rglob("test_*.py"))
    readme = (REPO / "README.md").read_text()
    runner_tests = (REPO / "tests" / "runtimes" / "test_runners.py").read_text()
    for name, (fmt, _) in targets().items():
        assert re.search(rf"[\"']{re.escape(name)}[\"']", tests), f"no test converts to {name}"
        assert f"| `{name}` |" in readme, f"README has no row for target {name}"
    for name in FORMATS.names():
        for runtime in FORMATS.get(name).runtimes:
            assert f'"{runtime}"' in runner_tests, f"runtime {runtime} has no runner test"
