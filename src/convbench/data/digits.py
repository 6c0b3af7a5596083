"""scikit-learn's UCI optical digits: 1,797 real 8x8 images, always present: the default."""

from __future__ import annotations

import numpy as np

from convbench.data.base import Dataset, resize_images


class Digits(Dataset):
    """Digits resized to `size` (default 28) with `channels` (default 1); a seeded 75/25 split."""

    name = "digits"
    kind = "image"
    num_classes = 10
    files = "none: ships with scikit-learn"

    def _load(self, split):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        x = (d.images / 16.0).astype(np.float32)[:, None]
        y = d.target.astype(np.int64)
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
        x, y = (xtr, ytr) if split == "train" else (xte, yte)
        return resize_images(x, self.size, self.channels), y

    @property
    def size(self) -> int:
        return int(self.options.get("size", 28))

    @property
    def channels(self) -> int:
        return int(self.options.get("channels", 1))

    @property
    def input_shape(self):
        return (self.channels, self.size, self.size)
