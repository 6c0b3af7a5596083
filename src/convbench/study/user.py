"""A user's own model in a study: what the file is and takes (`resolve`), and its cells
(`user_cells`, `UserCell`). `convbench assess` builds a one-entry spec and goes through here,
as `convbench run` does for a spec with `file:` entries: the two cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convbench.convert.base import Calibration
from convbench.records import Artifact, Category, CellKey, CellResult


@dataclass(frozen=True)
class UserModel:
    """A user's model file: its kind, framework, one sample's shape in the model's own
    layout and dtype, and where those came from (`shape_from`)."""

    path: str
    kind: str
    framework: str
    input_shape: tuple[int, ...]
    layout: str  # "nchw" | "nhwc" for images; "nchw" means as is for vectors and sequences
    dtype: str
    shape_from: str
    free_axes: tuple[int, ...] = ()  # axes of one sample the file leaves free (a sequence)

    @property
    def canonical_shape(self) -> tuple[int, ...]:
        """One sample as convbench's datasets hold it: images NCHW, others as they are."""
        s = self.input_shape
        return (s[2], s[0], s[1]) if self.layout == "nhwc" and len(s) == 3 else tuple(s)

    def artifact(self, **meta: Any) -> Artifact:
        if self.kind == "onnx":  # the source as written, before ONNX Runtime rewrites it
            meta["ort_optimization"] = "disable"
        return Artifact.from_path(self.framework, self.path, layout=self.layout,
                                  input_shape=list(self.input_shape), input_dtype=self.dtype,
                                  kind=self.kind, holds=f"user model file ({self.kind})",
                                  shape_from=self.shape_from, free_axes=list(self.free_axes),
                                  **meta)


def _layout(framework: str, shape: tuple[int, ...]) -> str:
    if len(shape) != 3:
        return "nchw"
    if framework == "keras":
        return "nhwc"
    if framework == "onnx" and shape[2] in (1, 3, 4) and shape[0] not in (1, 3, 4):
        return "nhwc"
    return "nchw"


def declared(path: str, kind: str, trust: bool, custom: str | None = None
             ) -> tuple[tuple[int | None, ...], str] | None:
    """One sample's shape (None for a free axis) and dtype as the file declares them."""
    from convbench.models import load

    if kind == "keras":
        config = load.keras_config(path, trust)
        name = (config or {}).get("class_name")
        if name not in (None, "Functional", "Sequential", "Model") and not custom:
            raise load.ModelLoadError(
                f"{path}: holds a model of your own class {name!r} (a subclassed model): pass "
                f"--custom-objects MODULE, a module or .py file where the class is registered "
                f"with @keras.saving.register_keras_serializable()")
        return _keras_declared(config)
    if kind == "h5":
        return _keras_declared(load.h5_config(path))
    if kind == "saved_model":
        load.require_trust(path, kind, trust)
        _, shape, dtype, _ = load.saved_model_signature(path)
        return tuple(shape[1:]), dtype
    if kind == "onnx":
        return _onnx_declared(path)
    if kind == "exported_program":
        return load.torch_declared_shape(path, trust)
    arch = load.architecture_of(path)
    if arch:
        return tuple(arch["input_shape"]), "int64" if arch.get("vocab") else "float32"
    return None


def _keras_declared(config: dict | None):
    try:
        layers = config.get("config", {}).get("layers", [])
        found = [layer["config"] for layer in layers if layer.get("class_name") == "InputLayer"]
        if not found and layers:  # a legacy Sequential: its first layer carries the shape
            found = [layers[0]["config"]]
    except (KeyError, TypeError, AttributeError):
        return None
    if len(found) != 1:
        return None
    shape = found[0].get("batch_shape") or found[0].get("batch_input_shape")
    if not shape:
        return None
    dtype = found[0].get("dtype") or "float32"
    if isinstance(dtype, dict):  # keras 3 DTypePolicy
        dtype = dtype.get("config", {}).get("name", "float32")
    return tuple(shape[1:]), str(dtype)


def _onnx_declared(path: str):
    import onnx

    from convbench.models.load import ModelLoadError

    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as e:
        raise ModelLoadError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})")
    inits = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1 or len(proto.graph.output) != 1:
        raise ModelLoadError(f"{path}: {len(inputs)} inputs and {len(proto.graph.output)} "
                             f"outputs; convbench compares one-input one-output classifiers")
    t = inputs[0].type.tensor_type
    if not t.HasField("shape"):  # rank unknown: the data or --input-shape says it
        return None
    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim[1:])
    return dims, onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name


def resolve(entry, source=None) -> UserModel:
    """What `entry` (a `UserModelEntry`) names, and the input it takes: `input_shape` as
    given, else as the file declares it, else as the data's rows are; each a clear error
    before any work when the file or the shape cannot be known."""
    from convbench.files import check_model_path
    from convbench.models.load import (
        ModelLoadError,
        framework_of,
        model_kind,
        require_trust,
    )

    path = Path(entry.file)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such model file")
    check_model_path(path, "model", entry.trust_model)  # before anything reads it
    kind = model_kind(path, entry.framework)
    framework = framework_of(kind)
    if entry.framework and entry.framework != framework:
        raise ModelLoadError(f"--framework {entry.framework}: {path} holds a {framework} model "
                             f"({kind.replace('_', ' ')})")
    require_trust(path, kind, entry.trust_model)
    got = declared(str(path), kind, entry.trust_model, entry.custom_objects)
    dtype = got[1] if got else None
    if entry.input_shape:
        shape, shape_from = tuple(int(v) for v in entry.input_shape), "--input-shape"
    elif got and None not in got[0]:
        shape, shape_from = tuple(got[0]), "the model file"
    else:
        shape, shape_from = _from_data(source, framework, entry.dataset), "the data"
        if shape is None and framework == "keras" and got is None:
            shape, dtype, shape_from = _built_keras(str(path), entry)
        if shape is None:
            free = f" (it declares {_dims(got[0])})" if got else ""
            raise ModelLoadError(f"{path}: the model does not declare its input shape{free} "
                                 f"and the data does not say it; give --input-shape, e.g. "
                                 f"3,224,224 (one sample, in the model's layout)")
        if got and len(got[0]) != len(shape):
            raise ModelLoadError(f"{path}: declares inputs of {_dims(got[0])}, the data's rows "
                                 f"are {_dims(shape)}; give --input-shape")
    if dtype is None:
        dtype = "int64" if _integer_data(source, entry.dataset, shape) else "float32"
    free = tuple(i for i, d in enumerate(got[0]) if d is None) \
        if got and len(got[0]) == len(shape) else ()
    return UserModel(str(path.resolve()), kind, framework, shape, _layout(framework, shape),
                     dtype, shape_from, free)


def _dims(shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


def _built_keras(path: str, entry):
    from convbench.models.load import load_keras

    model = load_keras(path, entry.trust_model, entry.custom_objects)
    try:
        first = model.inputs[0]
    except (AttributeError, IndexError, TypeError, ValueError):
        return None, None, ""
    dt = getattr(first.dtype, "name", first.dtype)
    dims = tuple(first.shape[1:])
    return (tuple(int(d) for d in dims), str(dt), "the loaded model") if None not in dims \
        else (None, None, "")


def _from_data(source, framework: str, dataset: str | None = None
               ) -> tuple[int, ...] | None:
    """One sample's shape in the model's layout as the data's rows say it (an .npz's x, a
    CSV's feature columns, a built-in dataset's samples); None for data that does not say
    (images, synthetic)."""
    if dataset is not None:
        from convbench.data import get_dataset

        shape = tuple(get_dataset(dataset).input_shape)
        return (shape[1], shape[2], shape[0]) if framework == "keras" and len(shape) == 3 \
            else shape
    if source is None:
        return None
    from convbench.data.user import channels_last, csv_header, label_of

    if source.kind == "csv":
        header = csv_header(source.path)
        return (len(header) - (label_of(header, source.label_column) in header),) \
            if header else None
    if source.kind == "npz":
        given = _npz_header(source.path)
        if given is None:
            return None
        rows = tuple(given[0][1:])
        if len(rows) != 3:
            return rows
        last = source.prep.layout == "nhwc" or (source.prep.layout is None and
                                                 channels_last(rows))
        if framework == "keras":
            return rows if last else (rows[1], rows[2], rows[0])
        return (rows[2], rows[0], rows[1]) if last else rows
    return None


def _npz_header(path: str):
    import zipfile

    from convbench.data.user import read_npy_header

    try:
        with zipfile.ZipFile(path) as z, z.open("x.npy") as m:
            shape, _, dtype = read_npy_header(m)
            return shape, dtype
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        return None  # preparing the data says what is wrong with it


def _integer_data(source, dataset: str | None, shape) -> bool:
    """Whether the data is token ids (a text dataset, an .npz of integer sequences)."""
    if dataset is not None:
        from convbench.data import get_dataset

        return get_dataset(dataset).kind == "text"
    if source is not None and source.kind == "npz":
        got = _npz_header(source.path)
        return got is not None and got[1].kind in "iu" and len(shape) == 1
    return False


def data_label(entry) -> str:
    """How the data is named in a cell's key: the dataset, the data's file name, or
    "synthetic"."""
    if entry.dataset:
        return entry.dataset
    return "synthetic" if entry.data.synthetic else Path(entry.data.path).name


def builtin_options(dataset: str, model: UserModel, n: int | None, data_dir,
                    memory: int | None) -> dict:
    """The options of a built-in dataset that give the model's input (digits are resized;
    the others must already match); refused before any data is resized when the inputs would
    not fit the memory cap."""
    from convbench.data import DataError, get_dataset
    from convbench.limits import check_fits

    ds = get_dataset(dataset, data_dir)
    shape = model.canonical_shape
    if ds.kind == "image":
        if len(shape) != 3:
            raise DataError(f"the model takes inputs of {_dims(model.input_shape)}, {dataset} "
                            f"holds images; give your own data with --data")
        c, h, w = shape
        if dataset == "digits":
            count = len(ds.arrays("test")[1])  # the whole split is resized, then subset
            check_fits(model.input_shape, count, 4, memory,
                       f"the {count} test digits resized to it")
            return {"size": h, "channels": c}
        if tuple(ds.input_shape) != (c, h, w):
            raise DataError(f"the model takes {c}x{h}x{w} images, {dataset} has "
                            f"{_dims(ds.input_shape)}; pick a dataset of that shape or give "
                            f"your own data with --data")
    elif ds.kind == "text":
        if len(shape) != 1:
            raise DataError(f"the model takes inputs of {_dims(model.input_shape)}, {dataset} "
                            f"holds token sequences")
        check_fits(model.input_shape, n or 25_000, 8, memory, f"{dataset} padded to it")
        return {"maxlen": shape[0]}
    return {}


@dataclass(frozen=True)
class UserCell:
    """One target of a user's model: converted and compared on a built-in dataset or the
    user's own data like a study's cell, and run by the same executors."""

    key: CellKey
    original: Artifact
    dataset: str | None
    data_options: dict[str, Any]
    source: dict[str, Any] | None
    n_test: int | None
    convert_options: dict[str, Any]
    measures: Any
    threads: int | None = None
    data_dir: str | None = None
    runtime_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    attacks: list[dict[str, Any]] = field(default_factory=list)
    attack_n: int | None = 1000

    @property
    def builtin_dataset(self) -> str | None:
        return self.dataset

    def inputs(self):
        return self.load_data()[0]

    def files(self) -> list[str]:
        return [self.original.path]

    def load_data(self):
        """(x, y, number of classes or None, vocabulary or None, what preparing found); x is
        read on demand for a user's data. Raises `DataError` when the data cannot be read or
        does not fit the model."""
        if self.source is None:
            from convbench.data import get_dataset

            ds = get_dataset(self.dataset, self.data_dir, **self.data_options)
            x, y, _ = ds.arrays("test", self.n_test)
            return x, y, ds.num_classes, getattr(ds, "vocabulary", lambda: None)(), {}
        data = self._prepared().subset(self.n_test)
        return data.x, data.y, None, None, data.info

    def _prepared(self):
        """The user's whole data, prepared for the model (`UserData`)."""
        from convbench.data.user import DataSource, prepare, with_prep

        shape = tuple(self.original.meta["input_shape"])
        if self.original.meta.get("layout") == "nhwc" and len(shape) == 3:
            shape = (shape[2], shape[0], shape[1])
        source = DataSource.from_dict(self.source)
        dtype = self.original.meta.get("input_dtype", "float32")
        if source.prep.dtype is None:  # the inputs the model declares
            source = with_prep(source, dtype=dtype)
        return prepare(source, shape, dtype)

    def calibration(self, n: int) -> Calibration:
        """`n` sample inputs a quantising target calibrates on: the dataset's training split;
        from a user's data, rows other than the evaluated ones (those only when there are no
        others, and the record says so: calibrating on the test inputs flatters the result)."""
        if self.source is None:
            from convbench.data import get_dataset

            ds = get_dataset(self.dataset, self.data_dir, **self.data_options)
            return Calibration(ds.arrays("train", n)[0], "train", 0)
        full = self._prepared()
        evaluated = full.subset(self.n_test).x.index
        others = np.flatnonzero(~np.isin(full.x.index, evaluated))
        split = "rows not evaluated"
        if len(others) == 0:
            others, split = np.arange(len(full.x)), "the evaluated rows (the data has no others)"
        rows = full.x.subset(np.sort(np.random.default_rng(0).permutation(others)[:n]))
        return Calibration(np.asarray(rows[np.arange(len(rows))]), split, 0)

    def run(self, log: str | None = None) -> CellResult:
        from convbench.data import DataError
        from convbench.progress import step
        from convbench.study.cell import CellFailure, convert_and_compare, guarded

        def body(result: CellResult) -> None:
            result.artifacts["original"] = self.original  # named in failures from here on
            step("loading data")
            try:
                x, y, classes, vocab, info = self.load_data()
            except DataError as e:
                raise CellFailure(Category.DATA_ERROR, str(e)) from e
            if info:
                result.info["data"] = info
            step("running the original on the data")
            outputs = self._check_labels(x, y, classes)
            convert_and_compare(result, self.original, x, y, self.convert_options,
                                self.measures, self.threads, self.runtime_options, log,
                                self.calibration)
            if self.attacks:
                from convbench.attacks.protocol import attack_cell

                if y is None:  # no labels: attacks aim at the original's own labels
                    y = self._predict(x).argmax(1)
                    result.info["attack_labels"] = "the original's predictions (no labels)"
                attack_cell(result, self.original, result.artifacts["converted"], x, y,
                            self.attacks, self.attack_n, 0, classes or outputs, vocab,
                            self.threads, self.runtime_options)

        return guarded(self.key, body)

    def _runner_options(self) -> dict:
        from convbench.runtimes import default_runtime

        return self.runtime_options.get(default_runtime(self.original.format), {})

    def _predict(self, x) -> np.ndarray:
        from convbench.models import to_layout
        from convbench.runtimes import open_runner

        with open_runner(self.original, threads=self.threads, **self._runner_options()) as r:
            layout = "keras" if self.original.meta.get("layout") == "nhwc" else "torch"
            return r.infer_all(to_layout(x, layout))

    def _check_labels(self, x, y, classes: int | None) -> int:
        """The original's number of outputs; labels it cannot give are refused before any
        conversion."""
        from convbench.models.load import ModelLoadError
        from convbench.runtimes import RuntimeUnavailable
        from convbench.study.cell import CellFailure, CellSkipped

        try:
            outputs = self._predict(x[:1])
        except RuntimeUnavailable as e:
            raise CellSkipped(Category.UNAVAILABLE, str(e)) from e
        except (ModelLoadError, MemoryError, ImportError):
            raise
        except Exception as e:
            shape = "x".join(map(str, self.original.meta["input_shape"]))
            raise CellFailure(Category.DATA_ERROR,
                              f"the model fails on the data's inputs ({shape}, "
                              f"{self.original.meta.get('shape_from')} says so): "
                              f"{type(e).__name__}: {str(e)[:500]}; give the model's input "
                              f"shape with --input-shape, or data of that shape") from e
        if outputs.ndim != 2:
            raise CellFailure(Category.RUNTIME_MISMATCH,
                              f"the model gives outputs of shape {outputs.shape[1:]} per input; "
                              f"convbench compares classifiers (one score per class)")
        k = outputs.shape[1]
        if k == 1:
            raise CellFailure(Category.RUNTIME_MISMATCH,
                              "the model gives one output per input (a sigmoid?); convbench "
                              "compares classifiers by their class scores: end the model in "
                              "one output per class (two for a binary classifier)")
        if y is not None and len(y) and int(y.max()) >= k:
            raise CellFailure(Category.DATA_ERROR,
                              f"the data's labels go up to {int(y.max())}, the model gives "
                              f"{k} outputs (classes 0..{k - 1}); give labels as the model's "
                              f"class indices")
        return k


def user_cells(spec, entry, measures, n_test: int | None, data_dir: str | None,
               memory: int | None = None) -> list[UserCell]:
    """The cells of one `file:` entry of a spec: one per target format."""
    from convbench.convert import resolve_target
    from convbench.convert.base import find_converter
    from convbench.runtimes import default_runtime

    source = entry.data.source() if entry.data else None
    model = resolve(entry, source)
    meta = {"factory": entry.factory} if entry.factory else {}
    if entry.custom_objects:
        meta["custom_objects"] = entry.custom_objects
    code = [_code_digest(c) for c in (entry.factory, entry.custom_objects) if c]
    if code:
        meta["code"] = code
    original = model.artifact(**meta)
    data_options = (builtin_options(entry.dataset, model, n_test, data_dir, memory)
                    if entry.dataset else {})
    trust = {"trust_model": True} if entry.trust_model else {}
    runtime_options = {k: dict(v) for k, v in spec.runtime_options.items()}
    if trust:
        name = default_runtime(model.framework)
        runtime_options[name] = {**runtime_options.get(name, {}), **trust}
    cells = []
    for fmt in spec.formats:
        target = resolve_target(fmt)[0]
        try:
            find_converter(model.framework, target)
        except ValueError:
            raise ValueError(f"{entry.file}: no converter from {model.framework} to {target} "
                             f"({_why_none(model.framework, target)}); pick --to from "
                             f"{', '.join(_targets_from(model.framework))}") from None
        # a user's model takes the routes a user would try when the first fails
        options = {"fallbacks": True, **spec.convert.get(fmt, {}), **trust,
                   **({"factory": entry.factory} if entry.factory else {}),
                   **({"custom_objects": entry.custom_objects} if entry.custom_objects
                      else {})}
        source_dict = source.to_dict() if source else None
        digest = hashlib.sha256(json.dumps(
            [original.sha256, asdict(model), code, fmt, options, n_test, entry.dataset,
             data_options, source_dict,
             source.identity() if source else None, measures.digest(), spec.threads,
             runtime_options, spec.attacks, spec.attack_n],
            sort_keys=True, default=str).encode()).hexdigest()[:16]
        key = CellKey(model.framework, Path(entry.file).name, data_label(entry), fmt,
                      default_runtime(target), 0, digest)
        cells.append(UserCell(key, original, entry.dataset, data_options, source_dict, n_test,
                              options, measures, spec.threads, data_dir, runtime_options,
                              spec.attacks, spec.attack_n))
    return cells


def _code_digest(spec: str) -> str:
    """The factory's or custom objects' file content (an edit reruns the cells), else its
    name (an installed module)."""
    path = Path(spec.rpartition(":")[0] if ":" in spec else spec)
    if path.suffix == ".py" and path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return spec


def _why_none(framework: str, target: str) -> str:
    if framework == "onnx" and target == "coreml":
        return "coremltools 9 converts from PyTorch and TensorFlow only; its ONNX frontend " \
               "was removed"
    return "none is registered"


def _targets_from(framework: str) -> list[str]:
    from convbench.convert import CONVERTERS, TARGETS

    return [t for t, (fmt, _) in TARGETS.items() if f"{fmt}_from_{framework}" in CONVERTERS]
