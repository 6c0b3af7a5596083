"""Real data: LeNet-5 trained on a slice of MNIST keeps its labels through ONNX."""

import numpy as np
import pytest

from conftest import need_data
from convbench.records import CellKey
from convbench.study.cell import MeasureOptions, guarded, convert_and_compare, original_for
from convbench.training import preset_config
from convbench.training.run import dataset_for


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_lenet5_on_mnist_keeps_its_labels_through_onnx(framework):
    need_data("mnist")
    cfg = preset_config("smoke", framework, "lenet5", "mnist", epochs=2, n_train=6000,
                        lr=0.05, batch_size=64)
    original, info = original_for(cfg)
    x, y, _ = dataset_for("lenet5", "mnist").arrays("test", n=2000)
    key = CellKey(framework, "lenet5", "mnist", "onnx", "onnxruntime")
    result = guarded(key, lambda r: convert_and_compare(
        r, original, x, y, {}, MeasureOptions([1, 128], 1, 3, memory=False)))
    assert result.status.value == "ok", result.message
    m = result.metrics
    acc = m.get("accuracy", role="original")
    assert acc > 0.85 and m.get("accuracy", role="converted") == acc
    assert m.get("label_flips") == 0 and m.get("mcnemar") == 1.0
    assert m.get("abs_err", stat="max") < 1e-5
    assert np.isfinite(m.get("latency", stat="median", role="converted", batch_size=128))
