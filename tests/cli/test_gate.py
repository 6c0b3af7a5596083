"""`assess --fail-if`: a gate for CI pipelines, parsed without `eval`."""

import math
import sys
from pathlib import Path

import pytest

from convbench.cli.main import main
from convbench.gate import GateError, metric_values, parse
from convbench.records import Metric, Metrics

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_conditions_combine_with_and_or_not_and_parentheses():
    values = {"abs_err_max": 2e-4, "label_flip_rate": 0.0, "accuracy_change": -0.02}
    assert parse("label_flip_rate > 0.001 or abs_err_max > 1e-4").holds(values)
    assert not parse("label_flip_rate > 0.001 and abs_err_max > 1e-4").holds(values)
    assert parse("not (accuracy_change >= -0.01)").holds(values)
    assert not parse("accuracy_change>-1e-1").holds({"accuracy_change": -0.2})
    gate = parse("label_flip_rate > 0.001 or abs_err_max > 1e-4")
    assert gate.because(values) == ["abs_err_max > 0.0001 (0.0002 > 0.0001)"]
    assert parse("abs_err_max < 1").holds({"abs_err_max": math.nan})  # unmeasured: fails


@pytest.mark.parametrize("bad", ["abs_err_max >", "a >> 1", "a > 1 and", "(a > 1", "a 1",
                                 "__import__('os').system('x') > 1", "a > 1; b"])
def test_what_is_not_a_condition_is_refused_with_what_to_write(bad):
    with pytest.raises(GateError, match="--fail-if"):
        parse(bad)


def test_metric_names_and_an_unknown_one():
    metrics = Metrics([Metric("inputs", 200, "count"), Metric("label_flips", 3, "count"),
                       Metric("abs_err", 1e-6, "output", stat="max"),
                       Metric("accuracy", 0.9, "ratio", role="original"),
                       Metric("accuracy", 0.8, "ratio", role="converted"),
                       Metric("latency", 0.002, "s", stat="median", role="converted",
                              batch_size=32)])
    values = metric_values(metrics)
    assert values["label_flip_rate"] == 3 / 200 and values["abs_err_max"] == 1e-6
    assert values["latency_median_converted_b32"] == 0.002
    assert math.isclose(values["accuracy_change"], -0.1)
    with pytest.raises(GateError, match="abs_error_max, which this cell does not have"):
        parse("abs_error_max > 1").holds(values)


def test_assess_exits_3_when_a_cell_meets_the_condition(tmp_path, capsys):
    import torch

    sys.path.insert(0, str(FIXTURES))
    import user_models

    torch.manual_seed(0)
    torch.save(user_models.tiny_cnn().state_dict(), tmp_path / "tiny.pt")
    args = ["assess", "--framework", "torch", "--model", str(tmp_path / "tiny.pt"),
            "--factory", f"{FIXTURES / 'user_models.py'}:tiny_cnn", "--dataset", "digits",
            "--input-shape", "1,16,16", "--to", "onnx", "--n", "60", "--batch-sizes", "4",
            "--no-memory", "--store", str(tmp_path / "s.db")]
    assert main(args + ["--fail-if", "abs_err_max >>"]) == 2  # refused before any work
    assert "expected a metric name or a number" in capsys.readouterr().err
    assert main(args + ["--fail-if", "label_flip_rate > 0.5 or abs_err_max >= 0"]) == 3
    err = capsys.readouterr().err
    assert "--fail-if met by torch tiny.pt digits -> onnx" in err
    assert "abs_err_max >= 0 (" in err and "label_flip_rate" not in err.split("met by")[1]
