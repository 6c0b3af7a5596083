"""The loaders on the real datasets of the study (../shared/data)."""

import gzip
import shutil

import numpy as np
import pytest

from conftest import DATA, need_data
from convbench.data import get_dataset
from convbench.data.base import DataError
from convbench.data.imdb import pad_sequences, tokenize


def test_mnist_reads_the_official_idx_files():
    need_data("mnist")
    ds = get_dataset("mnist")
    x, y, _ = ds.arrays("test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert len(ds.arrays("train")[1]) == 60000


def test_mnist_truncated_file_is_a_clear_error(tmp_path):
    need_data("mnist")
    (tmp_path / "mnist").mkdir()
    for f in (DATA / "mnist").iterdir():
        shutil.copy(f, tmp_path / "mnist" / f.name)
    raw = gzip.decompress((DATA / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw[:5000]))
    with pytest.raises(DataError, match="truncated"):
        get_dataset("mnist", tmp_path).arrays("test")


def test_cifar10_matches_the_published_statistics():
    need_data("cifar-10-batches-py")
    x, y, _ = get_dataset("cifar10").arrays("test")
    assert x.shape == (10000, 3, 32, 32)
    assert np.bincount(y).tolist() == [1000] * 10
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), [0.4942, 0.4851, 0.4504], atol=1e-4)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), [0.2467, 0.2429, 0.2616], atol=1e-4)


def test_imdb_rebuilds_keras_load_data():
    need_data("imdb")
    ds = get_dataset("imdb")
    seqs, y = ds.sequences("train")
    assert len(seqs[0]) == 218
    # keras.datasets.imdb.load_data(num_words=1000)[0][0][0][:10]: rank 1622 and 1385 become oov
    assert seqs[0][:10] == [1, 14, 22, 16, 43, 530, 973, 2, 2, 65]
    assert max(max(s) for s in seqs) == 999
    assert np.bincount(y).tolist() == [12500, 12500]
    test_seqs, ty = ds.sequences("test")
    assert len(test_seqs) == 25000 and np.bincount(ty).tolist() == [12500, 12500]
    x, _, _ = ds.arrays("train", n=10)
    assert x.shape == (10, 500) and x.dtype == np.int64


def test_tokenizer_and_padding_follow_keras():
    words = ["great", "film", "br", "br", "it's", "good"]
    assert tokenize("Great film!<br /><br />It's GOOD.") == words
    out = pad_sequences([[1, 2, 3], [4, 5, 6, 7, 8], []], maxlen=4)
    assert out.tolist() == [[0, 1, 2, 3], [5, 6, 7, 8], [0, 0, 0, 0]]
