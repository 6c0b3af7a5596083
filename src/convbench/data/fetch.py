"""`convbench data fetch NAME`: download the official files, verify their checksums.

Files land in the data root with the layout the loaders read. A download that fails (offline)
or does not match its checksum stops with an error naming the file and how to use a local copy;
a file that fails its checksum is removed, and files already present and valid are kept.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from convbench.data.base import DataError, data_root

# name -> [(relative path, url, sha256)]
SOURCES: dict[str, list[tuple[str, str, str]]] = {
    "mnist": [
        (f"mnist/{f}", f"https://ossci-datasets.s3.amazonaws.com/mnist/{f}", h) for f, h in [
            ("train-images-idx3-ubyte.gz",
             "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            ("train-labels-idx1-ubyte.gz",
             "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            ("t10k-images-idx3-ubyte.gz",
             "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            ("t10k-labels-idx1-ubyte.gz",
             "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6")]],
    "cifar10": [("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                 "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce")],
    "imdb": [("imdb/aclImdb_v1.tar.gz",
              "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
              "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"),
             ("imdb/imdb_word_index.json",
              "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb_word_index.json",
              "027313fe9a320280f3bf0fac5baf58c4a683cf39a7ed9c3d3d3912bde4284cf6")],
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(name: str, data_dir=None, timeout: float = 60) -> list[Path]:
    """Download dataset `name` into the data root; return the paths of its files."""
    if name == "digits":
        return []  # ships with scikit-learn
    if name not in SOURCES:
        raise DataError(f"no download for {name!r}; fetchable: {', '.join(SOURCES)}")
    root = data_root(data_dir)
    paths = []
    for rel, url, sha in SOURCES[name]:
        dest = root / rel
        paths.append(dest)
        if dest.exists() and sha256_file(dest) == sha:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r, open(part, "wb") as f:
                shutil.copyfileobj(r, f, 1 << 20)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            part.unlink(missing_ok=True)
            raise DataError(
                f"cannot download {url} ({e}). If this machine is offline, copy the official "
                f"file to {dest} (layout: {rel} under the data dir), or point convbench at a "
                f"local copy with --data-dir DIR or CONVBENCH_DATA=DIR.") from e
        got = sha256_file(part)
        if got != sha:
            part.unlink()
            raise DataError(f"{url}: sha256 {got}, expected {sha}; the download is corrupt or "
                            f"the file changed upstream. Nothing was kept; try again.")
        part.replace(dest)
    return paths
