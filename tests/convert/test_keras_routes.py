"""A Keras `Sequential` model, the most common form of Keras model, converts to every target:
tried as it is first, then wrapped in a functional model, the route and the first error
recorded."""

import numpy as np
import pytest

from convbench.convert import convert
from convbench.models import to_layout
from convbench.records import Artifact
from convbench.runtimes import open_runner


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(6, 3, activation="relu"), keras.layers.BatchNormalization(),
        keras.layers.MaxPooling2D(), keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
    path = tmp_path_factory.mktemp("seq") / "sequential.keras"
    model.save(path)
    return Artifact.from_path("keras", path, layout="nhwc", input_shape=[28, 28, 1],
                              input_dtype="float32", holds="user model file")


@pytest.mark.parametrize("target, first_error, tolerance", [
    ("onnx", "keras_tensor", 1e-6), ("coreml-fp32", "output_names", 1e-5),
    ("coreml-nn", "output_names", 1e-5), ("coreml", "output_names", 5e-3)])
def test_a_sequential_model_converts_through_a_functional_wrap(sequential, digits_test,
                                                               tmp_path, target, first_error,
                                                               tolerance):
    conv = convert(sequential, target, tmp_path)
    assert conv.ok, conv.message
    meta = conv.artifact.meta
    assert meta["route"] == "keras-functional"
    assert first_error in meta["fallbacks"][0]["error"] and meta["fallbacks"][0]["route"] == \
        "keras"
    want, got = _outputs(sequential, conv.artifact, digits_test)
    assert np.abs(got - want).max() < tolerance
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.98


def _outputs(original, converted, digits_test):
    """Both models' outputs on 64 digits (Core ML through convbench's interpreter)."""
    x = to_layout(digits_test[0][:64], "keras")
    with open_runner(original) as runner:
        want = runner.infer(x)
    options = {"engine": "interpreter"} if converted.format == "coreml" else {}
    with open_runner(converted, **options) as runner:
        return want, runner.infer(x)


def test_a_functional_model_keeps_its_direct_route(trained, tmp_path):
    conv = convert(trained["keras"].artifact, "onnx", tmp_path)
    assert conv.ok and conv.artifact.meta["route"] == "keras"
    assert "fallbacks" not in conv.artifact.meta


def test_assess_a_sequential_model(sequential, tmp_path):
    from convbench.cli.main import main
    from convbench.store import Store

    rc = main(["assess", "--framework", "keras", "--model", sequential.path, "--dataset",
               "digits", "--n", "40", "--to", "onnx,coreml-fp32", "--batch-sizes", "none",
               "--no-memory", "--store", str(tmp_path / "s.db")])
    assert rc == 0
    with Store(tmp_path / "s.db") as store:
        cells = list(store.cells())
    assert {c.key.format for c in cells} == {"onnx", "coreml-fp32"}
    for c in cells:
        assert c.artifacts["converted"].meta["route"] == "keras-functional"
        assert c.metrics.one(measure="label_flips").value == 0


@pytest.fixture(scope="module")
def subclassed(tmp_path_factory):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
    import keras
    import keras_user_models

    keras.utils.set_random_seed(0)
    model = keras_user_models.SmallNet(10)
    model(np.zeros((1, 28, 28, 1), np.float32))
    path = tmp_path_factory.mktemp("sub") / "subclassed.keras"
    model.save(path)
    return Artifact.from_path("keras", path, layout="nhwc", input_shape=[28, 28, 1],
                              input_dtype="float32", custom_objects="keras_user_models")


@pytest.mark.parametrize("target, tolerance", [("onnx", 1e-6), ("coreml-fp32", 1e-5),
                                               ("coreml-nn", 1e-5), ("coreml", 5e-3)])
def test_a_subclassed_model_converts_to_every_target(subclassed, digits_test, tmp_path, target,
                                                     tolerance):
    """A subclassed model declares no input: its shape comes from the artifact, and it converts
    as it is or wrapped in a functional model (the route said)."""
    conv = convert(subclassed, target, tmp_path, custom_objects="keras_user_models")
    assert conv.ok, conv.message
    assert conv.artifact.meta["route"] in ("keras", "keras-functional")
    want, got = _outputs(subclassed, conv.artifact, digits_test)
    assert np.abs(got - want).max() < tolerance
