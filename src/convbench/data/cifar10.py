"""CIFAR-10 from the official "python version": the batches folder or its tarball."""

from __future__ import annotations

import io
import pickle
import tarfile

import numpy as np

from convbench.data.base import Dataset, DataError

BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


class _Restricted(pickle.Unpickler):
    """CIFAR batches are plain dicts of arrays: refuse any other global (no code runs)."""

    def find_class(self, module, name):
        if module.startswith("numpy") or (module, name) in {("builtins", "dict"),
                                                               ("builtins", "list")}:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing {module}.{name} in a CIFAR-10 batch")


def _parse(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = _Restricted(io.BytesIO(raw), encoding="latin1").load()
        x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(d["labels"], dtype=np.int64)
    except Exception as e:  # any failure here means the file is not a CIFAR batch
        raise DataError(f"cifar10: {name} is not a valid CIFAR-10 python batch ({e}); fetch "
                        f"it again with `convbench data fetch cifar10`") from e
    return x, y


class Cifar10(Dataset):
    name = "cifar10"
    kind = "image"
    num_classes = 10
    files = ("cifar-10-batches-py/{data_batch_1..5,test_batch} or cifar-10-python.tar.gz "
             "(the official python version)")
    input_shape = (3, 32, 32)

    def check(self):
        folder, tar = self.root / "cifar-10-batches-py", self.root / "cifar-10-python.tar.gz"
        if not folder.is_dir() and not tar.exists():
            raise self.missing(folder, tar)

    def _read(self, split) -> list[tuple[bytes, str]]:
        folder = self.root / "cifar-10-batches-py"
        tar = self.root / "cifar-10-python.tar.gz"
        if folder.is_dir():
            paths = [folder / b for b in BATCHES[split]]
            absent = [p for p in paths if not p.exists()]
            if absent:
                raise self.missing(*absent)
            return [(p.read_bytes(), str(p)) for p in paths]
        if tar.exists():
            with tarfile.open(tar, "r:gz") as t:
                return [(t.extractfile(f"cifar-10-batches-py/{b}").read(), f"{tar}:{b}")
                        for b in BATCHES[split]]
        raise self.missing(folder, tar)

    def _load(self, split):
        parts = [_parse(raw, name) for raw, name in self._read(split)]
        x = np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0
        return x, np.concatenate([p[1] for p in parts])
