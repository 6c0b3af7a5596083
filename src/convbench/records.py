"""Typed records that flow through convbench: batches, artifacts, outcomes, cell results."""

from __future__ import annotations

import hashlib
import os
import stat
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
    (a study killed mid-write must not leave a record that breaks its resumption), and so
    that processes writing it at once each replace it whole."""
    p = Path(path)
    tmp = p.with_name(f"{p.name}.{os.getpid()}.tmp")  # processes writing the same file race
    tmp.write_text(text)
    tmp.replace(p)


def sha256_path(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a directory's entries (relative names and bytes, sorted; a link
    inside it counts by where it points, never followed; special files are refused)."""
    from convbench.files import model_path, walk

    p = model_path(path)
    h = hashlib.sha256()
    if not p.is_dir():
        _hash_file(p, h)
        return h.hexdigest()
    for f, st in walk(p):
        if stat.S_ISDIR(st.st_mode):
            continue
        h.update(str(f.relative_to(p)).encode() + b"\0")
        if stat.S_ISLNK(st.st_mode):
            h.update(b"->" + os.readlink(f).encode())
        elif stat.S_ISREG(st.st_mode):
            _hash_file(f, h)
        else:
            from convbench.files import UnsafeFileError

            raise UnsafeFileError(f"{f}: not a regular file inside the model; never read")
    return h.hexdigest()


def _hash_file(f: Path, h) -> None:
    with open(f, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def size_path(path: str | os.PathLike) -> int:
    """Bytes of a file, or of the regular files under a directory (a Core ML package; links
    are not followed)."""
    from convbench.files import walk

    p = Path(path)
    if p.is_dir():
        return sum(st.st_size for _, st in walk(p) if stat.S_ISREG(st.st_mode))
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

    @property
    def label(self) -> str:
        """How a cell is named to people: "torch lenet5 digits -> onnx run 0"."""
        return f"{self.framework} {self.model} {self.dataset} -> {self.format} run {self.run}"


#: The fields that say which number a `Metric` is (all but its value, unit and noise mark).
METRIC_FIELDS = ("measure", "stat", "role", "batch_size", "attack", "direction", "sweep",
                 "sweep_value")


@dataclass(frozen=True)
class Metric:
    """One number a cell measured, and what it is.

    `measure` names the quantity (`accuracy`, `latency`, `misclassification`, ...), `stat` the
    statistic of it (`median`, `max`, ...; "" when the measure is one number), `role` the
    model it belongs to (`original`, `converted`; "" for a comparison of both), `batch_size`
    the batch it was timed at, `attack`/`direction` the attack and whether its inputs were
    crafted on the original (`forward`) or on the converted model (`reverse`), and `sweep`/
    `sweep_value` a point of the attack's sweep ("" / None at the attack's own setting).
    `noisy` marks a figure taken in conditions that make it untrustworthy (see
    `convbench.measures.latency`). Values are raw: seconds, bytes, rates in [0, 1].
    """

    measure: str
    value: float
    unit: str = ""
    stat: str = ""
    role: str = ""
    batch_size: int | None = None
    attack: str = ""
    direction: str = ""
    sweep: str = ""
    sweep_value: float | None = None
    noisy: bool = False

    def __post_init__(self) -> None:  # numpy scalars in, plain Python numbers stored
        # SQLite and JSON keep NaN as NULL / null: read back as the NaN it was
        object.__setattr__(self, "value", float("nan") if self.value is None
                           else float(self.value))
        if self.batch_size is not None:
            object.__setattr__(self, "batch_size", int(self.batch_size))
        if self.sweep_value is not None:
            object.__setattr__(self, "sweep_value", float(self.sweep_value))
        object.__setattr__(self, "noisy", bool(self.noisy))

    @property
    def key(self) -> tuple:
        return tuple(getattr(self, f) for f in METRIC_FIELDS)

    @property
    def label(self) -> str:
        """A readable name: `latency.median[converted, bs32]`, `misclassification[original,
        fgsm eps=0.1]`."""
        name = f"{self.measure}.{self.stat}" if self.stat else self.measure
        where = [self.role] if self.role else []
        if self.batch_size is not None:
            where.append(f"bs{self.batch_size}")
        if self.attack:
            where.append(self.attack + (" reverse" if self.direction == "reverse" else "")
                         + (f" {self.sweep}={self.sweep_value:g}" if self.sweep else ""))
        return f"{name}[{', '.join(where)}]" if where else name


class Metrics(list):
    """A cell's `Metric`s, queried by field (`find(measure="latency", role="original")`)."""

    def add(self, measure: str, value: float, unit: str = "", **fields: Any) -> Metric:
        m = Metric(measure, value, unit, **fields)
        self.put(m)
        return m

    def put(self, m: Metric) -> None:
        """Append `m`; one number per key (a second one would be ambiguous)."""
        if any(o.key == m.key for o in self):
            raise ValueError(f"metric {m.label} recorded twice")
        self.append(m)

    def extend(self, metrics) -> None:
        for m in metrics:
            self.put(m)

    def find(self, **fields: Any) -> list[Metric]:
        """Metrics whose given fields all equal the given values (the others free)."""
        bad = set(fields) - set(METRIC_FIELDS) - {"noisy", "unit"}
        if bad:
            raise TypeError(f"Metric has no field {sorted(bad)[0]!r}")
        return [m for m in self if all(getattr(m, k) == v for k, v in fields.items())]

    def one(self, measure: str, **fields: Any) -> Metric | None:
        """The metric with exactly these fields (unset ones at their defaults), if any."""
        want = Metric(measure, 0.0, **fields).key
        return next((m for m in self if m.key == want), None)

    def get(self, measure: str, default: float | None = None, **fields: Any) -> float | None:
        """The value of `one(measure, **fields)`, or `default` when there is none."""
        m = self.one(measure, **fields)
        return default if m is None else m.value


@dataclass(frozen=True)
class Outcome:
    """How one measure or attack of a cell went (`ok`, `failed`, `skipped`) and why: a cell
    keeps its other numbers when one of them fails."""

    kind: str  # "measure" or "attack"
    name: str  # "latency", "memory", "fgsm", ...
    status: Status
    message: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class CellResult:
    """Everything one cell produced; numbers are raw (seconds, bytes, rates in [0, 1])."""

    key: CellKey
    status: Status = Status.OK
    category: Category = Category.OK
    message: str = ""
    metrics: Metrics = field(default_factory=Metrics)
    info: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)

    def outcome(self, kind: str, name: str) -> Outcome | None:
        return next((o for o in self.outcomes if o.kind == kind and o.name == name), None)


@dataclass
class StoredCell(CellResult):
    """A cell as the store holds it: its result, the study it belongs to, the environment it
    ran in and how many times it was started."""

    study: str = ""
    env_id: str | None = None
    attempts: int = 1

    @property
    def id(self) -> str:
        return self.key.id

    @property
    def name(self) -> str:
        return self.key.label
