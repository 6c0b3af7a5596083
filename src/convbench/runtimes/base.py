"""The `Runner` interface: load a model artifact into one runtime and run it on arrays."""

from __future__ import annotations

import importlib
import importlib.util
import time
from typing import Any, ClassVar

import numpy as np

from convbench.records import Artifact
from convbench.registry import Registry

RUNNERS: Registry[type["Runner"]] = Registry("runtime")

#: The runtime a framework's own model runs on (an exchange format's is its plug-in's).
FRAMEWORK_RUNTIME = {"torch": "torch", "keras": "keras"}


def default_runtime(fmt: str) -> str:
    """The runtime a format (or a framework's own model) runs on when the study does not say."""
    from convbench.formats import FORMATS

    if fmt in FRAMEWORK_RUNTIME:
        return FRAMEWORK_RUNTIME[fmt]
    if fmt in FORMATS:
        return FORMATS.get(fmt).runtime
    raise ValueError(f"no default runtime for format {fmt!r}")


class Runner:
    """One runtime holding one model.

    Use as a context manager or call `load()` / `close()`. `infer(x)` takes a batch in the
    model's own layout and returns its output as a numpy array. `capabilities` says what the
    runtime offers ("predict", "gradients"); `available()` whether it can run here, and why not.
    """

    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]
    capabilities: ClassVar[frozenset[str]] = frozenset({"predict"})
    module: ClassVar[str]  # the framework module the runtime imports (for memory baselines)
    # modules a library pulls in that this runtime never uses (kept out of its memory probe)
    unneeded_modules: ClassVar[tuple[str, ...]] = ()

    def __init__(self, artifact: Artifact, threads: int | None = None, **options: Any) -> None:
        if artifact.format not in self.formats:
            raise ValueError(f"runtime {self.name!r} runs {self.formats}, not {artifact.format!r}")
        self.artifact = artifact
        self.threads = threads
        self.options = options

    #: modules the runtime imports that the install may lack -> the pip name that installs them
    requires: ClassVar[dict[str, str]] = {}

    @classmethod
    def available(cls, **options: Any) -> tuple[bool, str]:
        """Whether this runtime can run here with these options, and if not, why."""
        absent = [pip for module, pip in cls.requires.items()
                  if importlib.util.find_spec(module) is None]
        if absent:
            return False, (f"{', '.join(absent)} not installed here: "
                           f"pip install {' '.join(absent)}")
        return True, ""

    def load(self) -> int:
        """Load the model; return the wall time it took in nanoseconds (the framework's own
        import is done first and not counted: a process pays it once, whatever it loads)."""
        from convbench.mil.errors import MilError
        from convbench.models.load import ModelLoadError

        from convbench.files import check_model_path

        check_model_path(self.artifact.path, self.artifact.format, self.trust)
        self.import_framework()
        t0 = time.perf_counter_ns()
        try:
            self._load()
        except (ModelLoadError, MilError):
            raise
        except Exception as e:  # each runtime fails in its own way on a bad file: say it plainly
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise ModelLoadError(f"{self.artifact.path}: {self.name} cannot load this "
                                 f"{self.artifact.format} model ({type(e).__name__}: {first}); "
                                 f"the file is corrupt, truncated or not a {self.artifact.format} "
                                 f"model: convert it again") from e
        return time.perf_counter_ns() - t0

    @classmethod
    def import_framework(cls) -> None:
        """Import the framework module the runtime uses (`module`)."""
        importlib.import_module(cls.module)

    @property
    def trust(self) -> bool:
        """The user trusts the model file (`--trust-model`): links leading out of it are
        followed, Keras Lambda layers load."""
        return bool(self.options.get("trust_model", False))

    def _load(self) -> None:
        raise NotImplementedError

    def infer(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def infer_all(self, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
        """Outputs for every sample of `x`, run in batches of `batch_size`."""
        if len(x) <= batch_size and type(x) is np.ndarray:  # an attack's many small calls
            return self.infer(x)
        return np.concatenate([self.infer(x[i:i + batch_size])
                               for i in range(0, len(x), batch_size)])

    def infer_timed(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """`infer(x)` and its wall time in nanoseconds."""
        t0 = time.perf_counter_ns()
        y = self.infer(x)
        return y, time.perf_counter_ns() - t0

    def trace(self, x: np.ndarray):
        """Every layer's (or op's) output on `x`, in execution order: a
        `convbench.explain.trace.Trace`, for `convbench explain`."""
        raise NotImplementedError(f"runtime {self.name!r} does not expose its intermediate "
                                  f"tensors; convbench explains PyTorch, Keras, ONNX, Core ML, "
                                  f"LiteRT and OpenVINO models")

    def describe(self) -> dict[str, Any]:
        """What to record about this runner's configuration."""
        return {"runtime": self.name, "threads": self.threads}

    def close(self) -> None:
        pass

    def __enter__(self) -> "Runner":
        self.load()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def in_fixed_batches(x: np.ndarray, fixed: int, run) -> np.ndarray:
    """`run` over `x` in batches of a model's fixed batch size, the last one padded with its
    own last row (and the padding's outputs dropped)."""
    outs = []
    for i in range(0, len(x), fixed):
        part = x[i:i + fixed]
        if len(part) < fixed:
            part = np.concatenate([part, np.repeat(part[-1:], fixed - len(part), 0)])
        outs.append(run(part))
    return np.concatenate(outs)[:len(x)]


def open_runner(artifact: Artifact, runtime: str | None = None, **options: Any) -> Runner:
    """A runner for `artifact` (not yet loaded); the format's default runtime when not given."""
    name = runtime or default_runtime(artifact.format)
    cls = RUNNERS.get(name)
    ok, why = cls.available(**options)
    if not ok:
        raise RuntimeUnavailable(f"runtime {name!r} is not available here: {why}")
    return cls(artifact, **options)


class RuntimeUnavailable(RuntimeError):
    """The runtime cannot run on this machine (a cell is then skipped, not failed)."""
