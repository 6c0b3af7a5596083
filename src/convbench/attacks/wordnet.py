"""Synonyms from the WordNet 3.0 database files (Debian's `wordnet-base` package).

Reads `index.<pos>` for each word's synsets and `data.<pos>` for the words of each synset;
only single-word lemmas count. No nltk needed.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from convbench.attacks.base import AttackError

POS = ("noun", "verb", "adj", "adv")
SEARCH = ("/usr/share/wordnet",)


def wordnet_dir() -> Path:
    for d in filter(None, (os.environ.get("CONVBENCH_WORDNET"), *SEARCH)):
        if (Path(d) / "index.noun").exists():
            return Path(d)
    raise AttackError("the genetic attack needs the WordNet 3.0 database: `apt-get install "
                      "wordnet-base` on Debian/Ubuntu, or set CONVBENCH_WORDNET=DIR to a folder "
                      "holding its index.* and data.* files")


def _offsets(path: Path, wanted: set[str]) -> dict[str, list[int]]:
    """word -> synset offsets, for the words in `wanted`."""
    out: dict[str, list[int]] = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            if line.startswith(" "):  # licence header
                continue
            parts = line.split()
            if parts[0] not in wanted:
                continue
            n_synsets, n_pointers = int(parts[2]), int(parts[3])
            out[parts[0]] = [int(o) for o in parts[6 + n_pointers:6 + n_pointers + n_synsets]]
    return out


def _synset_words(data, offset: int) -> list[str]:
    data.seek(offset)
    parts = data.readline().split()
    count = int(parts[3], 16)
    words = [re.sub(r"\(.*\)$", "", parts[4 + 2 * i]).lower() for i in range(count)]
    return [w for w in words if w.isalpha()]


@lru_cache(maxsize=4)
def synonyms(words: frozenset[str]) -> dict[str, frozenset[str]]:
    """For each word of `words`: its WordNet synonyms that are themselves in `words`."""
    root = wordnet_dir()
    out: dict[str, set[str]] = {}
    for pos in POS:
        index = _offsets(root / f"index.{pos}", set(words))
        with open(root / f"data.{pos}", encoding="latin-1") as data:
            for word, offsets in index.items():
                for off in offsets:
                    same = {w for w in _synset_words(data, off) if w in words and w != word}
                    out.setdefault(word, set()).update(same)
    return {w: frozenset(s) for w, s in out.items() if s}
