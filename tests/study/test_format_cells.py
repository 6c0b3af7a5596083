"""Every format beyond ONNX and Core ML, and every compressed variant, as study cells: LeNet-5
in both frameworks and a GRU on IMDb, converted, run, measured (latency sweep, peak memory in
a child process) and attacked (white-box attacks crafted on the original and replayed; a
black-box attack on the converted runtime itself)."""

import importlib.util

import pytest

from conftest import need_data, need_wordnet
from convbench.formats import targets
from convbench.store import Store
from convbench.study import parse_spec, plan, run_study

BEYOND = [t for t, (fmt, _) in targets().items() if fmt.name not in ("onnx", "coreml")]
EXTRAS = {"executorch": "executorch", "litert_torch": "litert-torch"}


def _skipped_for_a_missing_extra(cell) -> bool:
    """A cell whose optional converter is not installed here is stored as skipped, saying
    how to install it."""
    absent = [pip for module, pip in EXTRAS.items() if importlib.util.find_spec(module) is None]
    return (cell.status.value == "skipped"
            and any(f"pip install 'convbench[{pip}]'" in cell.message for pip in absent))


def _cells(tmp_path, formats, timed: bool):
    # timed: a short latency sweep (at most 0.3 s a batch size, not the 4 s that narrows its
    # CI) and peak memory, each model in a process of its own (~10 s a cell)
    measures = ({"latency_batch_sizes": [1, 8], "latency_repeats": 2, "memory": True,
                 "latency_time_cap": 0.3, "latency_target_ci": 0.5} if timed else
                {"latency_batch_sizes": [], "memory": False})
    spec = parse_spec({
        "name": "formats", "preset": "smoke", "frameworks": ["torch", "keras"],
        "models": [{"model": "lenet5", "dataset": "digits"}], "formats": formats,
        "n_test": 100, "train": {"epochs": 8, "lr": 0.05, "batch_size": 32, "n_train": 1000},
        "measures": measures,
        "attacks": [{"name": "fgsm", "eps": 0.1},
                    {"name": "boundary", "max_iter": 2, "num_trial": 5, "init_size": 20}],
        "attack_n": 4})
    with Store(tmp_path / "s.db") as store:
        run_study(plan(spec), store)
        return {(c.key.framework, c.key.format): c for c in store.cells()}


def test_lenet5_cells_on_every_new_format_and_variant(tmp_path):
    cells = _cells(tmp_path, BEYOND, timed=False)
    assert len(cells) == 2 * len(BEYOND)
    for (framework, target), c in cells.items():
        fmt = targets()[target][0].name
        if framework == "keras" and fmt == "executorch":
            assert c.status.value == "skipped" and "converts from torch" in c.message
            continue
        if framework == "torch" and target in ("tflite-fp16", "tflite-int8"):
            assert c.status.value == "skipped" and "FP32 LiteRT only" in c.message
            continue
        if _skipped_for_a_missing_extra(c):
            continue
        assert c.status.value == "ok", (framework, target, c.category, c.message)
        m = c.metrics
        assert m.get("inputs") == 100 and m.get("accuracy", role="converted") >= 0.8, \
            (framework, target, m.get("accuracy", role="original"))
        # FGSM crafted on the original, replayed on the converted model
        assert m.get("inputs", attack="fgsm", direction="forward") > 0
        # Boundary queries the converted runtime itself (the reverse direction)
        assert c.outcome("attack", "boundary").status.value == "ok", (framework, target)
        assert m.get("inputs", attack="boundary", direction="reverse") > 0
        if "calibration_size" in targets()[target][1].options:
            cal = c.artifacts["converted"].meta["calibration"]
            assert (cal["split"], cal["n"], cal["seed"]) == ("train", 200, 0)


def test_latency_and_peak_memory_of_each_new_runtime_in_child_processes(tmp_path):
    # one cell per new runtime (the variants run on the same runtimes)
    cells = _cells(tmp_path, ["openvino", "tflite", "executorch"], timed=True)
    measured = {fmt for (framework, fmt), c in cells.items() if c.status.value == "ok"}
    assert {"openvino", "tflite"} <= measured
    for c in cells.values():
        if c.status.value == "ok":
            m = c.metrics
            for batch in (1, 8):
                assert m.get("latency", stat="median", role="converted", batch_size=batch) > 0
            assert m.get("load_time", role="converted") > 0
            assert m.get("memory", stat="peak", role="converted") > 1e7, c.key
            assert m.get("memory", stat="model", role="converted") > 1e6, c.key


@pytest.mark.realdata
def test_gru_cells_on_the_new_runtimes_in_both_frameworks(tmp_path):
    """A recurrent model on OpenVINO and LiteRT, FP32 and int8, each cell in a process of its
    own (as `convbench run` does): measured, and attacked by the genetic attack (black-box:
    it queries the converted runtime itself)."""
    need_data("imdb")
    need_wordnet()
    common = {
        "name": "rnn", "preset": "smoke", "models": [{"model": "gru", "dataset": "imdb"}],
        "n_test": 60, "train": {"epochs": 2, "n_train": 1000},
        "measures": {"latency_batch_sizes": [1], "latency_repeats": 2, "memory": False,
                     "latency_time_cap": 0.3, "latency_target_ci": 0.5, "latency_wait": 0},
        "attacks": [{"name": "genetic", "population": 6, "generations": 3}], "attack_n": 4}
    # PyTorch -> LiteRT is left to LeNet-5 here: litert-torch takes ~80 s on the GRU (its
    # FP32 cell matched the original within 1e-5 and was attacked when run outside the suite)
    # one route per runtime and precision (the suite's time): FP32 OpenVINO from PyTorch, int8
    # OpenVINO and FP32 LiteRT from Keras; PyTorch -> int8 LiteRT is skipped with its reason
    planned = [*plan(parse_spec({**common, "frameworks": ["torch"],
                                 "formats": ["openvino", "tflite-int8"]})),
               *plan(parse_spec({**common, "frameworks": ["keras"],
                                 "formats": ["openvino-int8", "tflite"]}))]
    with Store(tmp_path / "s.db") as store:
        run_study(planned, store, executor="local", workers=2)
        cells = {(c.key.framework, c.key.format): c for c in store.cells()}
    assert len(cells) == 4
    for (framework, target), c in cells.items():
        if (framework, target) == ("torch", "tflite-int8"):  # TensorFlow's converter: Keras
            assert c.status.value == "skipped" and "FP32 LiteRT only" in c.message
            continue
        if _skipped_for_a_missing_extra(c):
            continue
        assert c.status.value == "ok", (framework, target, c.category, c.message)
        m = c.metrics
        assert m.get("inputs") == 60 and m.get("latency", stat="median", role="converted",
                                                batch_size=1) > 0
        assert c.outcome("attack", "genetic").status.value == "ok", (framework, target)
        if not target.endswith("int8"):  # FP32 routes: the original's probabilities
            assert m.get("abs_err", stat="max") <= 1e-5, (framework, target)
        assert m.get("inputs", attack="genetic", direction="reverse") is not None
        if target.endswith("int8"):
            assert c.artifacts["converted"].meta["calibration"]["split"] == "train"
            assert m.get("label_flips") <= 6  # of 60
