"""NeuralNetwork layers against numpy/torch oracles of the specification's formulas."""


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nncheck import run

rng = np.random.default_rng(3)
X = rng.standard_normal((2, 3, 4)).astype(np.float32)
Y = rng.standard_normal((2, 3, 4)).astype(np.float32)
UNIT = (rng.random((2, 3, 4)) * 1.8 - 0.9).astype(np.float32)
IMG = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


UNARY = [("sin", np.sin), ("cos", np.cos), ("tan", np.tan), ("sinh", np.sinh),
         ("cosh", np.cosh), ("tanh", np.tanh), ("asinh", np.arcsinh), ("ceil", np.ceil),
         ("floor", np.floor), ("sign", np.sign), ("round", np.round), ("exp2", np.exp2),
         ("erf", lambda v: torch.erf(t(v)).numpy())]
ON_UNIT = [("asin", np.arcsin), ("acos", np.arccos), ("atan", np.arctan),
           ("atanh", np.arctanh)]


@pytest.mark.parametrize("kind, fn", UNARY + ON_UNIT, ids=lambda v: v if isinstance(v, str) else "")
def test_unary_layers(kind, fn):
    x = UNIT if (kind, fn) in ON_UNIT else X
    got = run({"x": x}, lambda b: getattr(b, f"add_{kind}")("l", "x", "y"))[0]
    np.testing.assert_allclose(got, fn(x), rtol=1e-5, atol=1e-6)


def test_acosh_on_values_above_one():  # "acosh"
    x = np.abs(X) + 1
    got = run({"x": x}, lambda b: b.add_acosh("l", "x", "y"))[0]
    np.testing.assert_allclose(got, np.arccosh(x), rtol=1e-5)


# (layer kind, builder suffix, oracle)
BROADCAST = [("addBroadcastable", "add_broadcastable", np.add),
             ("subtractBroadcastable", "subtract_broadcastable", np.subtract),
             ("multiplyBroadcastable", "multiply_broadcastable", np.multiply),
             ("divideBroadcastable", "divide_broadcastable", np.divide),
             ("maxBroadcastable", "max_broadcastable", np.maximum),
             ("minBroadcastable", "min_broadcastable", np.minimum),
             ("floorDivBroadcastable", "floor_div_broadcastable", np.floor_divide),
             ("modBroadcastable", "mod_broadcastable", np.mod),
             ("powBroadcastable", "pow_broadcastable", lambda a, b: np.power(np.abs(a), b))]


@pytest.mark.parametrize("kind, method, fn", BROADCAST, ids=[b[0] for b in BROADCAST])
def test_broadcastable_binaries(kind, method, fn):
    x = np.abs(X) if kind.startswith("pow") else X
    y = Y[0] + 3 if kind in ("divideBroadcastable", "floorDivBroadcastable",
                             "modBroadcastable") else Y[0]
    got = run({"x": x, "z": y}, lambda b: getattr(b, f"add_{method}")("l", ["x", "z"], "y"))[0]
    np.testing.assert_allclose(got, fn(x, y), rtol=1e-5, atol=1e-5)


COMPARE = [("equal", "equal", np.equal), ("notEqual", "not_equal", np.not_equal),
           ("lessThan", "less_than", np.less), ("greaterThan", "greater_than", np.greater)]


@pytest.mark.parametrize("kind, method, fn", COMPARE, ids=[c[0] for c in COMPARE])
def test_comparisons_give_float(kind, method, fn):
    got = run({"x": X, "z": X * (Y > 0)}, lambda b: getattr(b, f"add_{method}")(
        "l", ["x", "z"], "y"))[0]
    np.testing.assert_array_equal(got, fn(X, X * (Y > 0)).astype(np.float32))
    got = run({"x": X}, lambda b: getattr(b, f"add_{method}")("l", ["x"], "y", alpha=0.1))[0]
    np.testing.assert_array_equal(got, fn(X, np.float32(0.1)).astype(np.float32))


def test_less_equal_greater_equal_from_spec():
    """The builder has no helper for these: set the layer kinds on a copied layer."""
    from nncheck import build

    from convbench.nn import NeuralNetworkInterpreter

    for kind, fn in (("lessEqual", np.less_equal), ("greaterEqual", np.greater_equal)):
        spec = build({"x": X.shape, "z": X.shape},
                     lambda b: b.add_less_than("l", ["x", "z"], "y"))
        layer = spec.neuralNetwork.layers[0]
        getattr(layer, kind).SetInParent()
        z = np.where(Y > 0, X, Y)
        got = NeuralNetworkInterpreter(spec).run({"x": X, "z": z})[0]
        np.testing.assert_array_equal(got, fn(X, z).astype(np.float32))


@pytest.mark.parametrize("kind, mode, fn", [("logicalAnd", "AND", np.logical_and),
                                            ("logicalOr", "OR", np.logical_or),
                                            ("logicalXor", "XOR", np.logical_xor)])
def test_logical(kind, mode, fn):
    a, b_ = (X > 0).astype(np.float32), (Y > 0).astype(np.float32)
    got = run({"x": a, "z": b_}, lambda b: b.add_logical("l", ["x", "z"], "y", mode))[0]
    np.testing.assert_array_equal(got, fn(a, b_).astype(np.float32))
    got = run({"x": a}, lambda b: b.add_logical("l", ["x"], "y", "NOT"))[0]  # "logicalNot"
    np.testing.assert_array_equal(got, 1 - a)


ACTIVATIONS = [("RELU", {}, lambda v: np.maximum(v, 0)), ("TANH", {}, np.tanh),
               ("SIGMOID", {}, lambda v: 1 / (1 + np.exp(-v))),
               ("LEAKYRELU", {"params": [0.2]}, lambda v: np.where(v >= 0, v, 0.2 * v)),
               ("ELU", {"params": 0.5}, lambda v: np.where(v >= 0, v, 0.5 * np.expm1(v))),
               ("SCALED_TANH", {"params": [1.5, 0.7]}, lambda v: 1.5 * np.tanh(0.7 * v)),
               ("SIGMOID_HARD", {"params": [0.2, 0.5]}, lambda v: np.clip(.2 * v + .5, 0, 1)),
               ("LINEAR", {"params": [2.0, -1.0]}, lambda v: 2 * v - 1),
               ("SOFTSIGN", {}, lambda v: v / (1 + np.abs(v))),
               ("SOFTPLUS", {}, lambda v: np.log1p(np.exp(v))),
               ("THRESHOLDEDRELU", {"params": 0.3}, lambda v: np.where(v >= .3, v, 0)),
               ("PRELU", {"params": np.array([.1, .2], np.float32)},
                lambda v: np.where(v >= 0, v, np.array([.1, .2])[:, None, None] * v)),
               ("PARAMETRICSOFTPLUS", {"params": [np.array([1., 2.], np.float32),
                                                  np.array([.5, 2.], np.float32)]},
                lambda v: np.array([1., 2.])[:, None, None] * np.log1p(np.exp(
                    np.array([.5, 2.])[:, None, None] * v)))]


@pytest.mark.parametrize("name, kw, fn", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activations(name, kw, fn):  # layer "activation"
    got = run({"x": X}, lambda b: b.add_activation("l", name, "x", "y", **kw))[0]
    np.testing.assert_allclose(got, fn(X), rtol=1e-5, atol=1e-6)


def test_clip_clamped_relu_gelu_unary():  # "clip", "clampedReLU", "gelu", "unary"
    np.testing.assert_allclose(run({"x": X}, lambda b: b.add_clip("l", "x", "y", -.5, .4))[0],
                               np.clip(X, -.5, .4))
    got = run({"x": X}, lambda b: b.add_clamped_relu("l", "x", "y", alpha=.1, beta=.6))[0]
    np.testing.assert_allclose(got, np.where(X >= 0, np.minimum(X, .6), np.minimum(.1 * X, .6)),
                               rtol=1e-6)
    got = run({"x": X}, lambda b: b.add_gelu("l", "x", "y", mode="EXACT"))[0]
    np.testing.assert_allclose(got, F.gelu(t(X)).numpy(), rtol=1e-5, atol=1e-6)
    p = np.abs(X) + .1
    got = run({"x": p}, lambda b: b.add_unary("l", "x", "y", "rsqrt", epsilon=1e-3))[0]
    np.testing.assert_allclose(got, 1 / np.sqrt(p + 1e-3), rtol=1e-5)
    got = run({"x": p}, lambda b: b.add_unary("l", "x", "y", "power", alpha=3.0))[0]
    np.testing.assert_allclose(got, p ** 3, rtol=1e-5)


def test_legacy_elementwise_and_softmax():  # "add", "multiply", "average", "max", "min"
    got = run({"x": X, "z": Y}, lambda b: b.add_elementwise("l", ["x", "z"], "y", "ADD"))[0]
    np.testing.assert_allclose(got, X + Y)
    got = run({"x": X}, lambda b: b.add_elementwise("l", ["x"], "y", "MULTIPLY", alpha=3))[0]
    np.testing.assert_allclose(got, 3 * X)
    for mode, fn in [("AVE", lambda a, c: (a + c) / 2), ("MAX", np.maximum),
                     ("MIN", np.minimum)]:
        got = run({"x": X, "z": Y}, lambda b: b.add_elementwise("l", ["x", "z"], "y", mode))[0]
        np.testing.assert_allclose(got, fn(X, Y), rtol=1e-6)
    got = run({"x": X}, lambda b: b.add_softmax("l", "x", "y"))[0]  # "softmax"
    np.testing.assert_allclose(got, torch.softmax(t(X), dim=-3).numpy(), rtol=1e-6)
    got = run({"x": X}, lambda b: b.add_softmax_nd("l", "x", "y", axis=-1))[0]  # "softmaxND"
    np.testing.assert_allclose(got, torch.softmax(t(X), dim=-1).numpy(), rtol=1e-6)


@pytest.mark.coverage_guard
def test_every_registered_layer_is_executed_by_a_test(executed):
    from convbench.nn.layers import LAYERS

    untested = sorted(set(LAYERS.names()) - executed("nn"))
    assert not untested, f"layers no test in tests/nn runs: {untested}"
