from pathlib import Path

import pytest

from convbench.cli.study_cmds import DEMO
from convbench.study import SpecError, load_spec, parse_spec, plan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_typo_in_a_key_names_it_and_suggests():
    with pytest.raises(SpecError) as e:
        parse_spec({"models": [{"model": "lenet5"}], "frameworkz": ["torch"]})
    assert "frameworkz: unknown key. Did you mean 'frameworks'?" in str(e.value)


def test_typo_in_a_nested_key():
    with pytest.raises(SpecError, match=r"train\.epoch: unknown key\. Did you mean 'epochs'\?"):
        parse_spec({"models": [{"model": "lenet5"}], "train": {"epoch": 3}})


def test_unknown_model_and_bad_values():
    with pytest.raises(SpecError, match=r"models\.0\.model: unknown model 'lenet'\. "
                                        r"Did you mean 'lenet5'\?"):
        parse_spec({"models": [{"model": "lenet"}]})
    with pytest.raises(SpecError, match="train.epochs"):
        parse_spec({"models": [{"model": "lenet5"}], "train": {"epochs": -1}})
    with pytest.raises(SpecError, match="frameworks.0"):
        parse_spec({"models": [{"model": "lenet5"}], "frameworks": ["jax"]})


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="no such study spec"):
        load_spec(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", ["demo", "quick", "paper", "formats"])
def test_examples_are_valid(name):
    spec = load_spec(EXAMPLES / f"{name}.yaml")
    assert spec.name == name


def test_demo_yaml_is_what_the_demo_runs():
    assert load_spec(EXAMPLES / "demo.yaml") == parse_spec(DEMO)


def test_plan_expands_the_design():
    spec = load_spec(EXAMPLES / "paper.yaml")
    cells = plan(spec)
    assert len(cells) == 5 * 2 * 3 * 10
    assert len({c.key.id for c in cells}) == len(cells)
    lenet = [c for c in cells if c.key.model == "lenet5" and c.key.framework == "keras"]
    assert {c.train.seed for c in lenet} == set(range(10))
    assert all(c.train.epochs == 50 and c.n_test is None for c in cells)
    assert {c.key.runtime for c in cells} == {"onnxruntime", "coreml"}
