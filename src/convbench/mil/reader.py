"""Reading an ML Program straight from its protobuf, for the interpreters.

coremltools' own loader (`program.load_program`) rebuilds a program through its MIL builder, which
re-runs type and value inference on every op: about 0.5 ms per op (300 ms for EfficientNetB0).
The interpreters need none of it: each op's type, inputs, output types and constants are written
in the file. `read_program` reads them as written into light records with the few attributes the
`Interpreter` reads (functions, operations, inputs, outputs, `val`, `mil_type`), and weights
straight from the blob file.

What it reads is what coremltools writes: every input an op was given or defaulted to is in the
file (its builder materialises non-None defaults before the writer runs), so an input absent from
the file is None. A program written by another tool, or using what this reader leaves out (state,
sub-byte or dictionary values, literal list arguments), goes to coremltools' loader instead.
"""

from __future__ import annotations

import functools
import mmap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: MIL proto data types -> convbench's element type names (`dtypes.type_name`) and numpy types
_TYPES = {"BOOL": ("bool", np.bool_), "STRING": ("str", None), "FLOAT16": ("fp16", np.float16),
          "FLOAT32": ("fp32", np.float32), "FLOAT64": ("fp64", np.float64),
          "INT8": ("int8", np.int8), "INT16": ("int16", np.int16), "INT32": ("int32", np.int32),
          "INT64": ("int64", np.int64), "UINT8": ("uint8", np.uint8),
          "UINT16": ("uint16", np.uint16), "UINT32": ("uint32", np.uint32),
          "UINT64": ("uint64", np.uint64)}
_BLOB_SENTINEL = 0xDEADBEEF
_WRITER = "com.github.apple.coremltools.version"


class _NoSpec:
    input_types: dict = {}


_NO_SPEC = _NoSpec()


class Unread(Exception):
    """What this reader leaves to coremltools' loader (the reason)."""


@dataclass(eq=False)
class Var:
    name: str
    mil_type: str  # 'fp32', 'int32', 'bool', 'str', 'list', ...
    shape: tuple | None = None
    val: Any = None


@dataclass(eq=False)
class Op:
    op_type: str
    name: str
    inputs: dict[str, Any]
    outputs: list[Var]
    blocks: list["Block"]
    input_spec: Any  # the op class's, from coremltools' registry (its input names)

    def default_inputs(self) -> dict:
        return {}  # written in the file


@dataclass(eq=False)
class Block:
    inputs: list[Var]
    operations: list[Op] = field(default_factory=list)
    outputs: list[Var] = field(default_factory=list)


@dataclass(eq=False)
class Function(Block):
    inputs: dict[str, Var] = field(default_factory=dict)  # type: ignore[assignment]


@dataclass(eq=False)
class Program:
    functions: dict[str, Function]


def read_program(path: str | Path, spec=None, trust: bool = False):
    """The program of an ML Program package, read from its protobuf (see the module's note), or
    through coremltools' loader when this reader leaves something to it."""
    from convbench.mil.program import load_program, load_spec

    path = Path(path)
    spec = spec if spec is not None else load_spec(path, trust)
    if spec.WhichOneof("Type") == "mlProgram" \
            and _WRITER in spec.description.metadata.userDefined:
        try:
            return _Reader(path / "Data" / "com.apple.CoreML" / "weights",
                           spec.specificationVersion).program(spec.mlProgram)
        except Unread:
            pass
    return load_program(path, trust)


class _Reader:
    def __init__(self, weights: Path, spec_version: int) -> None:
        from coremltools.converters.mil._deployment_compatibility import AvailableTarget
        from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

        self.weights = weights
        try:
            self.target = AvailableTarget(spec_version)
        except ValueError as e:
            raise Unread(f"specification version {spec_version}") from e
        self.registry = SSAOpRegistry.core_ops
        self.blobs: dict[str, Any] = {}
        self.vars: dict[str, Var] = {}
        self.count = 0

    def program(self, proto) -> Program:
        if proto.version != 1:
            raise Unread(f"program version {proto.version}")
        functions = {}
        for fname, f in proto.functions.items():
            if f.opset not in f.block_specializations:
                raise Unread(f"no block for opset {f.opset}")
            inputs = {v.name: self._var(v) for v in f.inputs}
            block = self._block(f.block_specializations[f.opset], list(inputs.values()))
            functions[fname] = Function(inputs, block.operations, block.outputs)
        return Program(functions)

    # -- types and values ----------------------------------------------------------------
    def _var(self, nvt) -> Var:
        var = Var(nvt.name, *self._type(nvt.type))
        self.vars[var.name] = var
        return var

    @staticmethod
    def _type(vt) -> tuple[str, tuple | None]:
        kind = vt.WhichOneof("type")
        if kind == "listType":
            return "list", None
        if kind != "tensorType":
            raise Unread(f"{kind} values")
        t = vt.tensorType
        name = _dtype_name(t.dataType)
        if name is None:
            raise Unread(f"data type {t.dataType}")
        return name, tuple(d.constant.size if d.WhichOneof("dimension") == "constant" else None
                           for d in t.dimensions)

    def _value(self, value, mil_type: str, shape: tuple):
        """A const's value as coremltools' loader gives it (numpy; scalars as numpy scalars,
        strings as str)."""
        np_type = _np_type(mil_type)
        which = value.WhichOneof("value")
        if which == "blobFileValue":
            arr = self._blob(value.blobFileValue, np_type).reshape(shape)
        elif which == "immediateValue" and value.immediateValue.WhichOneof("value") == "tensor":
            tv = value.immediateValue.tensor
            kind = tv.WhichOneof("value")
            if kind == "bytes":
                arr = np.frombuffer(tv.bytes.values, np_type).reshape(shape).copy()
            elif kind == "strings" and not shape:
                return str(tv.strings.values[0])
            elif kind is None:
                arr = np.zeros(shape, np_type)
            else:
                arr = np.array(list(getattr(tv, kind).values)).astype(np_type).reshape(shape)
        else:
            raise Unread(f"a {which} value")
        return arr if shape else np_type(arr.item())

    def _blob(self, ref, np_type) -> np.ndarray:
        name = ref.fileName.split("/")[-1]
        if name not in self.blobs:
            try:
                with open(self.weights / name, "rb") as fh:
                    self.blobs[name] = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError) as e:
                raise Unread(f"weights {name}: {e}") from e
        buf = self.blobs[name]
        head = np.frombuffer(buf, np.uint32, 2, ref.offset)
        if head[0] != _BLOB_SENTINEL:
            raise Unread(f"no blob at offset {ref.offset} of {name}")
        size, start = np.frombuffer(buf, np.uint64, 2, ref.offset + 8)
        if start + size > len(buf):
            raise Unread(f"{name} is truncated")
        # copied: the interpreter owns its constants (the map closes with the reader)
        return np.frombuffer(buf, np_type, int(size) // np.dtype(np_type).itemsize,
                             int(start)).copy()

    def _const(self, name: str, value_proto, vt) -> Var:
        mil_type, shape = self._type(vt)
        var = Var(name, mil_type, shape, self._value(value_proto, mil_type, shape or ()))
        self.vars[name] = var
        return var

    # -- ops and blocks ------------------------------------------------------------------
    def _block(self, proto, inputs: list[Var]) -> Block:
        if proto.attributes:
            raise Unread("block attributes")
        block = Block(inputs)
        for op in proto.operations:
            block.operations.extend(self._op(op))
        try:
            block.outputs = [self.vars[n] for n in proto.outputs]
        except KeyError as e:
            raise Unread(f"block output {e} is never computed") from e
        return block

    def _op(self, proto) -> list[Op]:
        op_type = proto.type
        cls = self.registry.get(op_type, {}).get(self.target)
        spec = cls.input_spec if cls is not None else _NO_SPEC  # unknown: the interpreter says so
        spec_types = spec.input_types
        name = proto.attributes["name"].immediateValue.tensor.strings.values[0] \
            if "name" in proto.attributes else proto.outputs[0].name
        if op_type == "const":
            (out,) = proto.outputs
            var = self._const(out.name, proto.attributes["val"], out.type)
            return [Op("const", name, {}, [var], [], spec)]
        before: list[Op] = []  # consts for values written in the op (constexpr attributes)
        inputs: dict[str, Any] = {}
        for key, value in proto.attributes.items():
            if key == "name":
                continue
            if not op_type.startswith("constexpr_"):
                raise Unread(f"attribute {key!r} of {op_type}")
            var = self._const(self._anon(name, key), value, value.type)
            before.append(Op("const", var.name, {}, [var], [], _NO_SPEC))
            inputs[key] = var
        for key, arg in proto.inputs.items():
            vars_ = []
            for b in arg.arguments:
                if b.WhichOneof("binding") == "name":
                    if b.name not in self.vars:
                        raise Unread(f"{op_type} {name!r} reads {b.name!r} before it is made")
                    vars_.append(self.vars[b.name])
                else:  # a literal tensor: a const of its own
                    if b.value.WhichOneof("value") != "immediateValue" \
                            or b.value.immediateValue.WhichOneof("value") != "tensor":
                        raise Unread(f"a literal {key!r} of {op_type}")
                    var = self._const(self._anon(name, key), b.value, b.value.type)
                    before.append(Op("const", var.name, {}, [var], [], _NO_SPEC))
                    vars_.append(var)
            tuple_input = type(spec_types.get(key)).__name__ == "TupleInputType"
            inputs[key] = vars_[0] if len(vars_) == 1 and not tuple_input else vars_
        # in the op definition's order (a protobuf map keeps none), as coremltools gives them
        order = {k: i for i, k in enumerate(spec_types)}
        inputs = dict(sorted(inputs.items(), key=lambda kv: order.get(kv[0], len(order))))
        blocks = [self._block(b, [self._var(v) for v in b.inputs]) for b in proto.blocks]
        outputs = [self._var(o) for o in proto.outputs]
        return [*before, Op(op_type, name, inputs, outputs, blocks, spec)]

    def _anon(self, op_name: str, key: str) -> str:
        self.count += 1
        return f"{op_name}__{key}_{self.count}"


def check_read(path: str | Path, program, interp) -> None:
    """Fail unless `interp` (an Interpreter over `program`, from `read_program`) runs what one over
    coremltools' loading of the same package runs: the same steps, inputs and constants, bit for
    bit. The test suite checks every package it runs (`compiled.CHECK_ENV`)."""
    from convbench.mil.interpreter import Interpreter
    from convbench.mil.program import load_program

    key = (str(path), interp.function, interp.arith)
    if not isinstance(program, Program) or key in _CHECKED:
        return  # coremltools' loader read it, or this process checked it already
    _CHECKED.add(key)
    ref = Interpreter(load_program(path, trust=True), interp.function, interp.arith)
    where = _departure(ref.block, interp.block, ref.consts, interp.consts)
    if where:
        raise AssertionError(f"{path}: the protobuf reader departs from coremltools' loader: "
                             f"{where}")


_CHECKED: set[tuple] = set()


def _departure(a, b, ca, cb) -> str:
    if len(a.steps) != len(b.steps) or a.outputs != b.outputs \
            or [n for n, _ in a.inputs] != [n for n, _ in b.inputs]:
        return f"blocks of {len(a.steps)} and {len(b.steps)} steps, outputs {a.outputs} and " \
               f"{b.outputs}"
    for x, y in zip(a.steps, b.steps):
        if (x.op_type, x.name, x.outputs) != (y.op_type, y.name, y.outputs) \
                or [k for k, _ in x.refs] != [k for k, _ in y.refs] \
                or not all(_same(u, v) for (_, u), (_, v) in zip(x.refs, y.refs)):
            return f"op {x.op_type} {x.name!r} against {y.op_type} {y.name!r}"
        if x.fixed.keys() != y.fixed.keys():
            return f"op {x.name!r}: inputs {sorted(x.fixed)} against {sorted(y.fixed)}"
        for k, v in x.fixed.items():
            if not _same(v, y.fixed[k]):
                return f"op {x.name!r}: input {k!r} {v!r:.80} against {y.fixed[k]!r:.80}"
        for bx, by in zip(x.blocks, y.blocks):
            where = _departure(bx, by, ca, cb)
            if where:
                return where
    for n in a.outputs:
        if (n in ca) != (n in cb) or (n in ca and not _same(ca[n], cb[n])):
            return f"output constant {n!r}"
    return ""


def _same(u, v) -> bool:
    import torch

    if isinstance(u, torch.Tensor) or isinstance(v, torch.Tensor):
        return isinstance(u, torch.Tensor) and isinstance(v, torch.Tensor) \
            and u.dtype == v.dtype and u.shape == v.shape and torch.equal(u, v)
    if isinstance(u, (list, tuple)) or isinstance(v, (list, tuple)):
        return isinstance(u, (list, tuple)) and isinstance(v, (list, tuple)) \
            and len(u) == len(v) and all(_same(p, q) for p, q in zip(u, v))
    if isinstance(u, np.ndarray) or isinstance(v, np.ndarray):
        return np.array_equal(np.asarray(u), np.asarray(v))
    return type(u) is type(v) and u == v


@functools.cache
def _type_names() -> dict[int, str]:
    from coremltools.proto import MIL_pb2

    return {code: _TYPES[name][0] for name, code in MIL_pb2.DataType.items() if name in _TYPES}


def _dtype_name(code: int) -> str | None:
    return _type_names().get(code)


def _np_type(mil_type: str):
    for name, np_type in _TYPES.values():
        if name == mil_type:
            return np_type if np_type is not None else np.str_
    raise Unread(f"{mil_type} values")
