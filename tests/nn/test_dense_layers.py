"""Convolution, pooling, inner products, embeddings, normalisation and recurrent layers."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nncheck import run

rng = np.random.default_rng(5)
IMG = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


@pytest.mark.parametrize("padding, stride, groups, dilation", [
    ("valid", 1, 1, 1), ("same", 2, 1, 1), ("same", 1, 2, 2), ("valid", 2, 4, 1)])
def test_convolution(padding, stride, groups, dilation):  # "convolution"
    w = rng.standard_normal((6 if groups != 4 else 8, 4 // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(w.shape[0]).astype(np.float32)
    got = run({"x": IMG}, lambda bl: bl.add_convolution(
        "l", kernel_channels=4 // groups, output_channels=w.shape[0], height=3, width=3,
        stride_height=stride, stride_width=stride, border_mode=padding, groups=groups,
        W=w.transpose(2, 3, 1, 0), b=b, has_bias=True, input_name="x", output_name="y",
        dilation_factors=[dilation, dilation]))[0]
    x = t(IMG)
    if padding == "same":  # BOTTOM_RIGHT_HEAVY: the odd unit after
        pads = []
        for n in IMG.shape[:1:-1]:
            eff = 2 * dilation + 1
            total = max((-(-n // stride) - 1) * stride + eff - n, 0)
            pads += [total // 2, total - total // 2]
        x = F.pad(x, pads)
    want = F.conv2d(x, t(w), t(b), stride, 0, dilation, groups).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_deconvolution():
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)  # [C_in, C_out, kh, kw]
    got = run({"x": IMG}, lambda bl: bl.add_convolution(
        "l", kernel_channels=4, output_channels=3, height=3, width=3, stride_height=2,
        stride_width=2, border_mode="valid", groups=1, W=w.transpose(2, 3, 0, 1), b=None,
        has_bias=False, is_deconv=True, input_name="x", output_name="y"))[0]
    np.testing.assert_allclose(got, F.conv_transpose2d(t(IMG), t(w), stride=2).numpy(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind, padding", [("MAX", "VALID"), ("AVERAGE", "SAME"),
                                           ("MAX", "INCLUDE_LAST_PIXEL"), ("L2", "VALID")])
def test_pooling(kind, padding):  # "pooling"
    got = run({"x": IMG}, lambda bl: bl.add_pooling(
        "l", height=3, width=3, stride_height=2, stride_width=2, layer_type=kind,
        padding_type=padding, input_name="x", output_name="y", exclude_pad_area=True,
        padding_top=1, padding_bottom=1, padding_left=1, padding_right=1)
        if padding == "INCLUDE_LAST_PIXEL" else bl.add_pooling(
        "l", height=3, width=3, stride_height=2, stride_width=2, layer_type=kind,
        padding_type=padding, input_name="x", output_name="y", exclude_pad_area=True))[0]
    x = t(IMG)
    if kind == "MAX" and padding == "VALID":
        want = F.max_pool2d(x, 3, 2)
    elif kind == "MAX":
        want = F.max_pool2d(x, 3, 2, 1, ceil_mode=True)
    elif kind == "L2":
        want = torch.sqrt(F.avg_pool2d(x * x, 3, 2, divisor_override=1))
    else:
        pads = []
        for n in IMG.shape[:1:-1]:
            total = max((-(-n // 2) - 1) * 2 + 3 - n, 0)
            pads += [total // 2, total - total // 2]
        sums = F.avg_pool2d(F.pad(x, pads), 3, 2, divisor_override=1)
        counts = F.avg_pool2d(F.pad(torch.ones(1, 1, 9, 8), pads), 3, 2, divisor_override=1)
        want = sums / counts
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_global_pooling():
    got = run({"x": IMG}, lambda bl: bl.add_pooling(
        "l", 0, 0, 1, 1, "AVERAGE", "VALID", "x", "y", is_global=True))[0]
    np.testing.assert_allclose(got, IMG.mean(axis=(2, 3), keepdims=True), rtol=1e-5)


def test_inner_product_batched_matmul_embeddings():
    # "innerProduct", "batchedMatmul", "embeddingND", "embedding"
    x = rng.standard_normal((5, 6)).astype(np.float32)
    w = rng.standard_normal((3, 6)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    got = run({"x": x}, lambda bl: bl.add_inner_product("l", w, b, 6, 3, True, "x", "y"))[0]
    np.testing.assert_allclose(got, x @ w.T + b, rtol=1e-5, atol=1e-6)
    x4 = x.reshape(5, 6, 1, 1)
    got = run({"x": x4}, lambda bl: bl.add_inner_product("l", w, b, 6, 3, True, "x", "y"))[0]
    np.testing.assert_allclose(got, (x @ w.T + b).reshape(5, 3, 1, 1), rtol=1e-5, atol=1e-6)
    got = run({"x": x}, lambda bl: bl.add_batched_mat_mul(
        "l", ["x"], "y", weight_matrix_rows=6, weight_matrix_columns=3, W=w.T, bias=b))[0]
    np.testing.assert_allclose(got, x @ w.T + b, rtol=1e-5, atol=1e-6)
    a = rng.standard_normal((2, 4, 6)).astype(np.float32)
    got = run({"a": a, "c": a}, lambda bl: bl.add_batched_mat_mul(
        "l", ["a", "c"], "y", transpose_b=True))[0]
    np.testing.assert_allclose(got, a @ a.transpose(0, 2, 1), rtol=1e-5, atol=1e-5)
    table = rng.standard_normal((7, 10)).astype(np.float32)  # [embedding size, vocab]
    ids = np.array([[3], [0], [9]], np.float32)
    got = run({"x": ids}, lambda bl: bl.add_embedding_nd("l", "x", "y", 10, 7, table))[0]
    np.testing.assert_array_equal(got, table.T[[3, 0, 9]])
    ids4 = ids.reshape(3, 1, 1, 1)
    got = run({"x": ids4}, lambda bl: bl.add_embedding("l", table, None, 10, 7, False,
                                                      "x", "y"))[0]
    np.testing.assert_array_equal(got, table.T[[3, 0, 9]].reshape(3, 7, 1, 1))


def test_batchnorm_l2normalize_scale_padding_upsample():
    # "batchnorm", "l2normalize", "scale", "padding", "upsample"
    c = 4
    gamma, beta = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(
        np.float32)
    mean, var = rng.standard_normal(c).astype(np.float32), rng.random(c).astype(np.float32) + .5
    got = run({"x": IMG}, lambda bl: bl.add_batchnorm("l", c, gamma, beta, mean, var, "x", "y",
                                                      epsilon=1e-3))[0]
    want = F.batch_norm(t(IMG), t(mean), t(var), t(gamma), t(beta), eps=1e-3).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    got = run({"x": IMG}, lambda bl: bl.add_l2_normalize("l", "x", "y", epsilon=1e-6))[0]
    norms = np.sqrt((IMG ** 2).sum(axis=(1, 2, 3), keepdims=True) + 1e-6)
    np.testing.assert_allclose(got, IMG / norms, rtol=1e-5)
    got = run({"x": IMG}, lambda bl: bl.add_scale("l", gamma, beta, True, "x", "y",
                                                  shape_scale=[c, 1, 1], shape_bias=[c, 1, 1]))[0]
    np.testing.assert_allclose(got, IMG * gamma[:, None, None] + beta[:, None, None], rtol=1e-6)
    got = run({"x": IMG}, lambda bl: bl.add_padding("l", left=1, right=2, top=0, bottom=1,
                                                    value=0.5, input_name="x",
                                                    output_name="y"))[0]
    np.testing.assert_array_equal(got, np.pad(IMG, [(0, 0), (0, 0), (0, 1), (1, 2)],
                                              constant_values=0.5))
    got = run({"x": IMG}, lambda bl: bl.add_padding("l", left=2, right=1, top=1, bottom=1,
                                                    padding_type="reflection", input_name="x",
                                                    output_name="y"))[0]
    np.testing.assert_array_equal(got, np.pad(IMG, [(0, 0), (0, 0), (1, 1), (2, 1)],
                                              mode="reflect"))
    got = run({"x": IMG}, lambda bl: bl.add_upsample("l", 2, 3, "x", "y", mode="NN"))[0]
    np.testing.assert_array_equal(got, IMG.repeat(2, axis=2).repeat(3, axis=3))


def test_uni_lstm_matches_torch_with_nn_clipping():  # "uniDirectionalLSTM"
    seq, batch, inp, hid = 6, 2, 3, 4
    ref = torch.nn.LSTM(inp, hid)
    wi, wh = ref.weight_ih_l0.detach().numpy(), ref.weight_hh_l0.detach().numpy()
    bias = (ref.bias_ih_l0 + ref.bias_hh_l0).detach().numpy()
    x = rng.standard_normal((seq, batch, inp, 1, 1)).astype(np.float32)

    def gates(m):  # torch i, f, g, o -> builder's [i, f, o, z]
        i, f, g, o = np.split(m, 4)
        return [i, f, o, g]

    def add(bl):
        bl.add_unilstm("l", gates(wh), gates(wi), gates(bias), hid, inp,
                       ["x", "h0", "c0"], ["y", "h", "c"], output_all=True)

    h0 = np.zeros((1, batch, hid, 1, 1), np.float32)
    y, h, c = run({"x": x, "h0": h0, "c0": h0}, add, outputs=("y", "h", "c"))
    with torch.no_grad():
        want, (wh_, wc_) = ref(t(x[..., 0, 0]))
    np.testing.assert_allclose(y[..., 0, 0], want.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h.reshape(batch, hid), wh_[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.reshape(batch, hid), wc_[0].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("inner", ["SIGMOID", "SIGMOID_HARD"])
def test_gru_and_simple_rnn_equations(inner):  # "gru", "simpleRecurrent"
    seq, batch, inp, hid = 5, 2, 3, 4
    x = rng.standard_normal((seq, batch, inp, 1, 1)).astype(np.float32)
    W = [rng.standard_normal((hid, inp)).astype(np.float32) for _ in range(3)]  # z, r, o
    R = [rng.standard_normal((hid, hid)).astype(np.float32) * .5 for _ in range(3)]
    B = [rng.standard_normal(hid).astype(np.float32) for _ in range(3)]
    h0 = np.zeros((1, batch, hid, 1, 1), np.float32)
    y, h = run({"x": x, "h0": h0}, lambda bl: bl.add_gru(
        "l", R, W, B, hid, inp, ["x", "h0"], ["y", "h"], output_all=True,
        inner_activation=inner), outputs=("y", "h"))
    if inner == "SIGMOID":
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    else:  # recurrent layers' hard sigmoid has the fixed alpha 0.2, beta 0.5
        sig = lambda v: np.clip(0.2 * v + 0.5, 0, 1)  # noqa: E731
    ht, outs = np.zeros((batch, hid), np.float32), []
    for step in range(seq):
        xt = x[step, :, :, 0, 0]
        z = sig(xt @ W[0].T + ht @ R[0].T + B[0])
        r = sig(xt @ W[1].T + ht @ R[1].T + B[1])
        o = np.tanh(xt @ W[2].T + (ht * r) @ R[2].T + B[2])
        ht = (1 - z) * o + z * ht
        outs.append(ht)
    np.testing.assert_allclose(y[..., 0, 0], np.stack(outs), rtol=1e-5, atol=1e-5)
    w1, r1 = W[0], R[0]
    y, h = run({"x": x, "h0": h0}, lambda bl: bl.add_simple_rnn(
        "l", r1, w1, B[0], hid, inp, "TANH", ["x", "h0"], ["y", "h"]), outputs=("y", "h"))
    ht = np.zeros((batch, hid), np.float32)
    for step in range(seq):
        ht = np.tanh(x[step, :, :, 0, 0] @ w1.T + ht @ r1.T + B[0])
    np.testing.assert_allclose(h.reshape(batch, hid), ht, rtol=1e-5, atol=1e-5)
