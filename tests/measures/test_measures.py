import numpy as np
import pytest

from convbench.convert import convert
from convbench.measures import agreement, latency_sweep, mcnemar_exact, peak_rss
from convbench.runtimes import open_runner


def test_agreement_on_hand_computed_outputs():
    orig = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]], dtype=np.float32)
    conv = orig.copy()
    conv[2] = [0.4, 0.6]  # a flip: orig says 0, conv says 1
    conv[3] = [0.5, 0.5]
    y = np.array([0, 1, 1, 0])
    m = agreement(orig, conv, y)
    assert m["accuracy_original"] == 0.75 and m["accuracy_converted"] == 1.0
    assert m["label_flips"] == 1 and m["label_flip_rate"] == 0.25
    assert m["abs_err_max"] == pytest.approx(0.2, abs=1e-6)
    assert m["abs_err_mean"] == pytest.approx(0.4 / 8, abs=1e-7)
    assert m["rel_err_max"] == pytest.approx(0.2 / 0.4, rel=1e-5)
    assert m["bitwise_mismatch_rate"] == 2 / 8
    assert m["mcnemar_p"] == 1.0  # one discordant pair


def test_relative_error_over_zero_is_infinite_not_hidden():
    orig = np.array([[1e-3, 1.0]])
    conv = np.array([[0.0, 1.0]])
    m = agreement(orig, conv, np.array([1]))
    assert np.isinf(m["rel_err_max"]) and m["abs_err_max"] == pytest.approx(1e-3)


def test_nan_outputs_are_counted_not_raised():
    m = agreement(np.array([[np.nan, 1.0]]), np.array([[0.0, 1.0]]), np.array([1]))
    assert m["nonfinite_outputs_original"] == 1 and m["nonfinite_outputs_converted"] == 0


def test_mcnemar_exact_known_values():
    a = np.array([True] * 10 + [False] * 2 + [True] * 20)
    b = np.array([False] * 10 + [True] * 2 + [True] * 20)
    # b=10, c=2: two-sided binomial p = 2 * P(X <= 2 | n=12, p=0.5) = 2 * 79/4096
    assert mcnemar_exact(a, b) == pytest.approx(2 * 79 / 4096)
    assert mcnemar_exact(a, a) == 1.0


def test_latency_sweep_reports_median_and_p95(trained, digits_test):
    x, _ = digits_test
    with open_runner(trained["torch"].artifact) as r:
        m = latency_sweep(r, x, batch_sizes=(1, 500), warmup=1, repeats=5)
    assert set(m) == {"latency_median_s_bs1", "latency_p95_s_bs1", "latency_median_s_bs500",
                      "latency_p95_s_bs500"}
    assert 0 < m["latency_median_s_bs1"] <= m["latency_p95_s_bs1"]
    assert m["latency_median_s_bs500"] > m["latency_median_s_bs1"]  # 500 > 450: tiled batch


def test_peak_rss_is_the_runtimes_own(trained, digits_test, tmp_path):
    import psutil

    x, _ = digits_test
    onnx_art = convert(trained["torch"].artifact, "onnx", tmp_path, exporter="torchscript").artifact
    ort = peak_rss(onnx_art, "onnxruntime", x[:32])
    tor = peak_rss(trained["torch"].artifact, "torch", x[:32])
    assert 0 < ort["import_rss_bytes"] <= ort["peak_rss_bytes"]
    assert ort["model_rss_bytes"] == ort["peak_rss_bytes"] - ort["import_rss_bytes"]
    # ONNX Runtime is far lighter than torch; neither includes this (large) test process
    assert ort["peak_rss_bytes"] < tor["peak_rss_bytes"]
    assert ort["peak_rss_bytes"] < psutil.Process().memory_info().rss


def test_memory_probe_failure_is_reported(trained, tmp_path):
    from convbench.records import Artifact

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"junk")
    with pytest.raises(RuntimeError, match="memory probe of onnxruntime failed"):
        peak_rss(Artifact.from_path("onnx", bad), "onnxruntime", np.zeros((1, 1, 28, 28)))


def test_core_ml_probe_leaves_out_tensorflow(trained, digits_test, tmp_path):
    x, _ = digits_test
    coreml = convert(trained["torch"].artifact, "coreml-fp32", tmp_path).artifact
    mem = peak_rss(coreml, "coreml", x[:8], options={"engine": "interpreter"})
    # coremltools with TensorFlow imported takes about 850 MB; the runtime itself far less
    assert 0 < mem["peak_rss_bytes"] < 600 * 2 ** 20
