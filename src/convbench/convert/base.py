"""The `Converter` interface, the conversion record, and failure categories."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from convbench.formats import targets
from convbench.records import Artifact, Category, write_atomic
from convbench.registry import Registry

if TYPE_CHECKING:
    import numpy as np

CONVERTERS: Registry[type["Converter"]] = Registry("converter")

#: Conversion targets: name -> (format, default converter options), from the format plug-ins.
TARGETS: dict[str, tuple[str, dict[str, Any]]] = {
    name: (fmt.name, dict(t.options)) for name, (fmt, t) in targets().items()}


def resolve_target(name: str) -> tuple[str, dict[str, Any]]:
    """(format, default options) of a conversion target."""
    try:
        fmt, defaults = TARGETS[name]
    except KeyError:
        from convbench.registry import suggest

        raise ValueError(f"unknown target {name!r}.{suggest(name, list(TARGETS))} "
                         f"Known: {', '.join(TARGETS)}") from None
    return fmt, dict(defaults)


@dataclass
class Calibration:
    """Sample inputs a quantiser calibrates its activation ranges on (canonical layout: NCHW
    images), with where they came from; recorded with the conversion and in its cache key."""

    x: "np.ndarray"
    split: str  # "train", or what else the user's data offered
    seed: int

    def about(self) -> dict[str, Any]:
        import numpy as np

        digest = hashlib.sha256(np.ascontiguousarray(self.x).tobytes()).hexdigest()[:16]
        return {"split": self.split, "n": int(len(self.x)), "seed": self.seed,
                "sha256": digest}

    def inputs(self, layout: str) -> "np.ndarray":
        """The samples in a model's layout ("nhwc" or "nchw")."""
        from convbench.models.spec import to_layout

        return to_layout(self.x, "keras" if layout == "nhwc" else "torch")


#: Draws `n` calibration samples (a study: the training split at the cell's seed).
CalibrationSource = Callable[[int], Calibration]


@dataclass
class Conversion:
    """The outcome of one conversion: the artifact when it worked, a category either way."""

    converter: str
    category: Category
    artifact: Artifact | None = None
    message: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    # a failed conversion that tried several routes: each route and its error
    tried: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.category is Category.OK


class Converter:
    """Turns a `source` artifact into a `target` one. Subclasses implement `_convert`."""

    source: ClassVar[str]
    target: ClassVar[str]
    suffix: ClassVar[str]
    packages: ClassVar[tuple[str, ...]] = ()  # whose versions are recorded
    #: modules the converter imports that the base install may lack -> what installs them
    requires: ClassVar[dict[str, str]] = {}

    @classmethod
    def missing(cls) -> str:
        """Why this converter cannot run here ("" when it can): a package it needs, and the
        command that installs it."""
        import importlib.util

        absent = [pip for module, pip in cls.requires.items()
                  if importlib.util.find_spec(module) is None]
        return (f"{cls.__name__} needs {', '.join(absent)}, not installed here: "
                f"pip install {' '.join(absent)}") if absent else ""

    @classmethod
    def refuses(cls, options: dict[str, Any]) -> str:
        """Why convbench offers no route through this converter for these options ("" when
        it does): the cell is skipped with that reason, not counted as the converter's
        failure."""
        return ""

    def __init__(self, **options: Any) -> None:
        self.options = options
        #: sample inputs for a quantising target (its `calibration_size` option), else None
        self.calibration: Calibration | None = None

    def output_suffix(self) -> str:
        """File (or package) suffix of the converted model under these options."""
        return self.suffix

    def _convert(self, src: Artifact, out: Path) -> dict[str, Any]:
        """Write the converted model to `out`; return extra artifact meta."""
        raise NotImplementedError

    def torch_module(self, src: Artifact):
        """A PyTorch source's model, in eval mode, loaded with this conversion's `factory`
        and `trust_model` options."""
        from convbench.models.load import load_torch

        return load_torch(src.path, src.meta.get("architecture"), self.options.get("factory"),
                          self.options.get("trust_model", False))

    @staticmethod
    def classify(exc: BaseException) -> Category:
        from convbench.models.load import ModelLoadError

        if isinstance(exc, ModelLoadError):
            return Category.MODEL_LOAD_ERROR
        text = f"{type(exc).__name__} {exc}".lower()
        if "validationerror" in text or "checker" in text or "invalid" in text:
            return Category.INVALID_MODEL
        if any(s in text for s in ("unsupported", "not supported", "no conversion",
                                   "not implemented", "notimplemented", "unknown op",
                                   "no symbolic")):
            return Category.UNSUPPORTED_OPERATOR
        return Category.CONVERTER_CRASH


#: the batch range a dynamic-batch export of a PyTorch model declares
MAX_BATCH = 1024


def torch_export_args(src: Artifact, dynamic: bool):
    """`torch.export`'s example input for a PyTorch source (zeros of one sample's shape and
    dtype; two of them when the batch is dynamic) and its `dynamic_shapes` (None: fixed)."""
    import torch

    shape, dtype = src.meta["input_shape"], src.meta.get("input_dtype", "float32")
    example = torch.zeros((2 if dynamic else 1, *shape), dtype=getattr(torch, dtype))
    dims = ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},) if dynamic else None
    return (example,), dims


def about_shapes(e: Exception) -> bool:
    """Whether a converter's error is about shapes (what a fixed or enumerated shape mends)."""
    text = str(e).lower()
    return any(w in text for w in ("shape", "size", "dim", "symbolic", "rank", "constraint",
                                   "speciali", "guard"))


def first_route(routes: list[tuple[str, Callable[[], dict]]],
                only_after: Callable[[Exception], bool] | None = None, key: str = "route",
                free: int = 2) -> dict:
    """The meta of the first route (name, function) that converts, with its name under `key`
    and the errors of the routes tried before it (`fallbacks`, or `{key}_fallbacks`); when
    none works, one error naming every route's. `only_after(error)`: routes past the first
    `free` ones are tried only when it holds for the first error (a fixed batch cannot mend
    an unsupported operator)."""
    errors: list[dict[str, str]] = []
    first: Exception | None = None
    for i, (name, attempt) in enumerate(routes):
        if i >= free and only_after is not None and not only_after(first):
            break
        try:
            meta = attempt()
        except Exception as e:
            first = first or e
            errors.append({key: name, "error": f"{type(e).__name__}: {e}"[:2000]})
            continue
        fallbacks = "fallbacks" if key == "route" else f"{key}_fallbacks"
        return {**meta, key: name, **({fallbacks: errors} if errors else {})}
    if len(errors) == 1:
        raise first
    others = "; ".join(f"{key} {e[key]}: {e['error'][:300]}" for e in errors[1:])
    raise RoutesFailed(f"{errors[0]['error']} (also failed: {others})", errors) from first


class RoutesFailed(RuntimeError):
    """No route converts; `tried` holds each route and its error (stored with the cell)."""

    def __init__(self, message: str, tried: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.tried = tried


def _versions(names: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "absent"
    return out


def find_converter(source: str, target: str) -> str:
    name = f"{target}_from_{source}"
    if name not in CONVERTERS:
        from convbench.formats import FORMATS

        takes = sorted(FORMATS.get(target).converters) if target in FORMATS else []
        raise ValueError(f"no converter from {source!r} to {target!r}"
                         + (f": {target} converts from {', '.join(takes)}" if takes else ""))
    return name


def convert(src: Artifact, target: str, out_dir: str | Path,
            calibration: CalibrationSource | None = None, **options: Any) -> Conversion:
    """Convert `src` to `target` under `out_dir`, reusing an earlier identical conversion.
    A target that quantises activations (option `calibration_size`) draws that many sample
    inputs from `calibration`."""
    fmt, defaults = resolve_target(target)
    options = {**defaults, **{k: v for k, v in options.items() if v is not None}}
    try:
        name = find_converter(src.format, fmt)
    except ValueError as e:  # a route that does not exist is a result: the cell is skipped
        return Conversion(f"{fmt}_from_{src.format}", Category.UNAVAILABLE, message=str(e),
                          options=options)
    cls = CONVERTERS.get(name)
    why = cls.refuses(options) or cls.missing()
    if why:  # a cell that cannot run here is skipped, with the install command
        return Conversion(name, Category.UNAVAILABLE, message=why, options=options)
    variant = options.get("variant")  # applied to the converter's output (formats: variants)
    conv = cls(**{k: v for k, v in options.items() if k not in ("variant", "calibration_size")})
    versions = _versions(cls.packages)
    if "calibration_size" in options:
        size = options["calibration_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            return Conversion(name, Category.DATA_ERROR, options=options, message=(
                f"target {target!r}: calibration_size must be a positive count of inputs, "
                f"not {size!r}"))
        if calibration is None:
            return Conversion(name, Category.DATA_ERROR, options=options, message=(
                f"target {target!r} calibrates its quantisation on sample inputs and none were "
                f"given: a study draws them from the dataset's training split, `convbench "
                f"assess` from --dataset or --data"))
        try:
            conv.calibration = calibration(int(options["calibration_size"]))
        except Exception as e:
            return Conversion(name, Category.DATA_ERROR, options=options, message=(
                f"target {target!r} could not draw its calibration inputs: "
                f"{type(e).__name__}: {e}"))
    calibrated = {"calibration": conv.calibration.about()} if conv.calibration else {}
    # what the converter is told about the input enters the key too (a user's model can be
    # assessed at another shape, or its factory's code edited, with the same weights file)
    told = {k: src.meta[k] for k in ("input_shape", "input_dtype", "layout", "free_axes",
                                     "code") if src.meta.get(k)}
    key = hashlib.sha256(json.dumps([src.sha256, name, options, versions] +
                                    ([told] if told else []) +
                                    ([calibrated] if calibrated else []), sort_keys=True,
                                    default=str).encode()).hexdigest()[:16]
    out = Path(out_dir) / f"{Path(src.path).stem}-{target}-{key}{conv.output_suffix()}"
    record = Path(str(out) + ".conversion.json")
    if out.exists() and record.exists():
        saved = json.loads(record.read_text())
        meta = saved.pop("meta")
        return Conversion(**{**saved, "category": Category.OK, "cached": True,
                             "artifact": Artifact.from_path(fmt, out, **meta)})
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_dir():  # an output without its record: a conversion that was interrupted
        shutil.rmtree(out)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            meta = conv._convert(src, out)
            if variant:
                meta = {**meta, **_variant(fmt)(out, variant, conv.calibration,
                                                meta.get("layout", "nchw"))}
            meta = {**meta, **calibrated}
        except Exception as e:  # a failed conversion is a result, not a crash
            return Conversion(name, cls.classify(e), message=f"{type(e).__name__}: {e}"[:4000],
                              seconds=time.perf_counter() - t0, versions=versions,
                              options=options, warnings=_unique(caught),
                              tried=getattr(e, "tried", []))
    seconds = time.perf_counter() - t0
    result = Conversion(name, Category.OK, Artifact.from_path(fmt, out, **meta), "", seconds,
                        _unique(caught), versions, options)
    saved = {k: v for k, v in asdict(result).items()
             if k not in ("artifact", "category", "cached")}
    write_atomic(record, json.dumps({**saved, "meta": meta}, default=str))
    return result


def _variant(fmt: str):
    """The function that makes a compressed variant of `fmt` (its plug-in's `variants`)."""
    import importlib

    from convbench.formats import FORMATS

    path = FORMATS.get(fmt).variants
    if path is None:
        raise ValueError(f"format {fmt!r} has no compressed variants")
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _unique(caught) -> list[str]:
    seen: dict[str, None] = {}
    for w in caught:
        seen.setdefault(f"{w.category.__name__}: {str(w.message)[:300]}", None)
    return list(seen)[:50]
