import numpy as np
import pytest

from convbench.convert import convert
from convbench.runtimes import RUNNERS, open_runner


def test_torch_runner(trained, digits_test):
    x, y = digits_test
    with open_runner(trained["torch"].artifact, threads=1) as r:
        out, ns = r.infer_timed(x[:16])
        assert r.describe() == {"runtime": "torch", "threads": 1}
        assert "gradients" in r.capabilities
    assert out.shape == (16, 10) and ns > 0


def test_keras_runner_matches_model_call(trained, digits_test):
    import keras

    x, _ = digits_test
    xk = x[:16].transpose(0, 2, 3, 1)
    with open_runner(trained["keras"].artifact) as r:
        out = r.infer(xk)
    ref = np.asarray(keras.saving.load_model(trained["keras"].artifact.path)(xk))
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-7)


def test_onnxruntime_runner_records_providers(trained, digits_test, tmp_path):
    x, _ = digits_test
    onnx_art = convert(trained["torch"].artifact, "onnx", tmp_path, exporter="torchscript").artifact
    with open_runner(onnx_art, threads=2) as r:
        assert r.describe()["providers"] == ["CPUExecutionProvider"]
        assert r.describe()["threads"] == 2
        assert r.infer(x[:5]).shape == (5, 10)
    assert r.load() > 0  # load time in ns, returned as data


def test_wrong_format_is_refused(trained):
    with pytest.raises(ValueError, match="runs .*'onnx'.*not 'torch'"):
        RUNNERS.get("onnxruntime")(trained["torch"].artifact)


def test_openvino_and_litert_runners(trained, digits_test, tmp_path):
    x, _ = digits_test
    ov_art = convert(trained["torch"].artifact, "openvino", tmp_path).artifact
    with open_runner(ov_art, threads=1) as r:
        assert r.describe() == {"runtime": "openvino", "threads": 1, "precision": "f32"}
        assert r.infer(x[:5]).shape == (5, 10) and r.infer(x[:1]).shape == (1, 10)
    tfl = convert(trained["keras"].artifact, "tflite", tmp_path).artifact
    with open_runner(tfl, threads=1) as r:
        xk = x[:5].transpose(0, 2, 3, 1)
        a, b = r.infer(xk), r.infer(xk[:2])  # the input is resized between batch sizes
        np.testing.assert_array_equal(a[:2], b)
        assert r.describe() == {"runtime": "litert", "threads": 1}
    import importlib.util

    if importlib.util.find_spec("executorch") is None:  # an optional install
        return
    pte = convert(trained["torch"].artifact, "executorch", tmp_path).artifact
    with open_runner(pte, threads=1) as r:
        planned = r.describe()["max_batch"]
        assert r.describe() == {"runtime": "executorch", "threads": 1, "max_batch": planned}
        # past the planned batch, the runner loops over it (ExecuTorch itself refuses)
        a, b = r.infer(x[:planned + 3]), r.infer(x[:1])
        assert a.shape == (planned + 3, 10)
        np.testing.assert_allclose(a[:1], b, atol=1e-6)


def test_a_runtime_whose_package_is_missing_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ai_edge_litert" else real(name, *a))
    ok, why = RUNNERS.get("litert").available()
    assert not ok and why == "ai-edge-litert not installed here: pip install ai-edge-litert"
    assert RUNNERS.get("openvino").available() == (True, "")


def test_every_runner_is_tested():
    assert set(RUNNERS.names()) <= {"torch", "keras", "onnxruntime", "coreml", "openvino",
                                    "litert", "executorch"}
    optional = {"executorch"}  # an extra: where it is absent, it says how to install it
    for name in RUNNERS.names():
        ok, why = RUNNERS.get(name).available()
        assert ok or (name in optional and "pip install 'convbench[executorch]'" in why), why
