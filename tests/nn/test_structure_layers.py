"""Shape, slicing, gather/scatter, constants, reductions and control-flow layers."""

import numpy as np
import pytest

from nncheck import run

rng = np.random.default_rng(4)
X = rng.standard_normal((2, 3, 4)).astype(np.float32)


def test_reshapes_and_flattens():
    # "reshapeStatic", "rankPreservingReshape", "reshapeDynamic", "reshapeLike", "flattenTo2D"
    np.testing.assert_array_equal(run({"x": X}, lambda b: b.add_reshape_static(
        "l", "x", "y", [4, 6]))[0], X.reshape(4, 6))
    np.testing.assert_array_equal(run({"x": X}, lambda b: b.add_rank_preserving_reshape(
        "l", "x", "y", [0, -1, 2]))[0], X.reshape(2, 6, 2))
    shape = np.array([3, 8], np.float32)
    np.testing.assert_array_equal(run({"x": X, "s": shape}, lambda b: b.add_reshape_dynamic(
        "l", ["x", "s"], "y"))[0], X.reshape(3, 8))
    ref = np.zeros((6, 4), np.float32)
    np.testing.assert_array_equal(run({"x": X, "r": ref}, lambda b: b.add_reshape_like(
        "l", ["x", "r"], "y"))[0], X.reshape(6, 4))
    np.testing.assert_array_equal(run({"x": X}, lambda b: b.add_flatten_to_2d(
        "l", "x", "y", axis=1))[0], X.reshape(2, 12))


@pytest.mark.parametrize("mode", [0, 1])
def test_legacy_flatten(mode):  # "flatten": [.., C, H, W] -> [.., C*H*W, 1, 1]
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    got = run({"x": x}, lambda b: b.add_flatten("l", mode, "x", "y"))[0]
    want = (x if mode == 0 else x.transpose(0, 2, 3, 1)).reshape(2, -1, 1, 1)
    np.testing.assert_array_equal(got, want)


def test_transpose_concat_split_stack_squeeze_expand():
    # "transpose", "concatND", "concat", "splitND", "split", "stack", "squeeze", "expandDims"
    np.testing.assert_array_equal(run({"x": X}, lambda b: b.add_transpose(
        "l", [2, 0, 1], "x", "y"))[0], X.transpose(2, 0, 1))
    np.testing.assert_array_equal(run({"x": X, "z": 2 * X}, lambda b: b.add_concat_nd(
        "l", ["x", "z"], "y", axis=-1))[0], np.concatenate([X, 2 * X], axis=-1))
    np.testing.assert_array_equal(run({"x": X, "z": 2 * X}, lambda b: b.add_elementwise(
        "l", ["x", "z"], "y", "CONCAT"))[0], np.concatenate([X, 2 * X], axis=-3))
    a, c = run({"x": X}, lambda b: b.add_split_nd("l", "x", ["y", "w"], axis=2,
                                                   split_sizes=[1, 3]), outputs=("y", "w"))
    np.testing.assert_array_equal(a, X[:, :, :1])
    np.testing.assert_array_equal(c, X[:, :, 1:])
    x6 = rng.standard_normal((6, 2, 2)).astype(np.float32)
    parts = run({"x": x6}, lambda b: b.add_split("l", "x", ["y", "w"]), outputs=("y", "w"))
    np.testing.assert_array_equal(parts[1], x6[3:])
    np.testing.assert_array_equal(run({"x": X, "z": X}, lambda b: b.add_stack(
        "l", ["x", "z"], "y", axis=1))[0], np.stack([X, X], axis=1))
    x1 = X.reshape(1, 2, 1, 3, 4)
    np.testing.assert_array_equal(run({"x": x1}, lambda b: b.add_squeeze(
        "l", "x", "y", axes=[0, 2]))[0], X)
    np.testing.assert_array_equal(run({"x": x1}, lambda b: b.add_squeeze(
        "l", "x", "y", squeeze_all=True))[0], X)
    np.testing.assert_array_equal(run({"x": X}, lambda b: b.add_expand_dims(
        "l", "x", "y", axes=[0, -1]))[0], X[None, ..., None])


def test_slices():  # "sliceStatic", "sliceDynamic", "slice"
    got = run({"x": X}, lambda b: b.add_slice_static(
        "l", "x", "y", begin_ids=[0, 2, 1], end_ids=[2, 0, 4], strides=[1, -1, 2],
        begin_masks=[False] * 3, end_masks=[False] * 3))[0]
    np.testing.assert_array_equal(got, X[0:2, 2:0:-1, 1:4:2])
    begin = np.array([1, 0, 1], np.float32)
    got = run({"x": X, "b": begin}, lambda b: b.add_slice_dynamic(
        "l", ["x", "b"], "y", end_ids=[2, 3, 3], squeeze_masks=[True, False, False]))[0]
    np.testing.assert_array_equal(got, X[1, 0:3, 1:3])
    got = run({"x": X}, lambda b: b.add_slice("l", "x", "y", "width", 1, -1, 2))[0]
    np.testing.assert_array_equal(got, X[:, :, 1:-1:2])


def test_gather_scatter():  # "gather", "gatherAlongAxis", "scatter", "scatterAlongAxis"
    idx = np.array([2, 0], np.float32)
    np.testing.assert_array_equal(run({"x": X, "i": idx}, lambda b: b.add_gather(
        "l", ["x", "i"], "y", axis=1))[0], X[:, [2, 0]])
    along = np.array([[[0, 2, 1, 1]]] * 2, np.float32)
    np.testing.assert_array_equal(run({"x": X, "i": along}, lambda b: b.add_gather_along_axis(
        "l", ["x", "i"], "y", axis=1))[0], np.take_along_axis(X, along.astype(int), axis=1))
    upd = rng.standard_normal((2, 4)).astype(np.float32)
    got = run({"x": X[0], "i": np.array([0, 2], np.float32), "u": upd},
              lambda b: b.add_scatter("l", ["x", "i", "u"], "y", axis=0, mode="ADD"))[0]
    want = X[0].copy()
    want[[0, 2]] += upd
    np.testing.assert_allclose(got, want, rtol=1e-6)
    u2 = rng.standard_normal((2, 1, 4)).astype(np.float32)
    i2 = np.array([[[1, 0, 2, 1]]] * 2, np.float32)
    got = run({"x": X, "i": i2, "u": u2}, lambda b: b.add_scatter_along_axis(
        "l", ["x", "i", "u"], "y", axis=1, mode="UPDATE"))[0]
    want = X.copy()
    np.put_along_axis(want, i2.astype(int), u2, axis=1)
    np.testing.assert_array_equal(got, want)


def test_constants_shapes_fills_ranges():
    # "getShape", "loadConstantND", "loadConstant", "fillDynamic", "fillStatic", "fillLike",
    # "rangeStatic", "rangeDynamic", "tile", "broadcastToStatic", "broadcastToLike",
    # "broadcastToDynamic", "whereBroadcastable"
    np.testing.assert_array_equal(run({"x": X}, lambda b: b.add_get_shape("l", "x", "y"))[0],
                                  [2, 3, 4])
    c = rng.standard_normal((2, 2)).astype(np.float32)
    got = run({"x": X}, lambda b: (b.add_load_constant_nd("c", "k", c, c.shape),
                                   b.add_add_broadcastable("l", ["k", "k"], "y")))[0]
    np.testing.assert_array_equal(got, 2 * c)
    c3 = rng.standard_normal((1, 2, 2)).astype(np.float32)
    got = run({"x": X}, lambda b: (b.add_load_constant("c", "k", c3, c3.shape),
                                   b.add_copy("l", "k", "y")))[0]
    np.testing.assert_array_equal(got, c3)
    shape = np.array([2, 5], np.float32)
    np.testing.assert_array_equal(run({"s": shape}, lambda b: b.add_fill_dynamic(
        "l", "s", "y", value=1.5))[0], np.full((2, 5), 1.5, np.float32))
    np.testing.assert_array_equal(run({"x": X}, lambda b: b.add_fill_static(
        "l", "y", [3, 2], value=-1.0))[0], np.full((3, 2), -1.0, np.float32))
    np.testing.assert_array_equal(run({"x": X}, lambda b: b.add_fill_like(
        "l", "x", "y", value=2.0))[0], np.full(X.shape, 2.0, np.float32))
    np.testing.assert_array_equal(run({"x": X}, lambda b: b.add_range_static(
        "l", "y", end=7, start=1, step=2))[0], [1, 3, 5])
    end = np.array([5.0], np.float32)
    np.testing.assert_array_equal(run({"e": end}, lambda b: b.add_range_dynamic(
        "l", ["e"], "y", start=1, step=1))[0], [1, 2, 3, 4])
    np.testing.assert_array_equal(run({"x": X}, lambda b: b.add_tile("l", "x", "y", reps=[
        1, 2, 1]))[0], np.tile(X, (1, 2, 1)))
    row = X[0, 0]
    np.testing.assert_array_equal(run({"x": row}, lambda b: b.add_broadcast_to_static(
        "l", "x", "y", [3, 4]))[0], np.broadcast_to(row, (3, 4)))
    np.testing.assert_array_equal(run({"x": row, "r": X}, lambda b: b.add_broadcast_to_like(
        "l", ["x", "r"], "y"))[0], np.broadcast_to(row, X.shape))
    np.testing.assert_array_equal(run({"x": row, "s": np.array([2, 4], np.float32)},
                                      lambda b: b.add_broadcast_to_dynamic(
                                          "l", ["x", "s"], "y"))[0], np.broadcast_to(row, (2, 4)))
    cond = (X > 0).astype(np.float32)
    got = run({"c": cond, "a": X, "z": -X},
              lambda b: b.add_where_broadcastable("l", ["c", "a", "z"], "y"))[0]
    np.testing.assert_array_equal(got, np.where(X > 0, X, -X))


REDUCE = [("reduceSum", "sum", np.sum), ("reduceMean", "mean", np.mean),
          ("reduceMax", "max", np.max), ("reduceMin", "min", np.min),
          ("reduceProd", "prod", np.prod), ("reduceL1", "l1", lambda v, axis, keepdims:
                                            np.abs(v).sum(axis=axis, keepdims=keepdims)),
          ("reduceL2", "l2", lambda v, axis, keepdims:
           np.sqrt((v * v).sum(axis=axis, keepdims=keepdims))),
          ("reduceSumSquare", "sumsquare", lambda v, axis, keepdims:
           (v * v).sum(axis=axis, keepdims=keepdims)),
          ("reduceLogSumExp", "logsumexp", lambda v, axis, keepdims:
           np.log(np.exp(v).sum(axis=axis, keepdims=keepdims)))]


@pytest.mark.parametrize("kind, method, fn", REDUCE, ids=[r[0] for r in REDUCE])
def test_reductions(kind, method, fn):
    got = run({"x": X}, lambda b: getattr(b, f"add_reduce_{method}")(
        "l", "x", "y", axes=[1, 2], keepdims=True))[0]
    np.testing.assert_allclose(got, fn(X, axis=(1, 2), keepdims=True), rtol=1e-5)


def test_reduce_log_sum_arg_and_legacy_reduce():  # "reduceLogSum", "argMax", "argMin", "reduce"
    p = np.abs(X) + 0.5
    got = run({"x": p}, lambda b: b.add_reduce_logsum("l", "x", "y", axes=[0],
                                                       keepdims=False))[0]
    np.testing.assert_allclose(got, np.log(p.sum(axis=0)), rtol=1e-5)
    np.testing.assert_array_equal(run({"x": X}, lambda b: b.add_argmax(
        "l", "x", "y", axis=2, keepdims=False))[0], X.argmax(2))
    np.testing.assert_array_equal(run({"x": X}, lambda b: b.add_argmin(
        "l", "x", "y", axis=1, keepdims=True))[0], X.argmin(1)[:, None])
    got = run({"x": X}, lambda b: b.add_reduce("l", "x", "y", axis="HW", mode="avg"))[0]
    np.testing.assert_allclose(got, X.mean(axis=(1, 2), keepdims=True), rtol=1e-6)


def test_loop_with_condition_and_counter():  # "loop", "copy", "lessThan", "loopBreak"
    from coremltools.models.neural_network import NeuralNetworkBuilder

    def add(b):
        b.add_load_constant_nd("zero", "i", np.zeros(1, np.float32), (1,))
        b.add_copy("c0", "x", "acc")
        loop = b.add_loop("loop", max_iterations=0)
        cond = NeuralNetworkBuilder(nn_spec=loop.loop.conditionNetwork,
                                    disable_rank5_shape_mapping=True)
        cond.add_less_than("lt", ["i"], "go", alpha=4)
        loop.loop.conditionVar = "go"
        body = NeuralNetworkBuilder(nn_spec=loop.loop.bodyNetwork,
                                    disable_rank5_shape_mapping=True)
        body.add_elementwise("double", ["acc", "acc"], "acc2", "ADD")
        body.add_copy("c1", "acc2", "acc")
        body.add_elementwise("inc", ["i"], "i2", "ADD", alpha=1.0)
        body.add_copy("c2", "i2", "i")
        b.add_copy("out", "acc", "y")

    np.testing.assert_allclose(run({"x": X}, add)[0], X * 16)  # 4 iterations, doubling


def test_for_loop_with_break_and_branch():  # "loopBreak", "loopContinue", "branch"
    from coremltools.models.neural_network import NeuralNetworkBuilder

    def add(b):
        b.add_load_constant_nd("zero", "i", np.zeros(1, np.float32), (1,))
        b.add_copy("c0", "x", "acc")
        loop = b.add_loop("loop", max_iterations=10)
        body = NeuralNetworkBuilder(nn_spec=loop.loop.bodyNetwork,
                                    disable_rank5_shape_mapping=True)
        body.add_elementwise("inc", ["i"], "i2", "ADD", alpha=1.0)
        body.add_copy("ci", "i2", "i")
        body.add_greater_than("gt", ["i"], "stop", alpha=2.5)
        branch = body.add_branch("br", "stop")
        ifb = NeuralNetworkBuilder(nn_spec=branch.branch.ifBranch,
                                   disable_rank5_shape_mapping=True)
        ifb.add_loop_break("brk")
        elseb = NeuralNetworkBuilder(nn_spec=branch.branch.elseBranch,
                                     disable_rank5_shape_mapping=True)
        elseb.add_loop_continue("cont")
        body.add_elementwise("never", ["acc"], "acc", "ADD", alpha=100.0)
        b.add_copy("out", "i", "y")

    np.testing.assert_array_equal(run({"x": X}, add)[0], [3.0])


def test_copy_keeps_values():
    np.testing.assert_array_equal(run({"x": X}, lambda b: b.add_copy("l", "x", "y"))[0], X)
