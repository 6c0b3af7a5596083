"""A small study end to end: cells run, get stored, and are skipped when run again."""

import json
from pathlib import Path

from convbench.records import Category, CellKey
from convbench.store import Store
from convbench.study import parse_spec, plan, run_study
from convbench.study.cell import guarded

SPEC = {"name": "t", "preset": "smoke", "frameworks": ["torch", "keras"],
        "models": [{"model": "lenet5", "dataset": "digits"}], "n_test": 100,
        "train": {"epochs": 2, "n_train": 300},
        "measures": {"latency_batch_sizes": [1, 8], "latency_repeats": 3, "memory": False}}


def test_study_runs_stores_and_resumes(tmp_path):
    cells = plan(parse_spec(SPEC))
    with Store(tmp_path / "s.db") as store:
        first = run_study(cells, store, "t")
        assert [r.status.value for r in first] == ["ok", "ok"]
        again = run_study(cells, store, "t")
        assert again == []  # finished cells are skipped
        stored = list(store.cells())
    assert len(stored) == 2
    for c in stored:
        m = c.metrics
        assert m.get("inputs") == 100 and m.get("label_flips") == 0
        assert m.get("abs_err", stat="max") < 1e-5
        assert m.get("size", role="original") > 0
        assert m.get("latency", stat="median", role="converted", batch_size=8) > 0
        assert c.info["conversion"]["converter"] == f"onnx_from_{c.key.framework}"
        assert c.attempts == 1 and Path(c.info["log"]).exists()


def test_missing_dataset_fails_the_cell_not_the_study(tmp_path):
    spec = parse_spec({**SPEC, "models": [{"model": "lenet5", "dataset": "mnist"},
                                          {"model": "lenet5", "dataset": "digits"}],
                       "frameworks": ["torch"]})
    with Store(tmp_path / "s.db") as store:
        results = run_study(plan(spec, data_dir=str(tmp_path / "empty")), store)
    assert [(r.status.value, r.category) for r in results] == [
        ("failed", Category.DATA_ERROR), ("ok", Category.OK)]
    assert "convbench data fetch mnist" in results[0].message


def test_an_unforeseen_exception_is_recorded():
    def boom(result):
        raise ZeroDivisionError("oops")

    r = guarded(CellKey("torch", "m", "d", "onnx", "onnxruntime"), boom)
    assert r.status.value == "failed" and r.category is Category.INTERNAL_ERROR
    assert "ZeroDivisionError: oops" in r.message


def test_a_cell_with_attacks_stores_rq3_and_adversarial_inputs(tmp_path):
    import numpy as np

    spec = parse_spec({**SPEC, "frameworks": ["torch"], "formats": ["onnx"],
                       "train": {"epochs": 8, "lr": 0.05, "batch_size": 32, "n_train": 1000},
                       "attacks": [{"name": "fgsm", "sweep": [0.1]}, "genetic",
                                   {"name": "boundary", "max_iter": 5, "n": 12}],
                       "attack_n": 30})
    with Store(tmp_path / "s.db") as store:
        [result] = run_study(plan(spec), store)
        [cell] = list(store.cells())
    m = cell.metrics
    fw = {"attack": "fgsm", "direction": "forward"}
    assert m.get("inputs", **fw) == 30 and m.get("misclassification", role="original", **fw) > 0.2
    assert m.get("divergence", **fw) == 0
    assert m.get("misclassification", role="converted", sweep="eps", sweep_value=0.1,
                 **fw) is not None
    assert 0 < m.get("perturbation", stat="linf_mean", **fw) <= 0.3 + 1e-6
    fgsm = cell.outcome("attack", "fgsm")
    assert fgsm.status.value == "ok" and fgsm.params["eps"] == 0.3
    genetic = cell.outcome("attack", "genetic")
    assert genetic.status.value == "skipped" and "text" in genetic.message
    # an attack's own n: Boundary on 12 inputs, both ways, in the cell's step timings
    for direction in ("forward", "reverse"):
        assert m.get("inputs", attack="boundary", direction=direction) == 12
    assert cell.outcome("attack", "boundary").params["implementation"] == "batched"
    assert cell.info["step_seconds"]["attack boundary"] > 0
    assert set(cell.info["step_seconds"]) >= {"training", "converting", "attack fgsm"}
    from convbench.results import to_json
    assert json.loads(to_json([cell]))["cells"][0]["step_seconds"] == cell.info["step_seconds"]
    saved = cell.artifacts["adversarial_fgsm"]
    with np.load(saved.path) as z:
        assert z["x_adv"].shape == (30, 1, 28, 28) and len(z["indices"]) == 30


def test_attack_names_and_parameters_are_checked_in_the_spec():
    import pytest

    from convbench.study import SpecError

    with pytest.raises(SpecError, match="unknown attack 'fgms'. Did you mean 'fgsm'"):
        parse_spec({**SPEC, "attacks": ["fgms"]})
    with pytest.raises(SpecError, match="no parameter 'max_iters'"):
        parse_spec({**SPEC, "attacks": [{"name": "pgd", "max_iters": 3}]})
    with pytest.raises(SpecError, match="n is the number of inputs it attacks"):
        parse_spec({**SPEC, "attacks": [{"name": "boundary", "n": 0}]})
    with pytest.raises(SpecError, match="implementation must be one of batched, art"):
        parse_spec({**SPEC, "attacks": [{"name": "boundary", "implementation": "fast"}]})
    spec = parse_spec({**SPEC, "attacks": [{"name": "boundary", "n": 50}, "fgsm"]})
    assert spec.attacks[0]["n"] == 50 and "n" not in spec.attacks[1]


def test_retry_noisy_times_again_only_the_noisy_cells_cost(tmp_path):
    import sqlite3

    spec = parse_spec({**SPEC, "frameworks": ["torch"]})
    cells = plan(spec)
    db = tmp_path / "s.db"
    with Store(db) as store:
        run_study(cells, store, "t")
        [before] = list(store.cells())
    conn = sqlite3.connect(db)  # as if another process had competed for the CPUs
    with conn:
        conn.execute("UPDATE metrics SET noisy = 1, value = value * 50 WHERE measure = "
                     "'latency' AND stat = 'median'")
    conn.close()
    with Store(db) as store:
        assert run_study(cells, store, "t", retry_noisy=True) == []  # no cell reruns
        [after] = list(store.cells())
    lat = after.metrics.find(measure="latency", stat="median")
    assert len(lat) == 4
    assert after.info["cost"]["timed_from"] > before.finished  # measured again, now
    for m in lat:  # timed again: back near the first figures, not 50 times them
        first = before.metrics.get("latency", stat="median", role=m.role,
                                   batch_size=m.batch_size)
        assert m.value < 10 * first
    assert after.started == before.started and after.attempts == before.attempts
    cost = ("latency", "load_time", "memory")  # taken again together, in fresh processes
    assert [m for m in after.metrics if m.measure not in cost] == \
        [m for m in before.metrics if m.measure not in cost]
