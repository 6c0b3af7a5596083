"""Typed records that flow through convbench: batches, artifacts, outcomes, cell results."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Batch:
    """Model inputs `x`, labels `y` and stable sample ids (indices into the source split)."""

    x: np.ndarray
    y: np.ndarray
    ids: np.ndarray


class Status(str, Enum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class Category(str, Enum):
    """Why a cell did not finish normally (or `ok`)."""

    OK = "ok"
    MODEL_LOAD_ERROR = "model_load_error"  # the original file cannot be (safely) loaded
    CONVERTER_CRASH = "converter_crash"
    UNSUPPORTED_OPERATOR = "unsupported_operator"
    INVALID_MODEL = "invalid_model"
    RUNTIME_MISMATCH = "runtime_mismatch"
    RUNTIME_ERROR = "runtime_error"
    TRAINING_ERROR = "training_error"
    DATA_ERROR = "data_error"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    CRASH = "crash"  # the cell's process died (a signal, a native fault)
    INTERNAL_ERROR = "internal_error"


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file so that a reader sees the old file or the new one, never half of one
    (a study killed mid-write must not leave a record that breaks its resumption)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(p)


def sha256_path(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a directory's files (relative names and bytes, sorted)."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def size_path(path: str | os.PathLike) -> int:
    """Bytes of a file, or of all files under a directory (a Core ML package)."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


@dataclass(frozen=True)
class Artifact:
    """One model file, original or converted, identified by its content hash.

    `meta` says what the file holds (architecture, weights, optimizer state), its input layout
    and shape, and how it was made.
    """

    format: str
    path: str
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_path(cls, format: str, path: str | os.PathLike, **meta: Any) -> "Artifact":
        return cls(format, str(path), sha256_path(path), dict(meta))

    @property
    def size_bytes(self) -> int:
        return size_path(self.path)


@dataclass(frozen=True)
class CellKey:
    """Identifies one cell of a study: what is converted, to what, run where, which run."""

    framework: str
    model: str
    dataset: str
    format: str
    runtime: str
    run: int = 0
    config_hash: str = ""

    @property
    def id(self) -> str:
        raw = "|".join(str(v) for v in (self.framework, self.model, self.dataset, self.format,
                                         self.runtime, self.run, self.config_hash))
        return hashlib.sha256(raw.encode()).hexdigest()[:20]


@dataclass
class CellResult:
    """Everything one cell produced; numbers are raw (seconds, bytes, rates in [0, 1])."""

    key: CellKey
    status: Status = Status.OK
    category: Category = Category.OK
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
