"""Loading an ML Program from disk, and listing the ops it uses."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from convbench.mil.errors import ProgramLoadError


def load_spec(path: str | Path, trust: bool = False):
    """The protobuf spec of a `.mlpackage` or `.mlmodel`, after `convbench.files` has checked
    that everything the package names lies inside it (links leading out need `trust`)."""
    from convbench.files import check_model_path, package_root_model

    path = Path(path)
    if path.is_dir():
        specfile = package_root_model(path, trust)
    else:
        check_model_path(path, "coreml", trust)
        specfile = path
    from convbench.coreml_import import coremltools

    coremltools()  # its first import leaves out what convbench never uses
    from coremltools.proto import Model_pb2  # imports all of coremltools: after the checks
    spec = Model_pb2.Model()
    try:
        spec.ParseFromString(specfile.read_bytes())
    except Exception as e:  # protobuf, zip and OS errors all mean "not a Core ML model"
        raise ProgramLoadError(f"{path}: not a readable Core ML model ({type(e).__name__}: "
                               f"{e}); convert it again with coremltools") from e
    return spec


def load_program(path: str | Path, trust: bool = False):
    """The typed MIL program (with its weights) of an ML Program package."""
    spec = load_spec(path, trust)  # imports coremltools (`convbench.coreml_import`)
    from coremltools.converters.mil.frontend.milproto.load import load

    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        raise ProgramLoadError(f"{path}: a {kind} model, not an ML Program; the NeuralNetwork "
                               f"format runs on convbench's layer interpreter (convbench.nn)")
    weights = Path(path) / "Data" / "com.apple.CoreML" / "weights"
    try:
        return load(spec, spec.specificationVersion, str(weights))
    except Exception as e:
        raise ProgramLoadError(f"{path}: the ML Program does not load ({type(e).__name__}: "
                               f"{e}); its weights may be missing or truncated") from e


def _walk(block, path: str):
    for op in block.operations:
        yield op, path
        for i, b in enumerate(op.blocks):
            yield from _walk(b, f"{path}/{op.name}[{i}]")


def iter_ops(program):
    """(op, location) for every op of every function, nested blocks included."""
    for fname, func in program.functions.items():
        yield from _walk(func, fname)


def op_census(program) -> Counter:
    """How many times each op type occurs."""
    return Counter(op.op_type for op, _ in iter_ops(program))
