"""Users' own data: an `.npz` of arrays, a folder of images in class subfolders, a CSV of
features, or synthetic inputs.

Each is prepared once into a row file (`prepare`), streamed in chunks, and read back by
`Rows` a batch at a time, so memory is bounded by a batch, never by the data: a folder of
10,000 224x224 images is never held whole. Rows are stored as given (images as decoded
uint8) and preprocessed as they are read (`Prep`: scale, per-channel mean and std, dtype).
Images are stored NCHW, the layout convbench's datasets use; `Rows.in_layout("nhwc")` gives
them to a Keras model.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from convbench.data.base import DataError, cache_dir

CHUNK_BYTES = 32 << 20  # rows prepared or read at once: about 32 MiB of them
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm",
                  ".pgm"}
LABEL_COLUMNS = ("label", "target", "class", "y")


@dataclass(frozen=True)
class Prep:
    """How stored values become the model's inputs: `x * scale`, minus `mean`, over `std`
    (per channel for images), cast to `dtype`. `layout` says how the given arrays are laid out
    ("nchw" | "nhwc"; None: read from their shape). `scale` None: 1/255 for 8-bit values
    (image files, uint8 arrays), 1 otherwise."""

    scale: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: str | None = None
    dtype: str | None = None

    def __post_init__(self):
        if self.layout not in (None, "nchw", "nhwc"):
            raise ValueError(f"layout must be nchw or nhwc, got {self.layout!r}")
        if self.std is not None and any(s == 0 for s in self.std):
            raise ValueError("std must not be 0")


@dataclass(frozen=True)
class DataSource:
    """Where a user's data comes from: `kind` "npz" | "images" | "csv" | "synthetic"."""

    kind: str
    path: str | None = None
    count: int | None = None  # synthetic inputs
    low: float = 0.0  # synthetic range [low, high)
    high: float = 1.0
    label_column: str | None = None  # csv
    prep: Prep = field(default_factory=Prep)
    seed: int = 0

    @classmethod
    def from_path(cls, path: str | os.PathLike, **kw: Any) -> "DataSource":
        """The source a path names: an `.npz`, a `.csv`, or a folder of images."""
        p = Path(path)
        if not p.exists():
            raise DataError(f"--data {p}: no such file or folder")
        if p.is_dir():
            return cls("images", str(p.resolve()), **kw)
        kind = {".npz": "npz", ".csv": "csv"}.get(p.suffix.lower())
        if kind is None:
            raise DataError(f"--data {p}: unknown kind of data file {p.suffix or '(no suffix)'!r}"
                            f"; give an .npz (arrays x and optional y), a .csv (features and a "
                            f"label column) or a folder of images in class subfolders")
        return cls(kind, str(p.resolve()), **kw)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["prep"] = {k: v for k, v in out["prep"].items() if v is not None}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataSource":
        prep = {k: tuple(v) if isinstance(v, list) else v for k, v in d.get("prep", {}).items()}
        return cls(**{**d, "prep": Prep(**prep)})

    def identity(self) -> list:
        """What the prepared rows depend on: the source's files (names, sizes, times)."""
        if self.path is None:
            return []
        p = Path(self.path)
        if p.is_dir():
            h = hashlib.sha256()
            for f in _image_files(p):
                st = f.stat()
                h.update(f"{f.relative_to(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            return [str(p), h.hexdigest()]
        st = p.stat()
        return [str(p), st.st_size, st.st_mtime_ns]


class Rows:
    """Rows of a prepared row file, read on demand (`x[i:j]`, `x[indices]`) and preprocessed
    as read. Quacks like the arrays the measures take: `len`, `shape`, `dtype`, `ndim`."""

    def __init__(self, path: str | Path, stored: str, row_shape: tuple[int, ...], count: int,
                 prep: Prep, index: np.ndarray | None = None, layout: str = "nchw") -> None:
        self.path, self.stored, self.row_shape = Path(path), np.dtype(stored), tuple(row_shape)
        self.count, self.prep, self.layout = count, prep, layout
        self.index = np.arange(count) if index is None else np.asarray(index)
        self._row_bytes = int(np.prod(self.row_shape)) * self.stored.itemsize
        self.dtype = np.dtype(prep.dtype or ("int64" if self.stored.kind in "iu"
                                             and prep.scale is None and not _image(self)
                                             else "float32"))

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        s = self.row_shape
        if self.layout == "nhwc" and len(s) == 3:
            s = (s[1], s[2], s[0])
        return (len(self), *s)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def subset(self, index: np.ndarray) -> "Rows":
        return Rows(self.path, self.stored.str, self.row_shape, self.count, self.prep,
                    self.index[index], self.layout)

    def in_layout(self, layout: str) -> "Rows":
        out = self.subset(np.arange(len(self)))
        out.layout = layout
        return out

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        wanted = self.index[key]
        out = np.empty((len(wanted), *self.row_shape), self.stored)
        with open(self.path, "rb") as f:
            fd = f.fileno()
            i = 0
            while i < len(wanted):  # contiguous runs in one read each
                j = i + 1
                while j < len(wanted) and wanted[j] == wanted[j - 1] + 1:
                    j += 1
                buf = os.pread(fd, (j - i) * self._row_bytes, int(wanted[i]) * self._row_bytes)
                out[i:j] = np.frombuffer(buf, self.stored).reshape(j - i, *self.row_shape)
                i = j
        x = self._prepped(out)
        if self.layout == "nhwc" and x.ndim == 4:
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        return x

    def _prepped(self, raw: np.ndarray) -> np.ndarray:
        p = self.prep
        if self.dtype.kind in "iu":
            return raw.astype(self.dtype)
        x = raw.astype(np.float32)
        if p.scale is None and self.stored == np.uint8:
            x /= np.float32(255)  # 8-bit values to [0, 1], as x / 255 in a user's pipeline
        elif p.scale is not None and p.scale != 1.0:
            x *= np.float32(p.scale)
        channel = (slice(None), None, None) if raw.ndim == 4 else slice(None)  # per channel
        if p.mean is not None:
            x -= np.asarray(p.mean, np.float32)[channel]
        if p.std is not None:
            x /= np.asarray(p.std, np.float32)[channel]
        return x.astype(self.dtype, copy=False)

    def __array__(self, dtype=None, copy=None):  # a whole copy: only for small data
        x = self[:]
        return x if dtype is None else x.astype(dtype)

    def batches(self, size: int) -> Iterator[np.ndarray]:
        for i in range(0, len(self), size):
            yield self[i:i + size]


def _image(rows: Rows) -> bool:
    return len(rows.row_shape) == 3


@dataclass
class UserData:
    """Prepared data: inputs `x` (read on demand), labels `y` (None: none given), and what
    preparing it found (`info`: rows, skipped files, class names, the layout read)."""

    x: Rows
    y: np.ndarray | None
    info: dict[str, Any]

    def subset(self, n: int | None, seed: int = 0) -> "UserData":
        """A seeded subset of `n` rows, stratified by label when there are labels."""
        from convbench.data.base import stratified_subset

        if n is None or n >= len(self.x):
            return self
        ids = (stratified_subset(self.y, n, seed) if self.y is not None
               else np.sort(np.random.default_rng(seed).choice(len(self.x), n, replace=False)))
        return UserData(self.x.subset(ids), None if self.y is None else self.y[ids],
                        {**self.info, "subset": n})


def prepare(source: DataSource, shape: tuple[int, ...] | None, kind_hint: str = "float32",
            root: Path | None = None) -> UserData:
    """Prepare `source` for a model whose one input sample is `shape` in NCHW (images) or
    as is (vectors, token ids); None: the data's own shape decides. Prepared rows are kept
    in convbench's cache, keyed by the source's files and what shapes the stored rows (not
    scale, mean or std, applied as rows are read), and reused; processes preparing the same
    data wait for one another."""
    import fcntl

    from convbench.records import write_atomic

    stored = {**source.to_dict(), "prep": {"layout": source.prep.layout}}
    key = hashlib.sha256(json.dumps([stored, source.identity(), shape, kind_hint],
                                    sort_keys=True, default=str).encode()).hexdigest()[:16]
    out = (root or cache_dir() / "data") / key
    done = out / "rows.json"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            tmp = out / f"x.{os.getpid()}.part"
            try:
                with open(tmp, "wb") as f:
                    info, y = PREPARE[source.kind](source, shape, kind_hint, f)
                if info["rows"] == 0:
                    raise DataError(f"--data {source.path}: no rows")
                os.replace(tmp, out / "x.rows")
            finally:
                tmp.unlink(missing_ok=True)
            if y is not None:
                np.save(out / "y.npy", y)
            write_atomic(done, json.dumps(info))
    info = json.loads(done.read_text())
    row_shape = tuple(info["row_shape"])
    per = row_shape[0] if len(row_shape) == 3 else row_shape[-1]  # channels, or features
    for name in ("mean", "std"):
        values = getattr(source.prep, name)
        if values is not None and len(values) not in (1, per):
            raise DataError(f"--{name}: {len(values)} values for data of {per} "
                            f"{'channels' if len(row_shape) == 3 else 'features'}; give 1 or "
                            f"{per}")
    x = Rows(out / "x.rows", info["stored"], row_shape, info["rows"], source.prep)
    y = np.load(out / "y.npy") if (out / "y.npy").exists() else None
    return UserData(x, y, info)


def _chunk_rows(row_shape, itemsize: int) -> int:
    return max(1, CHUNK_BYTES // max(1, int(np.prod(row_shape)) * itemsize))


def channels_last(rows: tuple[int, ...]) -> bool:
    """Whether image rows of this shape look channels-last (HxWxC) rather than CxHxW."""
    return rows[2] in (1, 3, 4) and rows[0] not in (1, 3, 4)


def read_npy_header(m) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, Fortran order, dtype) from an open .npy stream, leaving it at the data."""
    version = np.lib.format.read_magic(m)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    return read(m)


def label_of(header: list[str], given: str | None) -> str | None:
    """A CSV's label column: the one given, else the first named like a label."""
    if given is not None:
        return given
    return next((h for h in header if h.strip().lower() in LABEL_COLUMNS), None)


def csv_header(path: str | os.PathLike) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as f:  # (a BOM from Excel dropped)
        return [h.strip() for h in next(csv.reader(f), [])]


def _canonical(given: tuple[int, ...], shape: tuple[int, ...] | None, layout: str | None,
               what: str) -> tuple[str, tuple[int, ...]]:
    """The layout of `given` rows and their NCHW shape, checked against the model's."""
    if len(given) != 3:  # vectors, sequences
        if shape is not None and tuple(shape) != tuple(given):
            raise DataError(f"{what} holds rows of shape {_dims(given)}; the model takes "
                            f"{_dims(shape)}: reshape the data, or give --input-shape if the "
                            f"model's declared shape is wrong")
        return "nchw", tuple(given)
    nhwc = (given[2], given[0], given[1])
    if layout is None:
        if shape is None:
            layout = "nhwc" if channels_last(given) else "nchw"
        elif tuple(given) == tuple(shape):
            layout = "nchw"
        elif nhwc == tuple(shape):
            layout = "nhwc"
    canonical = nhwc if layout == "nhwc" else tuple(given)
    if shape is not None and canonical != tuple(shape):
        raise DataError(f"{what} holds images of {_dims(given)}; the model takes "
                        f"{_dims(shape)} (channels x height x width), or "
                        f"{_dims((shape[1], shape[2], shape[0]))} channels last: resize the "
                        f"arrays, or give a folder of image files (resized as read)")
    return layout or "nchw", canonical


def _dims(s) -> str:
    return "x".join(str(d) for d in s)


def _check_finite(chunk: np.ndarray, start: int, what: str) -> None:
    if chunk.dtype.kind == "f" and not np.isfinite(chunk).all():
        bad = np.flatnonzero(~np.isfinite(chunk.reshape(len(chunk), -1)).all(1))
        raise DataError(f"{what}: row {start + int(bad[0])} (and {len(bad) - 1} more in its "
                        f"chunk) holds NaN or Inf; clean the data first")


def _labels(y: np.ndarray, what: str) -> tuple[np.ndarray, list | None]:
    """Integer class labels from `y` (indices, one-hot, or class names), and the class names
    when they were names."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = y.argmax(1)
    y = y.reshape(-1)
    if y.dtype.kind in "US":
        values = [v.strip() for v in y.tolist()]
        if "" in values:
            raise DataError(f"{what}: label {values.index('') + 1} is empty; give every row "
                            f"a label, or drop the unlabelled rows")
        if all(_number(v) for v in values):  # class indices written as text
            y = np.array([float(v) for v in values])
        else:
            names = sorted(set(values))
            return np.searchsorted(names, values).astype(np.int64), names
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and np.all(y == np.round(y))):
        raise DataError(f"{what}: labels are not whole numbers (NaN, or a regression "
                        f"target?); convbench compares classifiers: give class indices 0..K-1")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise DataError(f"{what}: label {int(y.min())} is negative; give class indices 0..K-1")
    return y, None


def _npz(source: DataSource, shape, kind_hint, f) -> tuple[dict, np.ndarray | None]:
    what = f"--data {source.path}"
    try:
        z = zipfile.ZipFile(source.path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{what}: not a readable .npz ({e}); save it with "
                        f"np.savez(path, x=inputs, y=labels)") from e
    with z:
        names = {n.removesuffix(".npy") for n in z.namelist()}
        if "x" not in names:
            raise DataError(f"{what}: holds {sorted(names)}, no array 'x'; save it with "
                            f"np.savez(path, x=inputs, y=labels)")
        with z.open("x.npy") as m:
            given, fortran, dtype = read_npy_header(m)
            if dtype.hasobject or fortran:
                kind = "an object" if dtype.hasobject else "a Fortran-order"
                raise DataError(f"{what}: x is {kind} array; save a plain numeric C-order "
                                f"array")
            layout, row_shape = _canonical(tuple(given[1:]), shape, source.prep.layout,
                                           f"{what} (x)")
            chunk = _chunk_rows(given[1:], dtype.itemsize)
            for start in range(0, given[0], chunk):
                k = min(chunk, given[0] - start)
                want = k * int(np.prod(given[1:])) * dtype.itemsize
                buf = m.read(want)
                if len(buf) != want:
                    done = start + len(buf) // (want // k)
                    raise DataError(f"{what}: x ends after row {done} of {given[0]} (a "
                                    f"truncated file); save it again")
                rows = np.frombuffer(buf, dtype).reshape(k, *given[1:])
                if layout == "nhwc":
                    rows = rows.transpose(0, 3, 1, 2)
                _check_finite(rows, start, what)
                f.write(np.ascontiguousarray(rows).tobytes())
        y, classes = None, None
        if "y" in names:
            with z.open("y.npy") as m:
                y, classes = _labels(np.load(m, allow_pickle=False), what)
            if len(y) != given[0]:
                raise DataError(f"{what}: x has {given[0]} rows, y {len(y)} labels; they must "
                                f"match")
    return {"rows": int(given[0]), "row_shape": list(row_shape), "stored": dtype.str,
            "layout_given": layout, "classes": classes}, y


def _image_files(root: Path) -> list[Path]:
    """Image files under `root`, in path order; hidden entries and macOS archive debris
    (`__MACOSX`, `._name`) left out, so they make no class."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                  and p.is_file() and not any(part.startswith((".", "__MACOSX"))
                                              for part in p.relative_to(root).parts))


def _images(source: DataSource, shape, kind_hint, f) -> tuple[dict, np.ndarray | None]:
    from PIL import Image, UnidentifiedImageError

    root = Path(source.path)
    what = f"--data {root}"
    if shape is None or len(shape) != 3:
        raise DataError(f"{what}: a folder of images needs the model's input size; the model "
                        f"does not declare one: give --input-shape C,H,W (e.g. 3,224,224)")
    c, h, w = shape
    if c not in (1, 3):
        raise DataError(f"{what}: the model takes {c}-channel images; image files give 1 "
                        f"(grey) or 3 (RGB)")
    files = _image_files(root)
    if not files:
        raise DataError(f"{what}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    loose = [p for p in files if p.parent == root]
    # classes: the subfolders that hold images (an empty or junk folder is no class)
    classes = sorted({p.relative_to(root).parts[0] for p in files if p.parent != root})
    labels = None
    if classes:
        if loose:
            raise DataError(f"{what}: {len(loose)} image(s) beside class subfolders (e.g. "
                            f"{loose[0].name}); put every image in its class folder, or none "
                            f"in folders (unlabelled)")
        index = {name: i for i, name in enumerate(classes)}
        labels = [index[p.relative_to(root).parts[0]] for p in files]
    chunk = _chunk_rows(shape, 1)
    kept, skipped, rows = [], [], []
    for i, p in enumerate(files):
        try:
            with Image.open(p) as im:
                if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                    raise DataError(f"{what}: {p.relative_to(root)} has {im.mode} pixels (16-bit "
                                    f"or float); convbench reads 8-bit images: save the data "
                                    f"as an .npz of arrays scaled as the model expects")
                im = im.convert("L" if c == 1 else "RGB")
                if im.size != (w, h):
                    im = im.resize((w, h), Image.Resampling.BILINEAR)
                a = np.asarray(im, np.uint8)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            skipped.append(f"{p.relative_to(root)}: {type(e).__name__}")
            continue
        rows.append(a[None] if c == 1 else a.transpose(2, 0, 1))
        kept.append(i)
        if len(rows) == chunk:
            f.write(np.stack(rows).tobytes())
            rows = []
    if rows:
        f.write(np.stack(rows).tobytes())
    if not kept:
        raise DataError(f"{what}: none of its {len(files)} image files could be read "
                        f"(first: {skipped[0]})")
    y = None if labels is None else np.asarray(labels, np.int64)[kept]
    return {"rows": len(kept), "row_shape": [c, h, w], "stored": "|u1", "classes": classes
            or None, "skipped": len(skipped), "skipped_files": skipped[:20]}, y


def _csv(source: DataSource, shape, kind_hint, f) -> tuple[dict, np.ndarray | None]:
    what = f"--data {source.path}"
    with open(source.path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise DataError(f"{what}: empty; give a header row naming the columns")
        header = [h.strip() for h in header]
        label = label_of(header, source.label_column)
        if label is not None and label not in header:
            raise DataError(f"{what}: no column {label!r}; its columns: {', '.join(header)}")
        li = header.index(label) if label is not None else None
        features = len(header) - (li is not None)
        if shape is not None and tuple(shape) != (features,):
            raise DataError(f"{what}: {features} feature columns; the model takes "
                            f"{_dims(shape)} inputs: drop or add columns to match"
                            + (f" (the label column is {label!r})" if label else ""))
        labels, chunk, n = [], [], 0
        per_chunk = _chunk_rows((features,), 64)  # Python floats: ~64 bytes a value
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(f"{what}: line {line} has {len(row)} fields, the header "
                                f"{len(header)}")
            if li is not None:
                labels.append(row.pop(li).strip())
            try:
                chunk.append([float(v) for v in row])
            except ValueError:
                bad = next(v for v in row if not _number(v))
                raise DataError(f"{what}: line {line}: {bad!r} is not a number; encode "
                                f"categorical features as numbers first") from None
            if len(chunk) == per_chunk:
                n += _write_floats(f, chunk, n, what)
                chunk = []
        n += _write_floats(f, chunk, n, what)
    if n == 0:
        raise DataError(f"{what}: no data rows")
    y, classes = None, None
    if labels:
        y, classes = _labels(np.array(labels), what)
    return {"rows": n, "row_shape": [features], "stored": "<f4", "classes": classes,
            "label_column": label}, y


def _number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _write_floats(f, rows: list, start: int, what: str) -> int:
    if not rows:
        return 0
    a = np.asarray(rows, np.float32)
    _check_finite(a, start, what)
    f.write(a.tobytes())
    return len(a)


def _synthetic(source: DataSource, shape, kind_hint, f) -> tuple[dict, None]:
    if shape is None:
        raise DataError("--synthetic: the model does not declare its input shape; give "
                        "--input-shape (e.g. 3,224,224, or 200 for a sequence of token ids)")
    if not source.count or source.count < 1:
        raise DataError("--synthetic N: N must be a positive number of inputs")
    rng = np.random.default_rng(source.seed)
    ints = np.dtype(kind_hint).kind in "iu"
    if ints and int(source.high) - int(source.low) < 2:
        raise DataError("--synthetic: the model takes token ids; give their range with "
                        "--synthetic-range LOW,HIGH (e.g. 1,1000 for a vocabulary of 1000)")
    dtype = np.dtype("int64" if ints else "float32")
    chunk = _chunk_rows(shape, dtype.itemsize)
    for start in range(0, source.count, chunk):
        k = min(chunk, source.count - start)
        a = (rng.integers(int(source.low), int(source.high), (k, *shape)) if ints
             else rng.uniform(source.low, source.high, (k, *shape)).astype(np.float32))
        f.write(a.astype(dtype).tobytes())
    return {"rows": source.count, "row_shape": list(shape), "stored": dtype.str,
            "classes": None, "range": [source.low, source.high]}, None


PREPARE = {"npz": _npz, "images": _images, "csv": _csv, "synthetic": _synthetic}


def with_prep(source: DataSource, **changes: Any) -> DataSource:
    return replace(source, prep=replace(source.prep, **changes))
