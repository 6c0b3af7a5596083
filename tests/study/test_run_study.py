"""A small study end to end: cells run, get stored, and are skipped when run again."""

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
        m = c["metrics"]
        assert m["n"] == 100 and m["label_flips"] == 0
        assert m["abs_err_max"] < 1e-5
        assert m["size_bytes_original"] > 0 and m["latency_median_s_bs8_converted"] > 0
        assert c["info"]["conversion"]["converter"] == f"onnx_from_{c['framework']}"


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
                       "attacks": [{"name": "fgsm", "sweep": [0.1]}, "genetic"],
                       "attack_n": 30})
    with Store(tmp_path / "s.db") as store:
        [result] = run_study(plan(spec), store)
        [cell] = list(store.cells())
    m = cell["metrics"]
    assert m["fgsm_n"] == 30 and m["fgsm_misclass_original"] > 0.2
    assert m["fgsm_divergence"] == 0 and "fgsm_eps0.1_misclass_converted" in m
    assert 0 < m["fgsm_perturbation_linf_mean"] <= 0.3 + 1e-6
    status = cell["info"]["attacks"]
    assert status["fgsm"]["status"] == "ok" and status["fgsm"]["params"]["eps"] == 0.3
    assert status["genetic"]["status"] == "skipped"  # a text attack on an image model
    saved = cell["artifacts"]["adversarial_fgsm"]
    with np.load(saved["path"]) as z:
        assert z["x_adv"].shape == (30, 1, 28, 28) and len(z["indices"]) == 30


def test_attack_names_and_parameters_are_checked_in_the_spec():
    import pytest

    from convbench.study import SpecError

    with pytest.raises(SpecError, match="unknown attack 'fgms'. Did you mean 'fgsm'"):
        parse_spec({**SPEC, "attacks": ["fgms"]})
    with pytest.raises(SpecError, match="no parameter 'max_iters'"):
        parse_spec({**SPEC, "attacks": [{"name": "pgd", "max_iters": 3}]})
