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


def load_factory(spec: str):
    """Resolve "package.module:function" or "path/to/file.py:function" to the function."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ModelLoadError(f"--factory {spec!r}: expected MODULE:FUNCTION or FILE.py:FUNCTION")
    try:
        if target.endswith(".py"):
            loaded = importlib.util.spec_from_file_location(Path(target).stem, target)
            if loaded is None or not Path(target).exists():
                raise FileNotFoundError(target)
            module = importlib.util.module_from_spec(loaded)
            loaded.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
        return getattr(module, attr)
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


def load_torch(path: str | Path, architecture: dict | None = None, factory: str | None = None):
    """A PyTorch model in eval mode from a state_dict, rebuilt by the zoo or by `factory`."""
    return _shared("torch", path, [architecture, factory],
                   lambda: _load_torch(path, architecture, factory))


def _load_torch(path: str | Path, architecture: dict | None, factory: str | None):
    import torch

    from convbench.models.spec import build

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or unsafe files
        raise ModelLoadError(
            f"{path}: not loadable as a PyTorch state_dict with weights_only=True (convbench "
            f"never runs pickled code): save `model.state_dict()` with torch.save. "
            f"({type(e).__name__}: {_first_line(e)})") from e
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path}: holds a {type(state).__name__}, not a state_dict; save "
                             f"`model.state_dict()` and pass --factory MODULE:FUNCTION")
    if factory:
        model = load_factory(factory)()
    else:
        arch = architecture or architecture_of(path)
        if arch is None:
            raise ModelLoadError(f"{path}: no architecture record ({path}.arch.json) and no "
                                 f"--factory; pass --factory MODULE:FUNCTION returning the model")
        model = build("torch", arch["model"], arch["input_shape"], arch["num_classes"],
                      vocab=arch.get("vocab"), **arch.get("options", {}))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ModelLoadError(f"{path}: weights do not fit the architecture: "
                             f"{_first_line(e)}") from e
    return model.eval()


def load_keras(path: str | Path, trust: bool = False):
    """A Keras model from a `.keras` file, in safe mode unless the user trusts it."""
    return _shared("keras", path, {"trust": trust}, lambda: _load_keras(path, trust), trust)


def _load_keras(path: str | Path, trust: bool):
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not trust)
    except Exception as e:  # keras raises ValueError, OSError, zipfile errors...
        msg = _first_line(e)
        hint = (" The model holds a Lambda layer (arbitrary code): pass --trust-model only if "
                "you trust its author." if "lambda" in msg.lower() else
                " Save it with model.save('model.keras').")
        raise ModelLoadError(f"{path}: not a loadable Keras model ({msg}).{hint}") from e


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


def keras_input_shape(config: dict | None) -> tuple[int, ...] | None:
    """One sample's shape as a `.keras` config declares it (None when it does not say it
    plainly: a model of several inputs, free axes)."""
    try:
        layers = config.get("config", {}).get("layers", [])
        shapes = [layer["config"].get("batch_shape") or layer["config"].get("batch_input_shape")
                  for layer in layers if layer.get("class_name") == "InputLayer"]
    except (KeyError, TypeError, AttributeError):
        return None
    if len(shapes) == 1 and shapes[0] and all(isinstance(d, int) for d in shapes[0][1:]):
        return tuple(shapes[0][1:])
    return None
