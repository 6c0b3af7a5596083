"""Loading original models from disk, safely: no pickled code runs, no Lambda layer loads, no
file is read before `convbench.files` has checked what it names and declares.

A process loads each model file once: the converter, the runner and the attacks of a cell share
the loaded model (`_shared`; keyed by the file's identity and the loading options).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable


class ModelLoadError(RuntimeError):
    """A model file cannot be loaded; the message says what to do."""


def _first_line(e: BaseException) -> str:
    """The first line of an exception's text, without terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _import(target: str):
    """The module a name ("package.module") or a path ("path/to/file.py") gives, imported."""
    if target.endswith(".py"):
        loaded = importlib.util.spec_from_file_location(Path(target).stem, target)
        if loaded is None or not Path(target).exists():
            raise FileNotFoundError(target)
        module = importlib.util.module_from_spec(loaded)
        loaded.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def load_factory(spec: str):
    """Resolve "package.module:function" or "path/to/file.py:function" to the function."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ModelLoadError(f"--factory {spec!r}: expected MODULE:FUNCTION or FILE.py:FUNCTION")
    try:
        return getattr(_import(target), attr)
    except (ImportError, FileNotFoundError, AttributeError) as e:
        raise ModelLoadError(f"--factory {spec!r}: cannot import it ({e}); give an importable "
                             f"module or a .py file, and a function that returns the nn.Module")


def architecture_of(path: str | Path) -> dict[str, Any] | None:
    side = Path(str(path) + ".arch.json")
    return json.loads(side.read_text()) if side.exists() else None


_LOADED: OrderedDict = OrderedDict()
_KEEP = 2  # models kept loaded per process: a cell needs its original, and a twin at most


def _shared(kind: str, path: str | Path, options: Any, load: Callable[[], Any],
            trust: bool = False):
    """The model `load()` returns, once its file has passed `check_model_path`; loaded once
    per process for this file (same path, size and modification time) and these options."""
    from convbench.files import check_model_path

    check_model_path(path, kind, trust)
    st = Path(path).stat()
    key = (kind, str(Path(path).resolve()), st.st_size, st.st_mtime_ns,
           json.dumps(options, sort_keys=True, default=str))
    if key in _LOADED:
        _LOADED.move_to_end(key)
        return _LOADED[key]
    model = load()
    _LOADED[key] = model
    while len(_LOADED) > _KEEP:
        _LOADED.popitem(last=False)
    return model


def forget_loaded() -> None:
    """Drop the models this process keeps loaded (a new cell starts)."""
    _LOADED.clear()


TORCH_KINDS = ("state_dict", "torchscript", "exported_program")
#: Model files that carry code run when they load (TorchScript, pickled objects, TensorFlow
#: graphs with file ops): loaded only when the user trusts them (`--trust-model`).
CARRIES_CODE = {"torchscript": "TorchScript code", "exported_program":
                "pickled objects (torch.export.load falls back to full pickle)",
                "saved_model": "a TensorFlow graph (its ops may read and write files)"}


def model_kind(path: str | Path, framework: str | None = None) -> str:
    """What a model file holds: "state_dict", "torchscript", "exported_program", "keras",
    "h5", "saved_model" or "onnx" (read from its name and, for PyTorch's zip archives, their
    listing once `convbench.files` has checked the archive; nothing is run)."""
    import zipfile

    from convbench.files import check_zip, model_path

    p = model_path(path)  # special and system files refused before anything reads them
    if p.is_dir():
        if (p / "saved_model.pb").exists():
            return "saved_model"
        raise ModelLoadError(f"{path}: a folder but not a TensorFlow SavedModel (no "
                             f"saved_model.pb); give a model file or a SavedModel folder")
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".keras":
        return "keras"
    if suffix in (".h5", ".hdf5"):
        return "h5"
    if suffix in (".pt", ".pth", ".ts", ".pt2", ".bin") or framework == "torch":
        check_zip(p)  # the archive's end record and directory, before it is listed
        try:
            with zipfile.ZipFile(p) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            return "state_dict"  # torch's legacy format, or not PyTorch: torch.load says
        if suffix == ".pt2" or any(n.endswith("serialized_exported_program.json")
                                   or "/models/" in n for n in names):
            return "exported_program"
        if any("/code/" in n for n in names):
            return "torchscript"
        return "state_dict"
    raise ModelLoadError(f"{path}: unknown kind of model file {suffix or '(no suffix)'!r}; "
                         f"convbench reads .pt/.pth (state_dict, TorchScript), .pt2 "
                         f"(ExportedProgram), .keras, .h5, a SavedModel folder and .onnx")


def framework_of(kind: str) -> str:
    """The framework that runs a model of `kind` as the original."""
    return {"onnx": "onnx", "keras": "keras", "h5": "keras",
            "saved_model": "keras"}.get(kind, "torch")


def require_trust(path: str | Path, kind: str, trust: bool) -> None:
    if kind in CARRIES_CODE and not trust:
        instead = ("save model.state_dict() and pass --factory" if kind != "saved_model" else
                   "save the Keras model with model.save('model.keras')")
        raise ModelLoadError(f"{path}: a {kind.replace('_', ' ')} carries "
                             f"{CARRIES_CODE[kind]}, run as it loads; pass --trust-model only "
                             f"if you trust its author (or {instead})")


def load_torch(path: str | Path, architecture: dict | None = None, factory: str | None = None,
               trust: bool = False):
    """A PyTorch model in eval mode: a state_dict rebuilt by the zoo or by `factory`, or (when
    trusted) a TorchScript module or an ExportedProgram's module."""
    return _shared("torch", path, [architecture, factory, trust],
                   lambda: _load_torch(path, architecture, factory, trust), trust)


def _load_torch(path: str | Path, architecture: dict | None, factory: str | None,
                trust: bool = False):
    import torch

    from convbench.models.spec import build

    kind = model_kind(path, "torch")
    if kind not in TORCH_KINDS:
        raise ModelLoadError(f"{path}: a {kind} file, not a PyTorch model")
    require_trust(path, kind, trust)
    if kind != "state_dict":
        try:
            if kind == "torchscript":
                return torch.jit.load(str(path), map_location="cpu").eval()
            return torch.export.load(str(path)).module()
        except Exception as e:
            raise ModelLoadError(f"{path}: not loadable as a {kind.replace('_', ' ')} "
                                 f"({type(e).__name__}: {_first_line(e)})") from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or unsafe files
        raise ModelLoadError(
            f"{path}: not loadable as a PyTorch state_dict with weights_only=True (convbench "
            f"never runs pickled code): save `model.state_dict()` with torch.save, or the "
            f"whole model with torch.jit.save or torch.export.save and pass --trust-model. "
            f"({type(e).__name__}: {_first_line(e)})") from e
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path}: holds a {type(state).__name__}, not a state_dict; save "
                             f"`model.state_dict()` and pass --factory MODULE:FUNCTION")
    if factory:
        model = load_factory(factory)()
    else:
        arch = architecture or architecture_of(path)
        if arch is None:
            raise ModelLoadError(f"{path}: a state_dict holds weights, not the model: pass "
                                 f"--factory MODULE:FUNCTION returning the nn.Module (or save "
                                 f"it with torch.jit.save / torch.export.save)")
        model = build("torch", arch["model"], arch["input_shape"], arch["num_classes"],
                      vocab=arch.get("vocab"), **arch.get("options", {}))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ModelLoadError(f"{path}: weights do not fit the architecture: "
                             f"{_first_line(e)}") from e
    return model.eval()


def torch_declared_shape(path: str | Path, trust: bool
                         ) -> tuple[tuple[int | None, ...], str] | None:
    """One sample's shape (None for an axis exported dynamic) and dtype as an ExportedProgram
    declares it (its first input); None for files that do not declare one."""
    if model_kind(path, "torch") != "exported_program":
        return None
    module = load_torch(path, trust=trust)
    for node in module.graph.nodes:
        if node.op == "placeholder":
            val = node.meta.get("val")
            if val is None:
                return None
            dims = [d if isinstance(d, int) else None for d in val.shape[1:]]
            dtype = str(val.dtype).removeprefix("torch.")
            return tuple(dims), dtype
    return None


def load_keras(path: str | Path, trust: bool = False, custom: str | None = None):
    """A Keras model from a `.keras` file (in safe mode unless the user trusts it), a legacy
    `.h5` file (refused when it holds a Lambda layer, unless trusted) or, when trusted, a
    TensorFlow SavedModel folder (wrapped as a Keras model). `custom`: a module or .py file of
    the user's registered layer classes, imported first."""
    return _shared("keras", path, {"trust": trust, "custom": custom},
                   lambda: _load_keras(path, trust, custom), trust)


def import_custom(spec: str | None) -> None:
    """Import the user's module of registered Keras classes (subclassed models, layers)."""
    if not spec:
        return
    try:
        _import(spec)
    except (ImportError, FileNotFoundError) as e:
        raise ModelLoadError(f"--custom-objects {spec!r}: cannot import it ({e}); give an "
                             f"importable module or a .py file") from e


def _load_keras(path: str | Path, trust: bool, custom: str | None = None):
    import keras

    kind = model_kind(path, "keras")
    if framework_of(kind) != "keras":
        raise ModelLoadError(f"{path}: a {kind.replace('_', ' ')} file, not a Keras model")
    import_custom(custom)
    if kind == "saved_model":
        require_trust(path, kind, trust)
        return _saved_model_as_keras(path)
    if kind == "h5":
        config = h5_config(path)
        if config is not None and not trust and _holds_lambda(config):
            raise ModelLoadError(f"{path}: holds a Lambda layer (marshalled Python code); pass "
                                 f"--trust-model only if you trust its author")
    try:
        options = {} if kind == "h5" else {"safe_mode": not trust}
        return keras.saving.load_model(path, compile=False, **options)
    except Exception as e:  # keras raises ValueError, OSError, zipfile errors...
        msg = _first_line(e)
        hint = (" The model holds a Lambda layer (arbitrary code): pass --trust-model only if "
                "you trust its author." if "lambda" in msg.lower() else
                " A subclassed model or custom layer needs its class: pass --custom-objects "
                "MODULE (registered with keras.saving.register_keras_serializable)."
                if "unknown" in msg.lower() or "could not locate" in msg.lower() else
                " Save it with model.save('model.keras').")
        raise ModelLoadError(f"{path}: not a loadable Keras model ({msg}).{hint}") from e


def h5_config(path: str | Path) -> dict | None:
    """A legacy `.h5` model's architecture (its `model_config` attribute), read with h5py."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError as e:
        raise ModelLoadError(f"{path}: not a readable HDF5 file ({_first_line(e)})") from e
    if raw is None:
        return None
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def saved_model_signature(path: str | Path) -> tuple[str, list, str, str]:
    """(input name, shape with batch, dtype, output name) of a SavedModel's serving signature."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as e:  # TensorFlow raises many kinds for a partial or corrupt folder
        raise ModelLoadError(f"{path}: not a loadable SavedModel ({type(e).__name__}: "
                             f"{_first_line(e)}); export it again") from e
    fn = loaded.signatures.get("serving_default")
    if fn is None:
        raise ModelLoadError(f"{path}: a SavedModel without a serving_default signature; save "
                             f"it with tf.saved_model.save or model.export")
    args = fn.structured_input_signature[1]
    outs = fn.structured_outputs
    if len(args) != 1 or len(outs) != 1:
        raise ModelLoadError(f"{path}: its signature takes {len(args)} inputs and gives "
                             f"{len(outs)} outputs; convbench compares one-input one-output "
                             f"classifiers")
    (name, spec), = args.items()
    return name, list(spec.shape), spec.dtype.name, next(iter(outs))


def _saved_model_as_keras(path: str | Path):
    import keras

    name, shape, dtype, out = saved_model_signature(path)
    if any(d is None for d in shape[1:]):
        raise ModelLoadError(f"{path}: its signature's input {shape} has free axes other than "
                             f"the batch; export it with a fixed input shape")
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
    inp = keras.Input(shape=tuple(shape[1:]), dtype=dtype, name=name)
    return keras.Model(inp, layer(inp)[out], name=Path(path).name)


def keras_config(path: str | Path, trust: bool = False) -> dict | None:
    """A `.keras` file's architecture (its config.json), read without TensorFlow after
    `check_model_path`; refuses a Lambda layer (arbitrary code) unless `trust`, as loading
    would. None when the file holds no readable config (loading it says what is wrong)."""
    import zipfile

    from convbench.files import check_model_path

    check_model_path(path, "keras", trust)
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        return None
    if not trust and _holds_lambda(config):
        raise ModelLoadError(f"{path}: holds a Lambda layer (arbitrary code); pass "
                             f"--trust-model only if you trust its author")
    return config


def _holds_lambda(node) -> bool:
    if isinstance(node, dict):
        return node.get("class_name") == "Lambda" or any(map(_holds_lambda, node.values()))
    return isinstance(node, list) and any(map(_holds_lambda, node))
