"""MNIST from its four official IDX `.gz` files."""

from __future__ import annotations

import gzip

import numpy as np

from convbench.data.base import Dataset, DataError

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path, magic: int) -> np.ndarray:
    """Read a gzipped IDX file, checking its magic number (2051 images, 2049 labels)."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable gzip file ({e}); fetch it again "
                        f"with `convbench data fetch mnist`") from e
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path}: IDX magic number {found}, expected {magic}; the file is "
                        f"corrupt or not MNIST")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: holds {data.size} values, header says {dims}; truncated file")
    return data.reshape(dims)


class Mnist(Dataset):
    name = "mnist"
    kind = "image"
    num_classes = 10
    files = "mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (the four official files)"
    input_shape = (1, 28, 28)

    def check(self):
        absent = [self.root / "mnist" / f for pair in FILES.values() for f in pair
                  if not (self.root / "mnist" / f).exists()]
        if absent:
            raise self.missing(*absent)

    def _load(self, split):
        img, lab = (self.root / "mnist" / f for f in FILES[split])
        absent = [p for p in (img, lab) if not p.exists()]
        if absent:
            raise self.missing(*absent)
        x = read_idx(img, 2051).astype(np.float32)[:, None] / 255.0
        y = read_idx(lab, 2049).astype(np.int64)
        return x, y
