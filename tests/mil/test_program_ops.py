"""Ops that take lists or blocks, recurrent ops, compressed weights, typed execution."""


import numpy as np
import pytest
import torch

from milcheck import inferred, run

rng = np.random.default_rng(2)
X = rng.standard_normal((2, 3, 4)).astype(np.float32)


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


def _run_prog(prog, inputs, arith="fp32"):
    from convbench.mil import Interpreter

    return Interpreter(prog, arith=arith).run(inputs)


def test_concat_stack_interleave():
    mb = _mb()

    @mb.program(input_specs=[mb.TensorSpec(shape=X.shape), mb.TensorSpec(shape=X.shape)])
    def prog(a, b):
        return (mb.concat(values=[a, b], axis=1), mb.concat(values=[a, b], axis=2,
                                                            interleave=True),
                mb.stack(values=[a, b], axis=-1))

    got = _run_prog(prog, {"a": X, "b": 2 * X})
    np.testing.assert_array_equal(got[0], np.concatenate([X, 2 * X], axis=1))
    np.testing.assert_array_equal(got[1], np.stack([X, 2 * X], axis=3).reshape(2, 3, 8))
    np.testing.assert_array_equal(got[2], np.stack([X, 2 * X], axis=-1))


def test_einsum():
    a = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    b = rng.standard_normal((2, 5, 4, 6)).astype(np.float32)
    mb = _mb()

    @mb.program(input_specs=[mb.TensorSpec(shape=a.shape), mb.TensorSpec(shape=b.shape)])
    def prog(a, b):
        return mb.einsum(values=(a, b), equation="nchw,nwhu->nchu")

    np.testing.assert_allclose(_run_prog(prog, {"a": a, "b": b})[0],
                               np.einsum("nchw,nwhu->nchu", a, b), rtol=1e-5, atol=1e-5)


def test_shape_fill_range_from_runtime_values():
    mb = _mb()

    @mb.program(input_specs=[mb.TensorSpec(shape=X.shape)])
    def prog(x):
        s = mb.shape(x=x)
        return mb.fill(shape=s, value=2.5), mb.range_1d(start=1, end=9, step=3), s

    filled, r, s = _run_prog(prog, {"x": X})
    np.testing.assert_array_equal(filled, np.full(X.shape, 2.5, np.float32))
    np.testing.assert_array_equal(r, [1, 4, 7])
    assert s.dtype == np.int32 and s.tolist() == [2, 3, 4]


def test_scatter_gather_nd_one_hot_non_zero():
    idx = np.array([2, 0], np.int32)
    upd = rng.standard_normal((2, 2, 4)).astype(np.float32)
    combine = {"update": lambda a, u: u, "add": np.add, "sub": np.subtract, "mul": np.multiply,
               "div": np.divide, "max": np.maximum, "min": np.minimum}
    for mode, fn in combine.items():
        want = X.copy()
        for j, i in enumerate(idx):
            want[:, i] = fn(want[:, i], upd[:, j])
        got = run("scatter", {"data": X, "updates": upd}, {"indices": idx, "axis": 1,
                                                            "mode": mode})[0]
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=mode)
    along = np.array([[[1, 0, 2, 1]]] * 2, np.int32)
    up2 = rng.standard_normal((2, 1, 4)).astype(np.float32)
    want = inferred("scatter_along_axis", {"data": X, "indices": along, "updates": up2,
                                           "axis": 1, "mode": "update"})[0]
    got = run("scatter_along_axis", {"data": X, "updates": up2},
              {"indices": along, "axis": 1, "mode": "update"})[0]
    np.testing.assert_allclose(got, want)
    nd = np.array([[1, 2], [0, 0]], np.int32)
    np.testing.assert_array_equal(run("gather_nd", {"x": X}, {"indices": nd})[0],
                                  X[[1, 0], [2, 0]])
    ids = np.array([0, 3, 1], np.int32)
    np.testing.assert_array_equal(run("one_hot", {"indices": ids}, {"one_hot_vector_size": 4})[0],
                                  np.eye(4, dtype=np.float32)[ids])
    np.testing.assert_array_equal(run("non_zero", {"x": X > 0.5})[0], np.argwhere(X > 0.5))


def test_lstm_matches_torch():
    """MIL lstm (gates i, f, o, z; one bias) against torch.nn.LSTM (gates i, f, g, o)."""
    seq, batch, inp, hid = 5, 2, 3, 4
    ref = torch.nn.LSTM(inp, hid)
    w_ih, w_hh = ref.weight_ih_l0.detach().numpy(), ref.weight_hh_l0.detach().numpy()
    bias = (ref.bias_ih_l0 + ref.bias_hh_l0).detach().numpy()

    def ifoz(w):  # torch i, f, g, o -> MIL i, f, o, z
        i, f, g, o = np.split(w, 4)
        return np.concatenate([i, f, o, g])

    x = rng.standard_normal((seq, batch, inp)).astype(np.float32)
    h0 = rng.standard_normal((batch, hid)).astype(np.float32)
    c0 = rng.standard_normal((batch, hid)).astype(np.float32)
    out, h, c = run("lstm", {"x": x, "initial_h": h0, "initial_c": c0},
                    {"weight_ih": ifoz(w_ih), "weight_hh": ifoz(w_hh), "bias": ifoz(bias),
                     "output_sequence": True}, opset=None)
    with torch.no_grad():
        want, (wh, wc) = ref(torch.from_numpy(x), (torch.from_numpy(h0)[None],
                                                     torch.from_numpy(c0)[None]))
    np.testing.assert_allclose(out, want.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, wh[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c, wc[0].numpy(), rtol=1e-5, atol=1e-6)


def test_gru_and_rnn_follow_their_documented_equations():
    seq, batch, inp, hid = 4, 2, 3, 5
    x = rng.standard_normal((seq, batch, inp)).astype(np.float32)
    h0 = rng.standard_normal((batch, hid)).astype(np.float32)
    w_ih = rng.standard_normal((3 * hid, inp)).astype(np.float32) * 0.5
    w_hh = rng.standard_normal((3 * hid, hid)).astype(np.float32) * 0.5
    b = rng.standard_normal(3 * hid).astype(np.float32)
    out, h = run("gru", {"x": x, "initial_h": h0}, {"weight_ih": w_ih, "weight_hh": w_hh,
                                                     "bias": b, "output_sequence": True})
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    ht, outs = h0, []
    for t in range(seq):  # r, o, z blocks; r scales W_ho h
        xr, xo, xz = np.split(x[t] @ w_ih.T + b, 3, axis=-1)
        hr, ho, hz = np.split(ht @ w_hh.T, 3, axis=-1)
        r, z = sig(xr + hr), sig(xz + hz)
        ht = (1 - z) * np.tanh(xo + r * ho) + z * ht
        outs.append(ht)
    np.testing.assert_allclose(out, np.stack(outs), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h, ht, rtol=1e-5, atol=1e-5)
    w1 = rng.standard_normal((hid, inp)).astype(np.float32)
    w2 = rng.standard_normal((hid, hid)).astype(np.float32) * 0.3
    out, h = run("rnn", {"x": x, "initial_h": h0}, {"weight_ih": w1, "weight_hh": w2,
                                                     "direction": "reverse"})
    ht = h0
    for t in reversed(range(seq)):
        ht = np.tanh(x[t] @ w1.T + ht @ w2.T)
    np.testing.assert_allclose(h, ht, rtol=1e-5, atol=1e-5)
    assert out.shape == (1, batch, hid)


def test_while_loop_and_cond():
    mb = _mb()

    @mb.program(input_specs=[mb.TensorSpec(shape=(3,))])
    def prog(x):
        def cond(i, acc):
            return mb.less(x=i, y=5)

        def body(i, acc):
            return mb.add(x=i, y=1), mb.mul(x=acc, y=2.0)

        i, acc = mb.while_loop(_cond=cond, _body=body, loop_vars=(0, x))
        pred = mb.greater(x=mb.reduce_sum(x=acc), y=0.0)
        branch = mb.cond(pred=pred, _true_fn=lambda: mb.add(x=acc, y=1.0),
                         _false_fn=lambda: mb.sub(x=acc, y=1.0))
        return i, acc, branch

    x = np.array([1.0, -2.0, 0.5], np.float32)
    i, acc, branch = _run_prog(prog, {"x": x})
    assert i.reshape(-1).tolist() == [5]
    np.testing.assert_array_equal(acc, x * 32)
    np.testing.assert_array_equal(branch, x * 32 - 1)  # sum is negative: the false branch


def test_compressed_weights_decompress_like_coremltools():
    import coremltools as ct

    ios16, ios18 = ct.target.iOS16, ct.target.iOS18
    q = rng.integers(0, 255, (4, 3)).astype(np.uint8)
    cases = [
        ("constexpr_affine_dequantize", ios16, {"quantized_data": q,
                                                "zero_point": np.uint8(7),
                                                "scale": np.float32(0.25), "axis": 0}),
        ("constexpr_affine_dequantize", ios16, {"quantized_data": q,
                                                "zero_point": np.arange(4).astype(np.uint8),
                                                "scale": np.linspace(.1, .4, 4).astype(
                                                    np.float32), "axis": 0}),
        ("constexpr_lut_to_dense", ios16, {"lut": np.linspace(-1, 1, 4).astype(np.float32),
                                           "indices": rng.integers(0, 255, 3).astype(
                                               np.uint8), "shape": np.array([3, 4], np.uint32)}),
        ("constexpr_sparse_to_dense", ios16, {"nonzero_data": np.arange(1, 6).astype(
            np.float32), "mask": np.array([0b10110101], np.uint8),
            "shape": np.array([2, 4], np.uint32)}),
        ("constexpr_cast", ios16, {"source_val": X.astype(np.float16), "output_dtype": "fp32"}),
        ("constexpr_blockwise_shift_scale", ios18, {
            "data": rng.integers(-8, 7, (4, 6)).astype(np.int8),
            "scale": rng.random((2, 3)).astype(np.float32),
            "offset": rng.integers(-2, 2, (2, 3)).astype(np.int8)}),
    ]
    for op, opset, values in cases:
        want = inferred(op, values, opset)[0]
        got = _constexpr_through_interpreter(op, values, opset)
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=op)


def _constexpr_through_interpreter(op, values, opset):
    mb = _mb()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1,))], opset_version=opset)
    def prog(d):
        return mb.identity(x=getattr(mb, op)(**values)), d

    return _run_prog(prog, {"d": np.zeros(1, np.float32)})[0]


def test_fp16_programs_round_between_ops():
    mb = _mb()
    from coremltools.converters.mil.mil import types

    @mb.program(input_specs=[mb.TensorSpec(shape=(4,), dtype=types.fp16)])
    def prog(x):
        y = mb.add(x=x, y=np.float16(1e-4))
        return mb.sub(x=y, y=x)

    x = np.array([1.0, 2.0, 1000.0, 0.0], np.float16)
    got = _run_prog(prog, {"x": x})[0]
    assert got.dtype == np.float16
    # 1 + 1e-4 rounds to 1 in fp16; 0 + 1e-4 survives: the intermediate was stored in fp16
    np.testing.assert_array_equal(got, (((x + np.float16(1e-4)).astype(np.float16)) - x))
    assert got[0] == 0 and got[3] == np.float16(1e-4)


def test_ops_that_only_move_values_take_fp16_as_stored(monkeypatch):
    """Reshape, gather, an updating scatter, casts, pads and max pools get fp16 inputs as
    stored (widening could not change their bits, only copy them); an adding scatter computes
    in fp32, as every op with arithmetic: the results are those of widening everything."""
    mb = _mb()
    from coremltools.converters.mil.mil import types

    from dataclasses import replace

    from convbench.mil import Interpreter
    from convbench.mil.ops import OPS

    x = rng.standard_normal((6, 4)).astype(np.float16)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape, dtype=types.fp16)])
    def prog(x):
        r = mb.reshape(x=x, shape=[3, 8])
        g = mb.gather(x=r, indices=np.array([2, 0], np.int32), axis=0)
        first = mb.slice_by_size(x=g, begin=[0, 0], size=[1, 8])
        up = mb.scatter(data=r, indices=np.array([1], np.int32), updates=first, axis=0,
                        mode="update")
        add = mb.scatter(data=r, indices=np.array([1, 1], np.int32), updates=g, axis=0,
                         mode="add")
        image = mb.reshape(x=x, shape=[1, 1, 6, 4])
        padded = mb.pad(x=image, pad=[1, 0, 0, 2], mode="constant",
                        constant_val=np.float16(-2.5))
        mirrored = mb.pad(x=image, pad=[0, 0, 1, 1], mode="reflect")
        pooled = mb.max_pool(x=image, kernel_sizes=[2, 2], strides=[2, 2], pad_type="same")
        return (up, add, mb.cast(x=mb.cast(x=r, dtype="fp32"), dtype="fp16"), padded,
                mirrored, pooled)

    from convbench.mil.ops.shape import _pads_with_stored_values

    assert not _pads_with_stored_values({"mode": "constant", "constant_val": 0.1})  # not fp16
    assert _pads_with_stored_values({"mode": "constant", "constant_val": -2.5})
    seen = {}
    for name in ("reshape", "gather", "scatter", "cast", "pad", "max_pool"):
        impl = OPS.get(name)

        def spy(*a, _fn=impl.fn, _name=name, **kw):
            seen.setdefault(_name, set()).update(
                str(v.dtype) for k, v in kw.items() if isinstance(v, torch.Tensor)
                and v.is_floating_point() and k != "constant_val")  # a const, widened at load
            return _fn(*a, **kw)
        monkeypatch.setitem(OPS._entries, name, replace(impl, fn=spy, plan=None))
    up, add, back, padded, mirrored, pooled = Interpreter(prog).run({"x": x})
    assert seen["reshape"] == seen["gather"] == seen["pad"] == seen["max_pool"] \
        == {"torch.float16"}
    assert seen["scatter"] == {"torch.float16", "torch.float32"}  # update as stored, add wide
    r = x.reshape(3, 8)
    want_up = r.copy()
    want_up[1] = r[2]
    np.testing.assert_array_equal(up, want_up)
    want_add = r.astype(np.float32)
    want_add[1] += r[2].astype(np.float32) + r[0].astype(np.float32)
    np.testing.assert_array_equal(add, want_add.astype(np.float16))
    np.testing.assert_array_equal(back, r)
    image = x.reshape(6, 4)
    np.testing.assert_array_equal(padded[0, 0], np.pad(image, [(1, 0), (0, 2)],
                                                       constant_values=-2.5))
    np.testing.assert_array_equal(mirrored[0, 0], np.pad(image, [(0, 0), (1, 1)], "reflect"))
    np.testing.assert_array_equal(pooled[0, 0], image.reshape(3, 2, 2, 2).max(axis=(1, 3)))
    assert padded.dtype == mirrored.dtype == pooled.dtype == np.float16


def test_one_input_ops_whose_fp16_kernel_is_exact_take_fp16_as_stored(monkeypatch):
    """Under fp32 arithmetic an FP16 program's relu/silu/... run on fp16 as stored only where
    this machine's fp16 kernel gives, for all 65,536 fp16 inputs, fp32 arithmetic's bits
    rounded; the outputs are those of widening every input, bit for bit, either way."""
    mb = _mb()
    from coremltools.converters.mil.mil import types

    from convbench.mil import Interpreter
    from convbench.mil import interpreter as interp_mod
    from convbench.mil.ops import OPS

    assert interp_mod.fp16_exact(OPS.get("relu").fn)  # exact by construction: a selection
    assert not interp_mod.fp16_exact(lambda x: x * 3 / 3)  # two roundings in fp16
    assert not interp_mod.fp16_exact(lambda x: x.float())  # not an fp16 result
    x = np.concatenate([rng.standard_normal(500) * 4, [0.0, -0.0, 65504.0, -np.inf, np.nan]])
    x = x.astype(np.float16)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape, dtype=types.fp16)])
    def prog(x):
        return (mb.silu(x=x), mb.erf(x=x), mb.sigmoid(x=x), mb.relu6(x=x), mb.exp(x=x),
                mb.softsign(x=x))

    interp = Interpreter(prog)
    for step in interp.block.steps:
        assert step.as_stored == interp_mod.fp16_exact(step.fn), step.op_type
    got = interp.run({"x": x})
    monkeypatch.setattr(interp_mod, "FP16_EXACT_CANDIDATES", frozenset())
    wide = Interpreter(prog)
    assert not any(step.as_stored for step in wide.block.steps)
    for g, w in zip(got, wide.run({"x": x})):
        assert g.dtype == np.float16
        nan = np.isnan(w)  # a NaN stays a NaN (its payload is the kernel's)
        np.testing.assert_array_equal(np.isnan(g), nan)
        np.testing.assert_array_equal(g[~nan].view(np.int16), w[~nan].view(np.int16))


def test_two_input_arithmetic_takes_fp16_as_stored_where_its_kernel_is_exact(monkeypatch):
    """add/sub/mul/real_div/maximum/minimum of fp16 values (run-time or constant, broadcast or
    0-d) run on fp16 as stored where the sampled check passes; the outputs have the bits of
    widening both inputs, including overflow to infinity, subnormals and NaN."""
    mb = _mb()
    from coremltools.converters.mil.mil import types

    from convbench.mil import Interpreter
    from convbench.mil import interpreter as interp_mod
    from convbench.mil.compiled import CompiledProgram
    from convbench.mil.ops import OPS

    assert interp_mod.fp16_exact_binary(OPS.get("add").fn)
    assert not interp_mod.fp16_exact_binary(lambda x, y: x * 3 / 3 + y)  # rounds thrice
    assert not interp_mod.fp16_exact_binary(lambda x, y: x.float() + y)  # not an fp16 result
    x = np.concatenate([rng.standard_normal(250) * 300, rng.standard_normal(250) * 1e-6,
                        [0.0, -0.0, 65504.0, -np.inf, np.nan, 6e-8]]).astype(np.float16)
    y = np.concatenate([rng.standard_normal(250) * 300, rng.standard_normal(250) * 1e-3,
                        [1e-7, 0.0, 65504.0, 3.0, 2.0, -0.0]]).astype(np.float16)
    row = rng.standard_normal((1, x.size)).astype(np.float16)
    spec = [mb.TensorSpec(shape=(1, x.size), dtype=types.fp16)] * 2

    @mb.program(input_specs=spec)
    def prog(x, y):
        return (mb.add(x=x, y=y), mb.sub(x=x, y=row), mb.mul(x=x, y=y),
                mb.real_div(x=x, y=y), mb.maximum(x=x, y=np.float16(0.5)),
                mb.minimum(x=np.float16(3.0), y=y), mb.mul(x=x, y=np.float16(1 / 6)))

    inputs = {"x": x[None], "y": y[None]}
    interp = Interpreter(prog)
    assert all(step.as_stored for step in interp.block.steps)
    got = interp.run(inputs)
    compiled = CompiledProgram(prog).run(inputs)
    monkeypatch.setattr(interp_mod, "FP16_EXACT_BINARY", frozenset())
    wide = Interpreter(prog)
    assert not any(step.as_stored for step in wide.block.steps)
    for g, c, w in zip(got, compiled, wide.run(inputs)):
        assert g.dtype == c.dtype == np.float16
        nan = np.isnan(w)
        np.testing.assert_array_equal(np.isnan(g), nan)
        np.testing.assert_array_equal(g[~nan].view(np.int16), w[~nan].view(np.int16))
        np.testing.assert_array_equal(c.view(np.int16), g.view(np.int16))


def test_planned_ops_take_a_constant_where_a_run_time_input_goes():
    """A pool, linear, reshape, concat or conv over a constant (coremltools folds no pool; it
    keeps large constants with skip_const_by_size) loads and runs: the constant is bound to
    the planned function, on both engines."""
    mb = _mb()
    from convbench.mil import Interpreter
    from convbench.mil.compiled import CompiledProgram

    grid = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)

    @mb.program(input_specs=[mb.TensorSpec((1, 1, 2, 2))])
    def prog(x):
        pooled = mb.max_pool(x=grid, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid")
        averaged = mb.avg_pool(x=grid, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid")
        conv = mb.conv(x=grid, weight=np.ones((1, 1, 3, 3), np.float32), strides=[1, 1],
                       pad_type="valid")
        flat = mb.reshape(x=mb.add(x=x, y=pooled), shape=[1, 4])
        lin = mb.linear(x=np.ones((1, 4), np.float32), weight=np.eye(4, dtype=np.float32))
        cat = mb.concat(values=[np.ones((1, 2), np.float32), np.zeros((1, 2), np.float32)],
                        axis=1)
        return (mb.add(x=flat, y=mb.add(x=lin, y=cat)), averaged, conv)

    x = np.full((1, 1, 2, 2), 0.5, np.float32)
    want = [np.array([[7.5, 9.5, 14.5, 16.5]]), np.array([2.5, 4.5, 10.5, 12.5]),
            np.array([45.0, 54.0, 81.0, 90.0])]
    for engine in (Interpreter(prog), CompiledProgram(prog)):
        got = engine.run({"x": x})
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.ravel(), w.ravel())


def test_fp16_arithmetic_mode_differs_from_fp32_arithmetic():
    mb = _mb()
    from coremltools.converters.mil.mil import types

    x = (rng.random(4096) * 0.01 + 1).astype(np.float16)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape, dtype=types.fp16)])
    def prog(x):
        return mb.reduce_sum(x=x, axes=[0])

    wide = _run_prog(prog, {"x": x}, arith="fp32")[0]
    narrow = _run_prog(prog, {"x": x}, arith="fp16")[0]
    exact = x.astype(np.float64).sum()
    assert wide == np.float16(np.float32(x.astype(np.float32).sum()))
    assert abs(float(wide) - exact) <= abs(float(narrow) - exact)


def test_unknown_op_is_reported_before_any_input_runs(monkeypatch):
    from convbench.mil import Interpreter, UnsupportedOpError
    from convbench.mil.ops import OPS

    mb = _mb()

    @mb.program(input_specs=[mb.TensorSpec(shape=(2,))])
    def prog(x):
        return mb.erf(x=mb.relu(x=x))

    monkeypatch.delitem(OPS._entries, "erf")
    with pytest.raises(UnsupportedOpError, match=r"erf \(op 'erf_\d+' in main\)"):
        Interpreter(prog)


@pytest.mark.coverage_guard
def test_every_registered_op_is_executed_by_a_test(executed):
    from convbench.mil.ops import OPS

    untested = sorted(set(OPS.names()) - executed("mil"))
    assert not untested, f"ops no test in tests/mil runs: {untested}"
