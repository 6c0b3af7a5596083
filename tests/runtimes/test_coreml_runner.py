"""The coreml runtime: engines, skipped cells where Apple's runtime is missing, the CLI."""

import sys

import numpy as np
import pytest

from convbench.cli.main import main
from convbench.convert import convert
from convbench.runtimes import RUNNERS, RuntimeUnavailable, open_runner
from convbench.store import Store
from convbench.study import parse_spec, plan, run_study


@pytest.fixture(scope="module")
def packages(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("coreml")
    src = trained["torch"].artifact
    return {t: convert(src, t, out).artifact for t in ("coreml", "coreml-fp32", "coreml-nn")}


def test_interpreter_engine_runs_everywhere(packages, digits_test):
    x, _ = digits_test
    import torch

    with open_runner(packages["coreml"], engine="interpreter") as r:
        out = r.infer(x[:8])
        # the interpreter's kernels are PyTorch's: its thread count is recorded
        assert r.describe() == {"runtime": "coreml", "threads": torch.get_num_threads(),
                                "engine": "interpreter", "arith": "fp32"}
    assert out.shape == (8, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(1), 1, atol=2e-3)


def test_fp16_arithmetic_is_selectable(packages, digits_test):
    x, _ = digits_test
    with open_runner(packages["coreml"], arith="fp32") as a, \
            open_runner(packages["coreml"], arith="fp16") as b:
        wide, narrow = a.infer(x[:64]), b.infer(x[:64])
        # the option reaches the interpreter (whether fp16 kernels round differently from
        # fp32 ones rounded to fp16 is the CPU's: with AVX512-FP16/AMX they accumulate in fp32)
        assert (a.describe()["arith"], b.describe()["arith"]) == ("fp32", "fp16")
        assert (a._interp.arith, b._interp.arith) == ("fp32", "fp16")
    assert np.abs(wide - narrow).max() < 1e-2


@pytest.mark.skipif(sys.platform == "darwin", reason="Apple's runtime exists on macOS")
def test_native_engine_is_unavailable_off_macos(packages):
    ok, why = RUNNERS.get("coreml").available(engine="native")
    assert not ok and "--coreml-engine=interpreter" in why
    with pytest.raises(RuntimeUnavailable, match="needs macOS"):
        open_runner(packages["coreml"], engine="native")


@pytest.mark.skipif(sys.platform == "darwin", reason="Apple's runtime exists on macOS")
def test_a_native_cell_off_macos_is_stored_as_skipped(tmp_path):
    spec = parse_spec({"name": "t", "preset": "smoke", "frameworks": ["torch"],
                       "models": [{"model": "lenet5", "dataset": "digits"}],
                       "formats": ["coreml", "onnx"], "n_test": 50,
                       "train": {"epochs": 1, "n_train": 200},
                       "measures": {"latency_batch_sizes": [1], "latency_repeats": 2,
                                    "memory": False},
                       "runtime_options": {"coreml": {"engine": "native"}}})
    with Store(tmp_path / "s.db") as store:
        results = run_study(plan(spec), store)
        cells = {c.key.format: c for c in store.cells()}
    assert [r.status.value for r in results] == ["skipped", "ok"]
    assert cells["coreml"].category.value == "unavailable"
    assert "needs macOS" in cells["coreml"].message


def test_study_with_every_core_ml_target(tmp_path):
    # every target from PyTorch, the FP16 ML Program from Keras too (the suite's time)
    common = {"name": "t", "preset": "smoke", "models": [{"model": "lenet5", "dataset": "digits"}],
              "n_test": 100, "train": {"epochs": 2, "n_train": 300},
              "measures": {"latency_batch_sizes": [1, 8], "latency_repeats": 3, "memory": False,
                           "latency_time_cap": 0.3, "latency_target_ci": 0.5}}
    cells = [*plan(parse_spec({**common, "frameworks": ["torch"],
                               "formats": ["coreml", "coreml-fp32", "coreml-nn"]})),
             *plan(parse_spec({**common, "frameworks": ["keras"], "formats": ["coreml"]}))]
    with Store(tmp_path / "s.db") as store:
        results = run_study(cells, store)
    assert [r.status.value for r in results] == ["ok"] * 4, [r.message for r in results]
    for r in results:
        m = r.metrics
        exact = r.key.format != "coreml"
        assert m.get("abs_err", stat="max") < (1e-6 if exact else 1e-2)
        assert m.get("size", role="converted") > 0
        assert m.get("latency", stat="median", role="converted", batch_size=8) > 0
        # off macOS the compiled engine by default; NeuralNetwork models op by op on it
        runner, timed = r.info["runner_converted"], r.info["cost"]["runner_converted"]
        assert runner["engine"] == timed["engine"] == "compiled"
        assert runner["ran_on"] == timed["ran_on"]
    ran_on = sorted(r.info["runner_converted"]["ran_on"] for r in results)
    assert ran_on == ["NeuralNetwork layer interpreter"] + ["compiled"] * 3


def test_coreml_ops_lists_support(packages, capsys):
    assert main(["coreml", "ops", packages["coreml-fp32"].path]) == 0
    out = capsys.readouterr().out
    assert "ML Program" in out and "conv" in out and "MISSING" not in out
    assert main(["coreml", "ops", packages["coreml-nn"].path]) == 0
    assert "NeuralNetwork" in capsys.readouterr().out


def test_coreml_ops_on_a_corrupt_file(tmp_path, capsys):
    bad = tmp_path / "bad.mlmodel"
    bad.write_bytes(b"\x08\x01garbage")
    assert main(["coreml", "ops", str(bad)]) == 2
    assert "not a readable Core ML model" in capsys.readouterr().err
