"""The `Dataset` interface, subsets, and where data lives on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from convbench.records import Batch
from convbench.registry import Registry

DATASETS: Registry[type["Dataset"]] = Registry("dataset")


class DataError(RuntimeError):
    """A dataset is missing or corrupt; the message says what to do."""


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """Where datasets live: `--data-dir`, then $CONVBENCH_DATA, then the user cache dir."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("CONVBENCH_DATA"):
        return Path(os.environ["CONVBENCH_DATA"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("convbench")) / "data"


def cache_dir() -> Path:
    """Where convbench keeps derived files (tokenised text, trained models, conversions)."""
    import platformdirs

    root = os.environ.get("CONVBENCH_CACHE") or platformdirs.user_cache_dir("convbench")
    return Path(root).expanduser()


def stratified_subset(y: np.ndarray, n: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded subset of size `n` keeping each class's share.

    Classes get `floor(n * share)` samples, the remainder going to the largest fractional parts.
    `n=None` or `n >= len(y)` gives every index.
    """
    if n is None or n >= len(y):
        return np.arange(len(y))
    if n <= 0:
        raise ValueError(f"subset size must be positive, got {n}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts / counts.sum() * n
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take))[: n - take.sum()]:
        take[i] += 1
    picked = [rng.choice(np.flatnonzero(y == c), size=k, replace=False)
              for c, k in zip(classes, take)]
    return np.sort(np.concatenate(picked))


class Dataset:
    """A labelled dataset with a train and a test split, loaded whole into memory.

    Images come as float32 NCHW in [0, 1]; text as int64 token ids (N, maxlen).
    Subclasses implement `_load(split) -> (x, y)` and declare `files` (the layout on disk).
    """

    name: ClassVar[str]
    kind: ClassVar[str]  # "image" or "text"
    num_classes: ClassVar[int]
    files: ClassVar[str] = ""  # the expected layout, for error messages

    def __init__(self, data_dir: str | os.PathLike | None = None, **options: Any) -> None:
        self.root = data_root(data_dir)
        self.options = options
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _load(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def arrays(self, split: str, n: int | None = None, seed: int = 0):
        """(x, y, ids) of a split, or of its stratified seeded subset of size `n`."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if split not in self._cache:
            self._cache[split] = self._load(split)
        x, y = self._cache[split]
        ids = stratified_subset(y, n, seed)
        return x[ids], y[ids], ids

    def forget(self, split: str) -> None:
        """Drop a split this dataset holds in memory (it loads again when asked)."""
        self._cache.pop(split, None)

    def batches(self, split: str, batch_size: int = 128, n: int | None = None,
                seed: int = 0) -> Iterator[Batch]:
        x, y, ids = self.arrays(split, n, seed)
        for i in range(0, len(y), batch_size):
            yield Batch(x[i:i + batch_size], y[i:i + batch_size], ids[i:i + batch_size])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample (no batch axis)."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise the dataset's `DataError` if its files are absent (without loading them)."""

    def missing(self, *paths: Path) -> DataError:
        """The error for absent files, saying where convbench looked and how to fix it."""
        return DataError(
            f"{self.name}: not found under {self.root} (looked for "
            f"{', '.join(str(p) for p in paths)}). Expected layout: {self.files}. "
            f"Run `convbench data fetch {self.name}` when online, or point convbench at a local "
            f"copy with --data-dir DIR or CONVBENCH_DATA=DIR."
        )


def get_dataset(name: str, data_dir: str | os.PathLike | None = None, **options: Any) -> Dataset:
    return DATASETS.get(name)(data_dir, **options)


def resize_images(x: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Bilinear resize of NCHW images to `size` x `size`, grey replicated to `channels`."""
    n, c, h, w = x.shape
    if (h, w) != (size, size):
        from scipy.ndimage import zoom

        x = zoom(x, (1, 1, size / h, size / w), order=1, grid_mode=True, mode="nearest")
    if c != channels:
        if c != 1:
            raise ValueError(f"cannot turn {c}-channel images into {channels} channels")
        x = np.repeat(x, channels, axis=1)
    return np.clip(x, 0.0, 1.0).astype(np.float32)
