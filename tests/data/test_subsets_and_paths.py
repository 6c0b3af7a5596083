import numpy as np
import pytest

from convbench.data import get_dataset, stratified_subset
from convbench.data.base import DataError, data_root


def test_stratified_subset_keeps_class_shares_and_is_seeded():
    y = np.array([0] * 600 + [1] * 300 + [2] * 100)
    idx = stratified_subset(y, 100, seed=3)
    assert len(idx) == 100 and len(set(idx)) == 100
    assert np.bincount(y[idx]).tolist() == [60, 30, 10]
    assert np.array_equal(idx, stratified_subset(y, 100, seed=3))
    assert not np.array_equal(idx, stratified_subset(y, 100, seed=4))


def test_stratified_subset_rounds_to_exactly_n():
    y = np.array([0] * 5 + [1] * 5 + [2] * 5)
    assert len(stratified_subset(y, 7)) == 7
    assert len(stratified_subset(y, None)) == 15


def test_data_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVBENCH_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "flag") == tmp_path / "flag"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("CONVBENCH_DATA")
    assert data_root().name == "data" and "convbench" in str(data_root())


def test_digits_is_the_embedded_default():
    ds = get_dataset("digits")
    x, y, ids = ds.arrays("train")
    assert x.shape == (1347, 1, 28, 28) and x.dtype == np.float32
    assert 0.0 == x.min() and x.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    xt, yt, _ = ds.arrays("test")
    assert len(yt) == 450
    rgb = get_dataset("digits", size=32, channels=3).arrays("test", n=20)[0]
    assert rgb.shape == (20, 3, 32, 32) and np.array_equal(rgb[:, 0], rgb[:, 2])


@pytest.mark.parametrize("name", ["mnist", "cifar10", "imdb"])
def test_missing_dataset_says_what_to_do(name, tmp_path):
    with pytest.raises(DataError) as e:
        get_dataset(name, tmp_path).arrays("test")
    msg = str(e.value)
    assert str(tmp_path) in msg and f"convbench data fetch {name}" in msg
    assert "--data-dir" in msg and "CONVBENCH_DATA" in msg
