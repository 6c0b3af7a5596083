"""The compiled engine (`convbench.mil.compiled`) against the op-by-op interpreter: the same
outputs, bit for bit, whatever the program stores; what it cannot compile runs op by op."""

import numpy as np
import pytest

from convbench.mil import Interpreter
from convbench.mil.compiled import CompiledProgram

rng = np.random.default_rng(9)


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


def _both(prog, inputs, arith="fp32"):
    compiled = CompiledProgram(prog, arith=arith)
    got = compiled.run(inputs)
    want = Interpreter(prog, arith=arith).run(inputs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)
    return compiled, got


@pytest.mark.parametrize("arith", ["fp32", "fp16"])
def test_an_fp16_program_is_the_interpreters_bit_for_bit(arith):
    from coremltools.converters.mil.mil import types

    mb = _mb()
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float16)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float16)

    @mb.program(input_specs=[mb.TensorSpec(x.shape, dtype=types.fp16)])
    def prog(x):
        y = mb.conv(x=x, weight=w, pad_type="same")
        y = mb.relu(x=mb.add(x=y, y=np.float16(0.5)))
        a, b = mb.split(x=y, num_splits=2, axis=1)  # several outputs
        values, indices = mb.topk(x=mb.reduce_mean(x=a, axes=[2, 3]), k=1, axis=1)
        return mb.mul(x=b, y=np.float16(3)), values, indices, mb.cast(x=indices, dtype="fp32")

    compiled, outs = _both(prog, {"x": x}, arith)
    assert compiled.engine == "compiled"
    assert [o.dtype for o in outs] == [np.float16, np.float16, np.int32, np.float32]
    assert "float()" in compiled.source if arith == "fp32" else "float()" not in compiled.source


def test_every_intermediate_value_is_freed_after_its_last_use():
    mb = _mb()
    x = rng.standard_normal((4, 6)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(x.shape)])
    def prog(x):
        a = mb.relu(x=x)
        unused = mb.exp(x=a)  # nothing reads it: freed at once  # noqa: F841
        b = mb.add(x=a, y=a)
        c = mb.mul(x=b, y=a)  # a's last reading
        return mb.sub(x=c, y=b), mb.square(x=c)

    compiled, _ = _both(prog, {"x": x})
    lines = compiled.source.splitlines()
    produced = {line.split(" = ")[0].strip() for line in lines
                if line.strip().startswith("v") and " = f" not in line and "_o[0]" in line}
    deleted = {name for line in lines if line.strip().startswith("del ")
               for name in line.strip()[4:].split(", ")}
    returned = lines[-1].split("[")[1].rstrip("]").split(", ")
    assert produced - set(returned) <= deleted and not set(returned) & deleted


def test_loops_and_branches_compile_and_state_runs_op_by_op():
    import coremltools as ct
    from coremltools.converters.mil.mil import types

    mb = _mb()

    @mb.program(input_specs=[mb.TensorSpec((2,))])
    def looped(x):
        def cond(v):
            return mb.less(x=mb.reduce_sum(x=v), y=100.0)

        def body(v):
            return mb.mul(x=v, y=2.0)

        return mb.while_loop(_cond=cond, _body=body, loop_vars=(x,))

    compiled, (out,) = _both(looped, {"x": np.array([1.0, 2.0], np.float32)})
    assert compiled.engine == "compiled" and "while _truth(" in compiled.source
    np.testing.assert_array_equal(out, [64.0, 128.0])

    @mb.program(input_specs=[mb.TensorSpec((3,), dtype=types.fp16), mb.TensorSpec((3,))])
    def branched(x, y):  # a branch reading an outer value, in an fp16 program
        big = mb.greater(x=mb.reduce_sum(x=y), y=0.0)
        z = mb.cond(pred=big, _true_fn=lambda: mb.mul(x=x, y=np.float16(2)),
                    _false_fn=lambda: mb.sub(x=x, y=np.float16(1)))
        return mb.add(x=z, y=x)

    for y in (np.ones(3, np.float32), -np.ones(3, np.float32)):
        compiled, _ = _both(branched, {"x": np.arange(3).astype(np.float16), "y": y})
        assert compiled.engine == "compiled"

    @mb.program(input_specs=[mb.StateTensorSpec((2,), dtype=types.fp16),
                             mb.TensorSpec((2,), dtype=types.fp16)],
                opset_version=ct.target.iOS18)
    def stateful(s, x):
        mb.coreml_update_state(state=s, value=mb.add(x=mb.read_state(input=s), y=x))
        return mb.read_state(input=s)

    compiled = CompiledProgram(stateful)
    assert compiled.engine == "interpreter (state)"
    x = np.ones(2, np.float16)
    compiled.run({"x": x})
    np.testing.assert_array_equal(compiled.run({"x": x})[0], [2, 2])


def test_the_check_mode_catches_a_departure(monkeypatch):
    from convbench.mil.compiled import CHECK_ENV

    mb = _mb()
    x = rng.standard_normal((3,)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(x.shape)])
    def prog(x):
        return mb.exp(x=x)

    compiled = CompiledProgram(prog)
    monkeypatch.setenv(CHECK_ENV, "1")
    compiled.run({"x": x})  # equal: passes
    compiled._checked.clear()
    monkeypatch.setattr(compiled, "_fn", lambda a: [a * 1.0000001 + 1e-7])
    with pytest.raises(AssertionError, match="departs from the interpreter"):
        compiled.run({"x": x})


def test_the_runner_compiles_by_default_off_macos(tmp_path):
    import sys

    import torch

    from convbench.convert import convert
    from convbench.records import Artifact
    from convbench.runtimes import open_runner
    from convbench.runtimes.coreml_runner import default_engine

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 6 * 6, 3))
    traced = torch.jit.trace(net.eval(), torch.zeros(1, 1, 8, 8))
    path = tmp_path / "net.pt"
    traced.save(str(path))
    src = Artifact.from_path("torch", path, input_shape=[1, 8, 8], layout="nchw",
                             kind="torchscript")
    conv = convert(src, "coreml-fp32", tmp_path, trust_model=True)
    assert conv.ok, conv.message
    if sys.platform != "darwin":
        assert default_engine() == "compiled"
    x = rng.random((5, 1, 8, 8), dtype=np.float32)
    with open_runner(conv.artifact, engine="compiled") as a, \
            open_runner(conv.artifact, engine="interpreter") as b:
        np.testing.assert_array_equal(a.infer(x), b.infer(x))
        assert a.describe()["ran_on"] == "compiled"
        assert "ran_on" not in b.describe()  # op by op, as asked
        np.testing.assert_allclose(a.infer(x), net(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_planned_convolutions_match_a_padded_convolution_over_every_geometry():
    """The conv plan cuts kernels to the taps that ever read the input (a 5x5 kernel over a
    1x1 map is one tap): the outputs stay those of convolving the zero-padded input."""
    import itertools

    import torch
    import torch.nn.functional as F

    from convbench.mil.ops._util import spatial_pads, torch_pad_arg
    from convbench.mil.ops.conv import plan_conv

    torch.manual_seed(0)
    cases = 0
    for h, w, k, s, pad_type, g in itertools.product([1, 2, 5], [1, 4], [1, 3, 5], [1, 2],
                                                     ["same", "valid", "custom"], [1, 4]):
        pad = torch.tensor([k // 2, k - 1, 1, k // 2]) if pad_type == "custom" else None
        pads = spatial_pads(pad_type, pad, [h, w], [k, k], [s, s], [1, 1])
        if any(n + a + b < k for n, (a, b) in zip((h, w), pads)):
            continue  # a window larger than the padded input: not a valid program
        x = torch.randn(2, 4, h, w)
        weight, bias = torch.randn(4 if g == 4 else 3, 4 // g, k, k), torch.randn(4 if g == 4
                                                                                  else 3)
        want = F.conv2d(F.pad(x, torch_pad_arg(pads)), weight, bias, s, 0, 1, g)
        run = plan_conv(weight, bias, torch.tensor([s, s]), pad_type, pad, torch.tensor([1, 1]),
                        torch.tensor(g))
        got = run(x)
        assert got.shape == want.shape, (h, w, k, s, pad_type, g)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
        cases += 1
    assert cases > 100


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_pointwise_convolutions_run_as_matrix_products_and_scales(layout, monkeypatch):
    """A 1x1 kernel (or one cut to 1x1: 5x5 "same" over a 1x1 map) runs as a GEMM over the
    channels, a depthwise one as a per-channel scale; the values are the convolution's."""
    import torch
    import torch.nn.functional as F

    from convbench.mil.ops import conv as conv_ops

    made = []
    real = conv_ops._pointwise
    monkeypatch.setattr(conv_ops, "_pointwise",
                        lambda *a: made.append(real(*a)) or made[-1])
    torch.manual_seed(1)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    for shape, weight, groups, pad_type in [((32, 48, 3, 3), (96, 48, 1, 1), 1, "valid"),
                                            ((1, 320, 1, 1), (1280, 320, 1, 1), 1, "valid"),
                                            ((4, 64, 1, 1), (64, 1, 5, 5), 64, "same")]:
        x = torch.randn(shape).contiguous(memory_format=fmt)
        w, b = torch.randn(weight), torch.randn(weight[0])
        run = conv_ops.plan_conv(w, b, torch.tensor([1, 1]), pad_type, None,
                                 torch.tensor([1, 1]), torch.tensor(groups))
        pad = weight[2] // 2 if pad_type == "same" else 0
        want = F.conv2d(x, w, b, 1, pad, 1, groups)
        got = run(x)
        assert made[-1] is not None and got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


def test_small_batch_one_convolutions_run_on_the_im2col_kernel(monkeypatch):
    """A batch-1 convolution over few input channels (LeNet-5's, an image stem) runs on
    PyTorch's im2col + GEMM kernel, other batches and wider inputs on oneDNN; each gives the
    convolution's values (asymmetric padding and a cut kernel included)."""
    import torch
    import torch.nn.functional as F

    from convbench.mil.ops import conv as conv_ops

    calls = []
    real = conv_ops._thnn_conv2d
    monkeypatch.setattr(conv_ops, "_thnn_conv2d", lambda *a: calls.append(a[0].shape) or real(*a))
    torch.manual_seed(2)
    cases = [((1, 1, 28, 28), (6, 1, 5, 5), "same", True),
             ((1, 6, 14, 14), (16, 6, 5, 5), "valid", True),
             ((1, 3, 32, 32), (16, 3, 3, 3), "same", True),  # odd total padding: explicit
             ((1, 3, 2, 2), (8, 3, 5, 5), "same", True),  # the kernel cut to 2x2
             ((32, 1, 28, 28), (6, 1, 5, 5), "same", False),
             ((1, 16, 8, 8), (16, 16, 3, 3), "same", False)]
    for shape, weight, pad_type, small in cases:
        x, w, b = torch.randn(shape), torch.randn(weight), torch.randn(weight[0])
        stride = 2 if shape[1] == 3 and shape[2] == 32 else 1
        run = conv_ops.plan_conv(w, b, torch.tensor([stride, stride]), pad_type, None,
                                 torch.tensor([1, 1]), torch.tensor(1))
        if pad_type == "same":
            total = [max((-(-n // stride) - 1) * stride + k - n, 0)
                     for n, k in zip(shape[2:], weight[2:])]
            x_padded = F.pad(x, [total[1] // 2, total[1] - total[1] // 2,
                                 total[0] // 2, total[0] - total[0] // 2])
        else:
            x_padded = x
        want = F.conv2d(x_padded, w, b, stride)
        before = len(calls)
        got = run(x)
        assert (len(calls) > before) == small, (shape, weight)
        assert got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("sequence", [True, False])
def test_a_planned_lstm_is_the_step_by_step_lstm(direction, sequence):
    """The usual LSTM runs on PyTorch's fused kernel: the Python loop over steps (the op's
    definition, kept for other activations, peepholes and clips) gives the same values."""
    import torch

    from convbench.mil.ops.recurrent import lstm, plan_lstm

    torch.manual_seed(1)
    s, b, d, h = 7, 3, 5, 4
    n = 2 if direction == "bidirectional" else 1
    w = {k: torch.randn(4 * h, d if "ih" in k else h) * 0.5
         for k in ("weight_ih", "weight_hh", "weight_ih_back", "weight_hh_back")}
    bias = {"bias": torch.randn(4 * h), "bias_back": torch.randn(4 * h)}
    if n == 1:
        w = {k: v for k, v in w.items() if "back" not in k}
        bias.pop("bias_back")
    const = {"weight_ih_back": None, "weight_hh_back": None, "bias_back": None, **w, **bias,
             "peephole": None, "peephole_back": None, "direction": direction,
             "output_sequence": torch.tensor(sequence), "recurrent_activation": "sigmoid",
             "cell_activation": "tanh", "activation": "tanh", "clip": None}
    x, h0, c0 = torch.randn(s, b, d), torch.randn(b, n * h), torch.randn(b, n * h)
    with torch.inference_mode():
        want = lstm(x, h0, c0, **const)
        got = plan_lstm(**const)(x, h0, c0)
    for g, wv in zip(got, want):
        assert g.shape == wv.shape
        np.testing.assert_allclose(g.numpy(), wv.numpy(), rtol=1e-5, atol=1e-6)
    const["clip"] = torch.tensor(1.0)
    assert plan_lstm(**const) is None  # clipped: the op's own loop


@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (2, 8, 64, 64)])
def test_max_pool_takes_the_faster_kernel_for_the_size_and_the_same_values(shape):
    """Small maps go to torch's max_pool2d, large ones to a maximum of strided views."""
    import torch

    from convbench.mil.ops.pool import _small, max_pool

    x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
    assert _small(x) == (x.numel() <= 40_000)
    got = max_pool(x, torch.tensor([2, 2]), torch.tensor([2, 2]), "valid", None, False).numpy()
    n, c, h, w = shape
    want = x.numpy().reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(got, want)


def test_a_loop_filling_a_sequence_writes_in_place_without_touching_shared_values():
    """A loop that scatters one step at a time into its accumulator writes into it (nothing
    else reads it); its initial value, read again after the loop, is copied first."""
    mb = _mb()
    n = 6

    @mb.program(input_specs=[mb.TensorSpec((n, 3))])
    def prog(x):
        zeros = mb.fill(shape=np.array([n, 3], np.int32), value=0.0)

        def cond(i, acc):
            return mb.less(x=i, y=np.int32(n))

        def body(i, acc):
            row = mb.gather(x=x, indices=mb.expand_dims(x=i, axes=[0]), axis=0)
            acc = mb.scatter(data=acc, indices=mb.expand_dims(x=i, axes=[0]),
                             updates=mb.mul(x=row, y=2.0), axis=0, mode="add")
            return mb.add(x=i, y=np.int32(1)), acc

        _, filled = mb.while_loop(_cond=cond, _body=body, loop_vars=(np.int32(0), zeros))
        return filled, mb.add(x=zeros, y=1.0)  # the initial value, read after the loop

    x = rng.standard_normal((n, 3)).astype(np.float32)
    compiled, (filled, ones) = _both(prog, {"x": x})
    np.testing.assert_array_equal(filled, 2 * x)
    np.testing.assert_array_equal(ones, np.ones((n, 3), np.float32))
    assert ".clone()" in compiled.source  # the shared initial value is copied, once


def test_one_input_ops_overwrite_only_a_new_value_nothing_reads_afterwards():
    """relu/sigmoid/tanh/silu/relu6 write into their input when it is a new tensor of this
    block that nothing reads after them; never into a value read again, one a view was taken
    of, a program input, or a value of an enclosing block that a loop body reads at every
    iteration."""
    from convbench.mil.compiled import UNARY_IN_PLACE

    mb = _mb()

    @mb.program(input_specs=[mb.TensorSpec((2, 3))])
    def prog(x):
        once = mb.relu(x=mb.mul(x=x, y=2.0))  # its input: new, read once -> in place
        twice = mb.mul(x=x, y=3.0)
        kept = mb.add(x=twice, y=mb.sigmoid(x=twice))  # read again -> a new tensor
        given = mb.tanh(x=x)  # the program's input -> a new tensor
        outer = mb.mul(x=x, y=0.5)

        def cond(i, acc):
            return mb.less(x=i, y=np.int32(3))

        def body(i, acc):  # the outer value, read at every iteration -> a new tensor
            return mb.add(x=i, y=np.int32(1)), mb.add(x=acc, y=mb.sigmoid(x=outer))

        _, summed = mb.while_loop(_cond=cond, _body=body,
                                  loop_vars=(np.int32(0), mb.mul(x=x, y=0.0)))
        negated = mb.mul(x=x, y=-1.0)
        view = mb.reshape(x=negated, shape=[3, 2])  # shares negated's data
        late = mb.relu(x=negated)  # negated's last reading, but its view lives on
        return once, kept, given, summed, x, mb.add(x=view, y=0.0), late

    x = rng.standard_normal((2, 3)).astype(np.float32)
    compiled, (once, kept, given, summed, same, view, late) = _both(prog, {"x": x})
    np.testing.assert_array_equal(view, -x.reshape(3, 2))
    np.testing.assert_array_equal(late, np.maximum(-x, 0))
    sigmoid = 1 / (1 + np.exp(-x.astype(np.float64) * 0.5))
    np.testing.assert_allclose(summed, 3 * sigmoid, rtol=1e-6)
    np.testing.assert_allclose(kept, 3 * x + 1 / (1 + np.exp(-3.0 * x)), rtol=1e-6)
    np.testing.assert_array_equal(once, np.maximum(2 * x, 0))
    np.testing.assert_allclose(given, np.tanh(x), rtol=1e-6)
    np.testing.assert_array_equal(same, x)
    used = [f for f in compiled._fn.__globals__.values()
            if any(f is g for g in UNARY_IN_PLACE.values())]
    assert used == [UNARY_IN_PLACE["relu"]]


def test_a_loop_casting_its_state_to_fp16_scatters_each_row_into_the_cast_copy():
    """coremltools' FP16 GRU: the fp32 state buffer is cast to fp16 each step and a row is
    scatter-added into that copy, then cast back. A cast to another type is a new tensor, so
    the row is combined in place (only it widened and rounded) instead of widening and
    rounding the whole buffer each step; the loop's initial value is untouched."""
    from coremltools.converters.mil.mil import types

    from convbench.mil.ops.shape import scatter_into_stored

    mb = _mb()
    n = 6

    @mb.program(input_specs=[mb.TensorSpec((n, 3), dtype=types.fp16)])
    def prog(x):
        zeros = mb.cast(x=mb.fill(shape=np.array([n, 3], np.int32), value=np.float16(0.5)),
                        dtype="fp32")

        def cond(i, acc):
            return mb.less(x=i, y=np.int32(n))

        def body(i, acc):
            stored = mb.cast(x=acc, dtype="fp16")
            index = mb.expand_dims(x=i, axes=[0])
            row = mb.gather(x=x, indices=index, axis=0)
            stored = mb.scatter(data=stored, indices=index, updates=mb.mul(x=row, y=np.float16(3)),
                                axis=0, mode="add")
            return mb.add(x=i, y=np.int32(1)), mb.cast(x=stored, dtype="fp32")

        _, filled = mb.while_loop(_cond=cond, _body=body, loop_vars=(np.int32(0), zeros))
        return filled, mb.add(x=zeros, y=1.0)

    x = (rng.standard_normal((n, 3)) * 100).astype(np.float16)
    compiled, (filled, initial) = _both(prog, {"x": x})
    want = (np.float16(0.5) + (x.astype(np.float32) * 3).astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(filled, want.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(initial, np.full((n, 3), 1.5, np.float32))
    assert any(getattr(f, "func", None) is scatter_into_stored
               for f in compiled._fn.__globals__.values())


@pytest.mark.parametrize("mode", ["add", "sub", "mul", "div", "max", "min"])
@pytest.mark.parametrize("repeated", [False, True])
def test_scattering_into_fp16_storage_matches_the_widened_scatter(mode, repeated):
    import torch

    from convbench.mil.ops.shape import scatter, scatter_into_stored

    data = torch.from_numpy(rng.standard_normal((5, 4)).astype(np.float16))
    updates = torch.from_numpy(rng.standard_normal((2, 4)).astype(np.float32)) + 2
    indices = torch.tensor([3, 3] if repeated else [1, -1])
    want = scatter(data.float(), indices, updates, 0, mode).half()  # the interpreter's way
    got = scatter_into_stored(data.clone(), indices, updates, 0, mode)
    assert got.dtype == torch.float16
    np.testing.assert_array_equal(got.numpy(), want.numpy())
