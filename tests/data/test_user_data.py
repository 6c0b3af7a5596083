"""A user's data prepared once, in chunks, and read back a batch at a time: the values a
model gets equal the data preprocessed in memory, whatever the chunking."""

import numpy as np
import pytest

from convbench.data import DataError, user
from convbench.data.user import DataSource, Prep, prepare


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(user, "CHUNK_BYTES", 5000)  # a few rows per chunk: many chunks


def test_npz_rows_equal_the_arrays_preprocessed(tmp_path, small_chunks):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (37, 8, 8, 3), dtype=np.uint8)  # channels last
    y = rng.integers(0, 4, 37)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    prep = Prep(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    data = prepare(DataSource.from_path(tmp_path / "d.npz", prep=prep), (3, 8, 8),
                   root=tmp_path / "cache")
    want = ((x.transpose(0, 3, 1, 2) / np.float32(255)).astype(np.float32)
            - np.array([0.5, 0.4, 0.3], np.float32)[:, None, None]) \
        / np.array([0.2, 0.25, 0.3], np.float32)[:, None, None]
    assert data.info["layout_given"] == "nhwc" and data.x.shape == (37, 3, 8, 8)
    np.testing.assert_allclose(data.x[:], want, rtol=1e-6)
    np.testing.assert_allclose(data.x[np.array([3, 4, 5, 30])], want[[3, 4, 5, 30]], rtol=1e-6)
    assert np.array_equal(data.y, y)
    nhwc = data.x.in_layout("nhwc")
    assert nhwc.shape == (37, 8, 8, 3)
    np.testing.assert_allclose(nhwc[10:12], want[10:12].transpose(0, 2, 3, 1), rtol=1e-6)
    sub = data.subset(20)
    share = np.bincount(y, minlength=4) / len(y) * 20  # each class keeps its share, +-1
    assert len(sub.x) == 20 and np.all(np.abs(np.bincount(sub.y, minlength=4) - share) < 1)
    np.testing.assert_allclose(sub.x[:], want[sub.x.index], rtol=1e-6)


def test_token_ids_stay_integers(tmp_path):
    ids = np.arange(60, dtype=np.int32).reshape(6, 10)
    np.savez(tmp_path / "t.npz", x=ids)
    data = prepare(DataSource.from_path(tmp_path / "t.npz"), (10,), root=tmp_path / "c")
    assert data.y is None and data.x.dtype == np.int64
    assert np.array_equal(data.x[:], ids.astype(np.int64))


def test_image_folder_skips_and_counts_unreadable_files(tmp_path, small_chunks):
    from PIL import Image

    rng = np.random.default_rng(1)
    pixels = {}
    for i in range(7):
        d = tmp_path / "imgs" / ("cat" if i % 2 else "dog")
        d.mkdir(parents=True, exist_ok=True)
        a = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        Image.fromarray(a).save(d / f"{i}.png")
        pixels[f"{d.name}/{i}.png"] = a
    (tmp_path / "imgs" / "cat" / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    (tmp_path / "imgs" / ".ipynb_checkpoints").mkdir()  # no images: no class
    (tmp_path / "imgs" / "__MACOSX" / "cat").mkdir(parents=True)  # unzip debris: no class
    Image.fromarray(pixels["cat/1.png"]).save(tmp_path / "imgs" / "__MACOSX" / "cat" / "._1.png")
    data = prepare(DataSource.from_path(tmp_path / "imgs"), (3, 6, 6), root=tmp_path / "c")
    assert data.info["skipped"] == 1 and "bad.jpg" in data.info["skipped_files"][0]
    assert data.info["classes"] == ["cat", "dog"] and len(data.x) == 7
    order = sorted(pixels)  # files in sorted path order, labels by class folder
    want = np.stack([pixels[k].transpose(2, 0, 1) for k in order]) / np.float32(255)
    np.testing.assert_allclose(data.x[:], want, rtol=1e-6)
    assert list(data.y) == [0 if k.startswith("cat") else 1 for k in order]


def test_csv_with_named_classes(tmp_path):
    (tmp_path / "t.csv").write_text("f1,species,f2\n1.5,setosa,2\n0.5,virginica,-1\n3,setosa,0\n")
    data = prepare(DataSource.from_path(tmp_path / "t.csv", label_column="species"), (2,),
                   root=tmp_path / "c")
    assert data.info["classes"] == ["setosa", "virginica"] and list(data.y) == [0, 1, 0]
    np.testing.assert_array_equal(data.x[:], np.float32([[1.5, 2], [0.5, -1], [3, 0]]))


def test_synthetic_inputs_are_seeded_and_in_range(tmp_path):
    src = DataSource("synthetic", count=50, low=-1.0, high=2.0, seed=3)
    a = prepare(src, (4, 5), root=tmp_path / "a").x[:]
    b = prepare(src, (4, 5), root=tmp_path / "b").x[:]
    assert np.array_equal(a, b) and a.min() >= -1 and a.max() < 2 and a.shape == (50, 4, 5)


@pytest.mark.parametrize("make, message", [
    (lambda p: np.savez(p / "d.npz", x=np.zeros((3, 5, 5, 3))), "holds images of 5x5x3"),
    (lambda p: np.savez(p / "d.npz", y=np.zeros(3)), "no array 'x'"),
    (lambda p: np.savez(p / "d.npz", x=np.full((3, 3, 8, 8), np.nan, np.float32)), "NaN"),
    (lambda p: np.savez(p / "d.npz", x=np.zeros((3, 3, 8, 8)), y=np.zeros(2)), "must match"),
    (lambda p: np.savez(p / "d.npz", x=np.zeros((3, 3, 8, 8)), y=-np.ones(3)), "negative"),
])
def test_bad_arrays_say_what_to_do(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(DataError, match=message):
        prepare(DataSource.from_path(tmp_path / "d.npz"), (3, 8, 8), root=tmp_path / "c")
    assert not list((tmp_path / "c").glob("*/rows.json"))  # nothing half-prepared is reused


def test_loose_images_beside_class_folders_are_refused(tmp_path):
    from PIL import Image

    (tmp_path / "imgs" / "a").mkdir(parents=True)
    for p in (tmp_path / "imgs" / "a" / "1.png", tmp_path / "imgs" / "2.png"):
        Image.new("RGB", (4, 4)).save(p)
    with pytest.raises(DataError, match="1 image\\(s\\) beside class subfolders"):
        prepare(DataSource.from_path(tmp_path / "imgs"), (3, 4, 4), root=tmp_path / "c")


def test_sixteen_bit_images_are_refused_not_clipped(tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.full((4, 4), 4000, np.uint16)).save(tmp_path / "imgs" / "scan.png")
    with pytest.raises(DataError, match="16-bit"):
        prepare(DataSource.from_path(tmp_path / "imgs"), (1, 4, 4), root=tmp_path / "c")


@pytest.mark.parametrize("labels, want, classes", [
    (["0", "2", "10", "1"], [0, 2, 10, 1], None),  # indices written as text stay indices
    (["b", "a", "b", "c"], [1, 0, 1, 2], ["a", "b", "c"]),
])
def test_csv_labels_as_indices_or_names(tmp_path, labels, want, classes):
    rows = "\n".join(f"{i},{v}" for i, v in enumerate(labels))
    (tmp_path / "t.csv").write_text("\ufefff,label\n" + rows + "\n")  # an Excel BOM
    data = prepare(DataSource.from_path(tmp_path / "t.csv"), (1,), root=tmp_path / "c")
    assert list(data.y) == want and data.info["classes"] == classes


@pytest.mark.parametrize("label, message", [("", "is empty"), ("nan", "not whole numbers")])
def test_csv_bad_labels_say_which(tmp_path, label, message):
    (tmp_path / "t.csv").write_text(f"f,label\n1,0\n2,{label}\n")
    with pytest.raises(DataError, match=message):
        prepare(DataSource.from_path(tmp_path / "t.csv"), (1,), root=tmp_path / "c")


def test_preprocessing_changes_reuse_the_prepared_rows(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.arange(12, dtype=np.uint8).reshape(3, 4))
    a = prepare(DataSource.from_path(tmp_path / "d.npz"), (4,), root=tmp_path / "c")
    b = prepare(DataSource.from_path(tmp_path / "d.npz", prep=Prep(scale=2.0, dtype="float32")),
                (4,), root=tmp_path / "c")
    assert a.x.path == b.x.path  # one copy of the data on disk
    np.testing.assert_array_equal(b.x[:], np.arange(12, dtype=np.float32).reshape(3, 4) * 2)
