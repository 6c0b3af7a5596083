"""The protobuf reader (`convbench.mil.reader`): it must give the interpreter what coremltools'
loader gives it, bit for bit, and leave to that loader what it does not read. (Every package the
suite runs through the Core ML runner is also checked: `CHECK_ENV` in conftest.)"""

from __future__ import annotations

import numpy as np
import pytest

from convbench.mil import Interpreter
from convbench.mil.program import load_program
from convbench.mil.reader import Program, check_read, read_program


def _save(prog, path, target):
    import coremltools as ct

    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=target,
                       compute_precision=ct.precision.FLOAT32)
    model.save(str(path))
    return path


def _control_flow(path):
    """Loops, branches, a tuple input (concat), literal-free constants of several dtypes."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    w = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 6))], opset_version=ct.target.iOS15)
    def prog(x):
        def cond(i, v):
            return mb.less(x=i, y=np.int32(3))

        def body(i, v):
            return mb.add(x=i, y=np.int32(1)), mb.mul(x=v, y=np.float32(0.5))

        _, v = mb.while_loop(_cond=cond, _body=body, loop_vars=(np.int32(0), x))
        pred = mb.greater(x=mb.reduce_sum(x=v), y=np.float32(0.0))
        b = mb.cond(pred=pred, _true_fn=lambda: mb.relu(x=v), _false_fn=lambda: mb.abs(x=v))
        h = mb.linear(x=mb.concat(values=[b, v], axis=0), weight=w)
        return mb.reshape(x=h, shape=np.array([-1], np.int32))

    return _save(prog, path, ct.target.iOS15)


def _compressed(path):
    """Weights stored compressed (iOS16 constexpr ops, their values written as attributes) in an
    fp16 program."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(1)
    q = rng.integers(0, 255, (4, 3, 3, 3)).astype(np.uint8)
    lut = rng.standard_normal(16).astype(np.float16)
    idx = rng.integers(0, 256, 8).astype(np.uint8)  # 16 4-bit indices, packed
    fp16 = ct.converters.mil.mil.types.fp16

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 8, 8), dtype=fp16)],
                opset_version=ct.target.iOS16)
    def prog(x):
        w = mb.constexpr_affine_dequantize(quantized_data=q, zero_point=np.uint8(128),
                                           scale=np.float16(0.01), axis=0)
        y = mb.conv(x=x, weight=w, pad_type="same")
        table = mb.constexpr_lut_to_dense(indices=idx, lut=lut, shape=np.array([4, 4], np.uint32))
        return mb.matmul(x=mb.reduce_mean(x=y, axes=[2, 3]), y=table)

    return _save(prog, path, ct.target.iOS16)


@pytest.mark.parametrize("make, x", [
    (_control_flow, np.random.default_rng(2).standard_normal((2, 6)).astype(np.float32)),
    (_compressed, np.random.default_rng(3).standard_normal((1, 3, 8, 8)).astype(np.float16)),
], ids=["control-flow", "compressed-fp16"])
def test_the_reader_runs_what_coremltools_loader_gives(tmp_path, make, x):
    path = make(tmp_path / "m.mlpackage")
    program = read_program(path)
    assert isinstance(program, Program)  # read, not left to coremltools
    interp = Interpreter(program)
    check_read(path, program, interp)  # same steps, inputs and constants
    ref = Interpreter(load_program(path))
    name = interp.input_names[0]
    for got, want in zip(interp.run({name: x}), ref.run({name: x})):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    types = {s.op_type for s in interp.block.steps}
    assert {"while_loop", "cond", "concat"} <= types or "conv" in types


def test_the_check_names_a_departure(tmp_path):
    path = _control_flow(tmp_path / "m.mlpackage")
    program = read_program(path)
    linear = next(op for op in program.functions["main"].operations if op.op_type == "linear")
    linear.inputs["weight"].val = linear.inputs["weight"].val * 2
    with pytest.raises(AssertionError, match="input 'weight'"):
        check_read(path, program, Interpreter(program))


def test_what_the_reader_leaves_goes_to_coremltools(tmp_path):
    """A program another tool wrote (no coremltools version in its metadata) and a program with
    state are loaded by coremltools; truncated weights are a clear error."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    from convbench.mil.errors import ProgramLoadError

    path = _control_flow(tmp_path / "m.mlpackage")
    model = ct.models.MLModel(str(path), skip_model_load=True)
    del model.user_defined_metadata["com.github.apple.coremltools.version"]
    model.save(str(tmp_path / "other.mlpackage"))
    assert not isinstance(read_program(tmp_path / "other.mlpackage"), Program)

    @mb.program(input_specs=[mb.StateTensorSpec((2,), dtype=ct.converters.mil.mil.types.fp16),
                             mb.TensorSpec((2,), dtype=ct.converters.mil.mil.types.fp16)],
                opset_version=ct.target.iOS18)
    def stateful(s, x):
        v = mb.add(x=mb.read_state(input=s), y=x)
        mb.coreml_update_state(state=s, value=v)
        return v

    ct.convert(stateful, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18) \
        .save(str(tmp_path / "state.mlpackage"))
    program = read_program(tmp_path / "state.mlpackage")
    assert not isinstance(program, Program)
    assert Interpreter(program).state_specs

    weights = path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ProgramLoadError, match="weights may be missing or truncated"):
        read_program(path)
