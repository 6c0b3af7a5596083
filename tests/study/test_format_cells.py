"""Every format beyond ONNX and Core ML, and every compressed variant, as study cells: LeNet-5
in both frameworks and a GRU on IMDb, converted, run, measured (latency sweep, peak memory in
a child process) and attacked (white-box attacks crafted on the original and replayed; a
black-box attack on the converted runtime itself)."""

import importlib.util

import pytest

from conftest import need_data
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


def _cells(tmp_path, formats, memory: bool):
    spec = parse_spec({
        "name": "formats", "preset": "smoke", "frameworks": ["torch", "keras"],
        "models": [{"model": "lenet5", "dataset": "digits"}], "formats": formats,
        "n_test": 100, "train": {"epochs": 8, "lr": 0.05, "batch_size": 32, "n_train": 1000},
        # a short latency sweep: at most 0.3 s a batch size, not the 4 s that narrows its CI
        "measures": {"latency_batch_sizes": [1, 8], "latency_repeats": 2, "memory": memory,
                     "latency_time_cap": 0.3, "latency_target_ci": 0.5},
        "attacks": [{"name": "fgsm", "eps": 0.1},
                    {"name": "boundary", "max_iter": 2, "num_trial": 5, "init_size": 20}],
        "attack_n": 4})
    with Store(tmp_path / "s.db") as store:
        run_study(plan(spec), store)
        return {(c.key.framework, c.key.format): c for c in store.cells()}


def test_lenet5_cells_on_every_new_format_and_variant(tmp_path):
    cells = _cells(tmp_path, BEYOND, memory=False)
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
        for batch in (1, 8):
            assert m.get("latency", stat="median", role="converted", batch_size=batch) > 0
        # FGSM crafted on the original, replayed on the converted model
        assert m.get("inputs", attack="fgsm", direction="forward") > 0
        # Boundary queries the converted runtime itself (the reverse direction)
        assert c.outcome("attack", "boundary").status.value == "ok", (framework, target)
        assert m.get("inputs", attack="boundary", direction="reverse") > 0
        if "calibration_size" in targets()[target][1].options:
            cal = c.artifacts["converted"].meta["calibration"]
            assert (cal["split"], cal["n"], cal["seed"]) == ("train", 200, 0)


def test_peak_memory_of_each_new_runtime_in_a_child_process(tmp_path):
    # one cell per new runtime (memory is measured in a process of its own: ~10 s a cell)
    cells = _cells(tmp_path, ["openvino", "tflite", "executorch"], memory=True)
    measured = {fmt for (framework, fmt), c in cells.items() if c.status.value == "ok"}
    assert {"openvino", "tflite"} <= measured
    for c in cells.values():
        if c.status.value == "ok":
            m = c.metrics
            assert m.get("memory", stat="peak", role="converted") > 1e7, c.key
            assert m.get("memory", stat="model", role="converted") > 1e6, c.key
