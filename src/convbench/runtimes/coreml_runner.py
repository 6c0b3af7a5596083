"""Core ML: Apple's runtime (`MLModel.predict`, macOS only) or convbench's interpreters.

Engines: "native" runs `MLModel.predict` with the chosen compute units; "interpreter" runs ML
Programs on convbench's MIL interpreter, op by op, and NeuralNetwork `.mlmodel` files on its
layer interpreter, on any OS; "compiled" lowers an ML Program once, at load, to one function
over the same ops (`convbench.mil.compiled`: the interpreter's results, bit for bit, without its
dispatch; NeuralNetwork models run on the layer interpreter). The default is native on macOS
and compiled elsewhere.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from convbench.runtimes.base import Runner

ENGINES = ("native", "interpreter", "compiled")
COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "ALL", "CPU_AND_NE")


def default_engine() -> str:
    return "native" if sys.platform == "darwin" else "compiled"


def batch_sizes(spec) -> set[int] | None:
    """The batch sizes a Core ML model's first input takes: None for any (a flexible batch),
    else its enumerated sizes or its fixed one."""
    array = spec.description.input[0].type.multiArrayType
    if array.shapeRange.sizeRanges:
        return None
    if array.enumeratedShapes.shapes:
        return {int(s.shape[0]) for s in array.enumeratedShapes.shapes}
    return {int(array.shape[0])} if array.shape else None


class CoremlRunner(Runner):
    """Options: `engine`, `compute_units` (native; default CPU_ONLY), `arith` ("fp32" or
    "fp16": the arithmetic inside each op of the interpreter)."""

    name, formats = "coreml", ("coreml",)
    module = "coremltools"
    unneeded_modules = ("tensorflow",)  # coremltools imports it for its Keras converter only

    @classmethod
    def import_framework(cls) -> None:
        from convbench.coreml_import import coremltools

        coremltools()  # without the optional packages it only probes for

    @classmethod
    def available(cls, engine: str | None = None, **options) -> tuple[bool, str]:
        engine = engine or default_engine()
        if engine not in ENGINES:
            return False, f"unknown Core ML engine {engine!r}; use one of {ENGINES}"
        if engine == "native" and sys.platform != "darwin":
            return False, ("Core ML prediction needs macOS; on Linux use "
                           "--coreml-engine=interpreter")
        return True, ""

    @property
    def engine(self) -> str:
        return self.options.get("engine") or default_engine()

    def _load(self):
        if self.engine == "native":
            self._load_native()
        else:
            self._load_interpreter()

    def _load_native(self):
        from convbench.coreml_import import coremltools

        ct = coremltools()

        units = self.options.get("compute_units", "CPU_ONLY")
        self.model = ct.models.MLModel(self.artifact.path,
                                       compute_units=getattr(ct.ComputeUnit, units))
        self._batches = batch_sizes(self.model.get_spec())
        desc = self.model.get_spec().description
        self._input, self._output = desc.input[0].name, desc.output[0].name
        self._predict = lambda x: self.model.predict({self._input: x})[self._output]

    def _load_interpreter(self):
        import torch  # the interpreters' kernels are PyTorch's: its thread count is theirs

        from convbench.mil.program import load_spec

        if self.threads:
            torch.set_num_threads(self.threads)
        self.threads = torch.get_num_threads()
        spec = load_spec(self.artifact.path, self.trust)
        self._batches = batch_sizes(spec)
        self._input = spec.description.input[0].name
        arith = self.options.get("arith", "fp32")
        self._detail = "NeuralNetwork layer interpreter"
        if spec.WhichOneof("Type") == "mlProgram":
            from convbench.mil import Interpreter
            from convbench.mil.compiled import CHECK_ENV
            from convbench.mil.reader import check_read, read_program

            program = read_program(self.artifact.path, spec, self.trust)
            if self.engine == "compiled":
                from convbench.mil.compiled import CompiledProgram

                compiled = CompiledProgram(program, arith=arith)
                interp, run = compiled.reference, compiled.run  # the reference traces
                self._detail = compiled.engine
            else:
                interp = Interpreter(program, arith=arith)
                run = interp.run
                self._detail = "interpreter"
            if os.environ.get(CHECK_ENV):
                check_read(self.artifact.path, program, interp)
            del program  # the interpreter holds what it runs
        else:
            from convbench.nn import NeuralNetworkInterpreter

            interp = NeuralNetworkInterpreter(spec, arith=arith)
            run = interp.run
        self._interp = interp
        self._predict = lambda x: run({self._input: x})[0]

    def infer(self, x: np.ndarray) -> np.ndarray:
        if x.dtype == np.int64:
            x = x.astype(np.int32)  # Core ML takes int32 token ids
        if self._batches is None or len(x) in self._batches:
            return np.asarray(self._predict(x), dtype=np.float32)
        # a batch the model does not take: a loop over the largest batch it takes that fits
        step = max([b for b in self._batches if b <= len(x)], default=min(self._batches))
        if step > len(x):
            raise ValueError(f"{self.artifact.path} takes batches of {sorted(self._batches)}, "
                             f"not {len(x)}")
        parts = [self.infer(x[i:i + step]) for i in range(0, len(x) - len(x) % step, step)]
        if len(x) % step:
            parts.append(self.infer(x[len(x) - len(x) % step:]))
        return np.concatenate(parts)

    def trace(self, x: np.ndarray):
        """Every op's (ML Program) or layer's (NeuralNetwork) value on `x`, from convbench's
        interpreters (on macOS too: Apple's runtime does not expose them)."""
        from convbench.explain import coreml_trace

        if self.engine == "native" or not hasattr(self, "_interp"):
            self._load_interpreter()  # raises what keeps the model from loading
        if x.dtype == np.int64:
            x = x.astype(np.int32)
        layout = self.artifact.meta.get("layout", "nchw")
        if hasattr(self._interp, "block"):
            return coreml_trace.trace_mil(self._interp, {self._input: x}, x, layout)
        return coreml_trace.trace_nn(self._interp, {self._input: x}, x, layout)

    def describe(self):
        out = {**super().describe(), "engine": self.engine,
               "arith": self.options.get("arith", "fp32")}
        if getattr(self, "_detail", None) and self.engine == "compiled":
            out["ran_on"] = self._detail  # "compiled", or why the model ran op by op
        if self.engine == "native":
            out["compute_units"] = self.options.get("compute_units", "CPU_ONLY")
        return out
