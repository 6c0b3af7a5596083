"""IMDb reviews as `keras.datasets.imdb.load_data` builds them, rebuilt from the review text.

Recipe (../shared/data/README.md): keras' default tokenizer; ranks from `imdb_word_index.json`;
reviews in file-name order (train/pos, train/neg, then test); one RandomState(113) shuffling train
then test; start_char=1, oov_char=2, index_from=3; words of rank >= num_words become oov. Sequences
are then pre-padded and pre-truncated to `maxlen` as `keras.utils.pad_sequences` does.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from pathlib import Path

import numpy as np

from convbench.data.base import Dataset, DataError, cache_dir

START, OOV, INDEX_FROM, SEED = 1, 2, 3, 113
_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
_TABLE = str.maketrans({c: " " for c in _FILTERS})
_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/([^/]+\.txt)$")


def tokenize(text: str) -> list[str]:
    """keras' `text_to_word_sequence` with its defaults."""
    return [w for w in text.lower().translate(_TABLE).split(" ") if w]


def pad_sequences(seqs: list[list[int]], maxlen: int) -> np.ndarray:
    """Pre-pad with 0 and keep the last `maxlen` ids (keras' padding='pre', truncating='pre')."""
    out = np.zeros((len(seqs), maxlen), dtype=np.int64)
    for i, s in enumerate(seqs):
        s = s[-maxlen:]
        if s:
            out[i, maxlen - len(s):] = s
    return out


class Imdb(Dataset):
    """Options: `num_words` (1000), `maxlen` (500)."""

    name = "imdb"
    kind = "text"
    num_classes = 2
    files = ("imdb/imdb_word_index.json plus the reviews as imdb/aclImdb/{train,test}/{pos,neg}/"
             "*.txt or a tarball of that tree (imdb/aclImdb_v1.tar.gz or "
             "imdb/aclImdb-labeled.tar.gz)")

    @property
    def num_words(self) -> int:
        return int(self.options.get("num_words", 1000))

    @property
    def maxlen(self) -> int:
        return int(self.options.get("maxlen", 500))

    @property
    def input_shape(self):
        return (self.maxlen,)

    def vocabulary(self) -> dict[int, str]:
        """Token id -> word for the ids this dataset produces (below `num_words`)."""
        _, index = self._sources()
        ranks: dict[str, int] = json.loads(index.read_text())
        vocab = {rank + INDEX_FROM: word for word, rank in ranks.items()
                 if rank + INDEX_FROM < self.num_words}
        vocab.update({0: "<pad>", START: "<start>", OOV: "<oov>"})
        return vocab

    def sequences(self, split: str) -> tuple[list[list[int]], np.ndarray]:
        """Unpadded id sequences (num_words applied) and labels, cached across runs."""
        full = self._full_sequences()
        seqs, y = full[split]
        nw = self.num_words
        return [[w if w < nw else OOV for w in s] for s in seqs], y

    def _load(self, split):
        seqs, y = self.sequences(split)
        return pad_sequences(seqs, self.maxlen), y

    def check(self):
        self._sources()

    # -- building the full-vocabulary sequences once ------------------------------------------
    def _sources(self) -> tuple[Path, Path]:
        d = self.root / "imdb"
        index = d / "imdb_word_index.json"
        candidates = [d / "aclImdb", d / "aclImdb-labeled.tar.gz", d / "aclImdb_v1.tar.gz"]
        reviews = next((p for p in candidates if p.exists()), None)
        if reviews is None or not index.exists():
            raise self.missing(*([index] if not index.exists() else []), *candidates)
        return reviews, index

    def _full_sequences(self):
        if "_full" in self.__dict__:
            return self._full
        reviews, index = self._sources()
        stamp = f"{reviews.resolve()}|{reviews.stat().st_size}|{index.stat().st_size}"
        cached = cache_dir() / "imdb" / (hashlib.sha256(stamp.encode()).hexdigest()[:16] + ".npz")
        if cached.exists():
            z = np.load(cached)
            self._full = {s: ([a.tolist() for a in np.split(z[f"{s}_ids"], z[f"{s}_cuts"])],
                              z[f"{s}_y"]) for s in ("train", "test")}
            return self._full
        self._full = self._build(reviews, index)
        cached.parent.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for s, (seqs, y) in self._full.items():
            arrays[f"{s}_ids"] = np.fromiter((w for q in seqs for w in q), dtype=np.int32)
            arrays[f"{s}_cuts"] = np.cumsum([len(q) for q in seqs])[:-1]
            arrays[f"{s}_y"] = y
        # two cells' processes may prepare it at once: each writes its own file, then
        # replaces the cache whole (the same bytes either way)
        tmp = cached.with_name(f"{cached.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(cached)
        return self._full

    def _build(self, reviews: Path, index: Path):
        try:
            ranks: dict[str, int] = json.loads(index.read_text())
        except (ValueError, OSError) as e:
            raise DataError(f"imdb: {index} is not a JSON word index ({e}); fetch it again "
                            f"with `convbench data fetch imdb`") from e
        texts = self._read_texts(reviews)
        rng = np.random.RandomState(SEED)
        out = {}
        for split in ("train", "test"):
            seqs, labels = [], []
            for label_name, label in (("pos", 1), ("neg", 0)):
                for _, text in sorted(texts[(split, label_name)]):
                    ids = [ranks[w] + INDEX_FROM if w in ranks else OOV for w in tokenize(text)]
                    seqs.append([START] + ids)
                    labels.append(label)
            order = np.arange(len(seqs))
            rng.shuffle(order)
            out[split] = ([seqs[i] for i in order], np.asarray(labels, dtype=np.int64)[order])
        return out

    def _read_texts(self, reviews: Path) -> dict[tuple[str, str], list[tuple[str, str]]]:
        texts: dict[tuple[str, str], list[tuple[str, str]]] = {
            (s, l): [] for s in ("train", "test") for l in ("pos", "neg")}
        if reviews.is_dir():
            for (s, l), items in texts.items():
                for p in (reviews / s / l).glob("*.txt"):
                    items.append((p.name, p.read_text(encoding="utf-8")))
        else:
            try:
                with tarfile.open(reviews, "r:*") as t:
                    for m in t:
                        hit = _MEMBER.search(m.name)
                        if hit and m.isfile():
                            text = t.extractfile(m).read().decode("utf-8")
                            texts[(hit[1], hit[2])].append((hit[3], text))
            except (tarfile.TarError, OSError, EOFError) as e:
                raise DataError(f"imdb: {reviews} is not a readable tarball ({e}); fetch it "
                                f"again with `convbench data fetch imdb`") from e
        empty = [f"{s}/{l}" for (s, l), items in texts.items() if not items]
        if empty:
            raise DataError(f"imdb: no reviews in {', '.join(empty)} of {reviews}. "
                            f"Expected layout: {self.files}")
        return texts
