"""Each MIL op against an oracle: coremltools' own value inference where it has one, else an
independent numpy/torch computation of the op's documented semantics."""

import numpy as np
import pytest

from milcheck import inferred, run

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 4)).astype(np.float32)
Y = rng.standard_normal((3, 4)).astype(np.float32)
POS = (rng.random((2, 3, 4)) + 0.1).astype(np.float32)
UNIT = (rng.random((2, 3, 4)) * 1.8 - 0.9).astype(np.float32)
IMG = rng.standard_normal((2, 4, 7, 6)).astype(np.float32)
I32 = np.array([[3, -2, 7], [0, 5, -9]], dtype=np.int32)

UNARY = ["abs", "ceil", "cos", "cosh", "erf", "exp", "exp2", "floor", "round", "sign", "sin",
         "sinh", "square", "tan", "tanh", "relu", "relu6", "sigmoid", "softsign", "softplus",
         "identity"]
ON_UNIT = ["acos", "asin", "atan", "atanh"]
ON_POS = [("sqrt", {}), ("rsqrt", {"epsilon": 1e-3}), ("log", {"epsilon": 1e-3}),
          ("inverse", {"epsilon": 1e-2})]
BINARY = ["add", "sub", "mul", "real_div", "maximum", "minimum", "equal", "not_equal", "less",
          "less_equal", "greater", "greater_equal", "floor_div", "mod"]
WITH_PARAMS = [
    ("clip", {"alpha": -0.5, "beta": 0.7}), ("threshold", {"alpha": 0.2}),
    ("leaky_relu", {"alpha": 0.1}), ("elu", {"alpha": 0.7}), ("thresholded_relu", {"alpha": 0.3}),
    ("clamped_relu", {"alpha": 0.2, "beta": 0.8}), ("sigmoid_hard", {"alpha": 0.3, "beta": 0.4}),
    ("scaled_tanh", {"alpha": 1.5, "beta": 0.6}),
    ("linear_activation", {"alpha": 2.0, "beta": -1.0}),
    ("softmax", {"axis": 1}), ("softmax", {"axis": -1}),
    ("reduce_sum", {"axes": [1], "keep_dims": True}), ("reduce_mean", {"axes": [0, 2]}),
    ("reduce_max", {"axes": [-1]}), ("reduce_min", {"axes": None}),
    ("reduce_prod", {"axes": [1, 2]}), ("reduce_l1_norm", {"axes": [2]}),
    ("reduce_l2_norm", {"axes": [1]}), ("reduce_sum_square", {"axes": [0]}),
    ("reduce_log_sum_exp", {"axes": [2]}), ("reduce_argmax", {"axis": 1}),
    ("reduce_argmin", {"axis": -1, "keep_dims": True}),
    ("reshape", {"shape": [3, -1, 2]}), ("reshape", {"shape": [0, -1, 2]}),
    ("transpose", {"perm": [2, 0, 1]}),
    ("expand_dims", {"axes": [0, -1]}), ("flatten2d", {"axis": 1}),
    ("slice_by_index", {"begin": [0, 2, 1], "end": [2, 0, 4], "stride": [1, -1, 2]}),
    ("slice_by_index", {"begin": [1, 0, 0], "end": [0, 3, 4],
                        "squeeze_mask": [True, False, False]}),
    ("slice_by_index", {"begin": [0, -2, 0], "end": [2, 3, -1], "begin_mask": [True, False, True],
                        "end_mask": [False, True, False]}),
    ("slice_by_size", {"begin": [0, 1, 1], "size": [2, -1, 2]}),
    ("gather", {"indices": np.array([2, -1, 0], np.int32), "axis": 1}),
    ("gather", {"indices": np.array([[1, 0]], np.int32), "axis": 0}),
    ("gather_along_axis", {"indices": np.array([[[0, 2, 1, 1]]] * 2, np.int32), "axis": 1}),
    ("tile", {"reps": [1, 2, 1]}), ("reverse", {"axes": [0, 2]}),
    ("split", {"num_splits": 2, "axis": 2}), ("split", {"split_sizes": [1, 2], "axis": 1}),
    ("pad", {"pad": np.array([1, 0, 2, 1], np.int32), "mode": "constant", "constant_val": 0.5}),
    ("pad", {"pad": np.array([1, 1, 2, 2], np.int32), "mode": "reflect"}),
    ("pad", {"pad": np.array([0, 2, 1, 0], np.int32), "mode": "replicate"}),
    ("topk", {"k": 2, "axis": -1}), ("argsort", {"axis": 1, "ascending": True}),
    ("band_part", {"lower": 1, "upper": 0}), ("l2_norm", {"epsilon": 1e-6}),
]


def _compare(got, want, tol):
    for g, w in zip(got, want if isinstance(want, (list, tuple)) else [want]):
        assert g.shape == w.shape, (g.shape, w.shape)
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


def _vi(op, tensors, params, tol=1e-6):
    want = inferred(op, {**tensors, **params})
    assert all(w is not None for w in want), f"coremltools has no value inference for {op}"
    _compare(run(op, tensors, params), want, tol)


@pytest.mark.parametrize("op", UNARY)
def test_unary(op):
    _vi(op, {"x": X}, {})


@pytest.mark.parametrize("op", ON_UNIT)
def test_unary_on_unit_interval(op):
    _vi(op, {"x": UNIT}, {})


def test_reduce_log_sum():
    _vi("reduce_log_sum", {"x": POS}, {"axes": [1]})


@pytest.mark.parametrize("op, params", ON_POS)
def test_unary_with_epsilon(op, params):
    _vi(op, {"x": POS}, params)


@pytest.mark.parametrize("op", BINARY)
def test_binary_broadcasts(op):
    y = Y if op not in ("floor_div", "mod", "real_div") else np.abs(Y) + 0.5
    _vi(op, {"x": X, "y": y}, {})


def test_binary_on_int32():
    y = np.array([2, -3, 4], dtype=np.int32)
    for op in ("add", "sub", "mul", "floor_div", "mod", "maximum"):
        _vi(op, {"x": I32, "y": y}, {})


def test_logical_ops():
    a, b = X > 0, Y > 0
    for op in ("logical_and", "logical_or", "logical_xor"):
        _vi(op, {"x": a, "y": b}, {})
    _vi("logical_not", {"x": a}, {})


def test_pow_select_cast():
    _vi("pow", {"x": POS, "y": Y}, {})
    cond = (X > 0)
    got = run("select", {"cond": cond, "a": X, "b": -X})[0]
    np.testing.assert_array_equal(got, np.where(cond, X, -X))
    _vi("cast", {"x": X * 3}, {"dtype": "int32"})  # truncation toward zero, as numpy


@pytest.mark.parametrize("op, params", WITH_PARAMS, ids=lambda v: v if isinstance(v, str) else "")
def test_op_with_parameters(op, params):
    _vi(op, {"x": X}, params, tol=1e-5)


def test_prelu_and_softplus_parametric_are_per_channel():
    alpha = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    _vi("prelu", {"x": IMG}, {"alpha": alpha})
    _vi("softplus_parametric", {"x": IMG}, {"alpha": alpha, "beta": alpha + 1})


@pytest.mark.parametrize("mode", ["EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION"])
def test_gelu(mode):
    _vi("gelu", {"x": X}, {"mode": mode}, tol=1e-5)


def test_silu_and_squeeze():
    np.testing.assert_allclose(run("silu", {"x": X})[0], X / (1 + np.exp(-X)), rtol=1e-6)
    x = X.reshape(1, 2, 1, 3, 4)
    _vi("squeeze", {"x": x}, {"axes": [0, 2]})
    _vi("squeeze", {"x": x}, {})


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_cumsum(exclusive, reverse):
    # coremltools' own value inference breaks on exclusive=True: numpy is the oracle here
    x = X[:, :, ::-1] if reverse else X
    want = np.cumsum(x, axis=2) - (x if exclusive else 0)
    want = want[:, :, ::-1] if reverse else want
    got = run("cumsum", {"x": X}, {"axis": 2, "exclusive": exclusive, "reverse": reverse})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
