import hashlib
import urllib.error

import pytest

from convbench.data import fetch as fetch_mod
from convbench.data.base import DataError


def test_offline_fetch_names_the_file_and_the_local_alternative(monkeypatch, tmp_path):
    def offline(*a, **k):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(fetch_mod.urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as e:
        fetch_mod.fetch("mnist", tmp_path)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and "--data-dir" in msg
    assert not list(tmp_path.rglob("*.part"))


def test_checksum_mismatch_keeps_nothing(monkeypatch, tmp_path):
    src = tmp_path / "served.bin"
    src.write_bytes(b"not the real file")
    monkeypatch.setitem(fetch_mod.SOURCES, "mnist",
                        [("mnist/x.gz", src.as_uri(), "0" * 64)])
    with pytest.raises(DataError, match="sha256"):
        fetch_mod.fetch("mnist", tmp_path / "root")
    assert not (tmp_path / "root" / "mnist" / "x.gz").exists()


def test_verified_file_lands_in_the_layout(monkeypatch, tmp_path):
    src = tmp_path / "served.bin"
    src.write_bytes(b"payload")
    sha = hashlib.sha256(b"payload").hexdigest()
    monkeypatch.setitem(fetch_mod.SOURCES, "mnist", [("mnist/x.gz", src.as_uri(), sha)])
    assert fetch_mod.fetch("mnist", tmp_path / "root") == [tmp_path / "root" / "mnist" / "x.gz"]
    assert (tmp_path / "root" / "mnist" / "x.gz").read_bytes() == b"payload"


def test_unknown_dataset():
    with pytest.raises(DataError, match="fetchable"):
        fetch_mod.fetch("svhn")
