"""Convolution, pooling, linear algebra, normalisation and resizing ops against torch/numpy
oracles written from the ops' documented semantics (coremltools has no value inference here)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from milcheck import inferred, run

rng = np.random.default_rng(1)
IMG = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _same_pads(size, k, s, d, lower=False):
    eff = (k - 1) * d + 1
    total = max((-(-size // s) - 1) * s + eff - size, 0)
    small, big = total // 2, total - total // 2
    return (big, small) if lower else (small, big)


@pytest.mark.parametrize("pad_type, pad, strides, dilations, groups", [
    ("valid", None, [1, 1], [1, 1], 1),
    ("same", None, [2, 2], [1, 1], 1),
    ("same_lower", None, [2, 3], [1, 1], 1),
    ("custom", [1, 2, 0, 3], [1, 2], [2, 1], 1),
    ("same", None, [1, 1], [2, 2], 2),
    ("valid", None, [1, 1], [1, 1], 4),  # depthwise
])
def test_conv(pad_type, pad, strides, dilations, groups):
    w = rng.standard_normal((8, 4 // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    params = {"weight": w, "bias": b, "strides": strides, "pad_type": pad_type,
              "dilations": dilations, "groups": groups}
    if pad is not None:
        params["pad"] = pad
    got = run("conv", {"x": IMG}, params)[0]
    if pad_type == "custom":
        pads = [(pad[0], pad[1]), (pad[2], pad[3])]
    elif pad_type == "valid":
        pads = [(0, 0), (0, 0)]
    else:
        pads = [_same_pads(n, 3, s, d, pad_type == "same_lower")
                for n, s, d in zip(IMG.shape[2:], strides, dilations)]
    x = F.pad(t(IMG), [pads[1][0], pads[1][1], pads[0][0], pads[0][1]])
    want = F.conv2d(x, t(w), t(b), strides, 0, dilations, groups).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_conv1d_without_bias():
    x = rng.standard_normal((2, 3, 11)).astype(np.float32)
    w = rng.standard_normal((5, 3, 4)).astype(np.float32)
    got = run("conv", {"x": x}, {"weight": w, "strides": [2], "pad_type": "valid"})[0]
    np.testing.assert_allclose(got, F.conv1d(t(x), t(w), stride=2).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pad_type, pad", [("valid", None), ("custom", [1, 0, 2, 1]),
                                           ("same", None)])
def test_conv_transpose(pad_type, pad):
    w = rng.standard_normal((4, 6, 3, 3)).astype(np.float32)
    params = {"weight": w, "strides": [2, 2], "pad_type": pad_type}
    if pad:
        params["pad"] = pad
    got = run("conv_transpose", {"x": IMG}, params)[0]
    full = F.conv_transpose2d(t(IMG), t(w), stride=2).numpy()
    if pad_type == "custom":
        want = full[:, :, 1:full.shape[2] - 0, 2:full.shape[3] - 1]
    elif pad_type == "same":
        th, tw = 2 * IMG.shape[2], 2 * IMG.shape[3]
        bh, bw = (full.shape[2] - th) // 2, (full.shape[3] - tw) // 2
        want = full[:, :, bh:bh + th, bw:bw + tw]
    else:
        want = full
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["max_pool", "avg_pool"])
@pytest.mark.parametrize("pad_type, pad, ceil", [("valid", None, False), ("same", None, False),
                                                 ("custom", [1, 1, 1, 1], True)])
def test_pooling(op, pad_type, pad, ceil):
    params = {"kernel_sizes": [3, 3], "strides": [2, 2], "pad_type": pad_type, "ceil_mode": ceil}
    if pad:
        params["pad"] = pad
    if op == "avg_pool":
        params["exclude_padding_from_average"] = True
    got = run(op, {"x": IMG}, params)[0]
    pads = ([(0, 0), (0, 0)] if pad_type == "valid" else [(1, 1), (1, 1)] if pad else
            [_same_pads(n, 3, 2, 1) for n in IMG.shape[2:]])
    if op == "max_pool":
        x = F.pad(t(IMG), [pads[1][0], pads[1][1], pads[0][0], pads[0][1]], value=-np.inf)
        want = F.max_pool2d(x, 3, 2, 0, ceil_mode=ceil).numpy()
    else:
        x = F.pad(t(IMG), [pads[1][0], pads[1][1], pads[0][0], pads[0][1]])
        ones = F.pad(torch.ones(1, 1, *IMG.shape[2:]), [pads[1][0], pads[1][1], pads[0][0],
                                                       pads[0][1]])
        want = (F.avg_pool2d(x, 3, 2, 0, ceil, True, 1) /
                F.avg_pool2d(ones, 3, 2, 0, ceil, True, 1)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_avg_pool_including_padding_divides_by_the_window():
    params = {"kernel_sizes": [2, 2], "strides": [2, 2], "pad_type": "custom", "pad": [1, 1, 1, 1],
              "exclude_padding_from_average": False}
    got = run("avg_pool", {"x": IMG}, params)[0]
    want = F.avg_pool2d(t(IMG), 2, 2, 1, count_include_pad=True).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_l2_pool():
    got = run("l2_pool", {"x": IMG}, {"kernel_sizes": [2, 2], "strides": [2, 2],
                                      "pad_type": "valid"})[0]
    want = np.sqrt(F.avg_pool2d(t(IMG * IMG), 2, 2, divisor_override=1).numpy())
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_linear_and_matmul():
    x = rng.standard_normal((5, 6)).astype(np.float32)
    w = rng.standard_normal((3, 6)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    np.testing.assert_allclose(run("linear", {"x": x}, {"weight": w, "bias": b})[0],
                               x @ w.T + b, rtol=1e-5, atol=1e-6)
    for xs, ys, tx, ty in [((4, 6), (2, 4, 6), False, True), ((2, 6, 4), (2, 6, 5), True, False),
                           ((6,), (6, 3), False, False)]:
        a = rng.standard_normal(xs).astype(np.float32)
        c = rng.standard_normal(ys).astype(np.float32)
        got = run("matmul", {"x": a, "y": c}, {"transpose_x": tx, "transpose_y": ty})[0]
        want = inferred("matmul", {"x": a, "y": c, "transpose_x": tx, "transpose_y": ty})[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_batch_instance_layer_norm():
    c = IMG.shape[1]
    mean, var = rng.standard_normal(c).astype(np.float32), rng.random(c).astype(np.float32) + .5
    gamma, beta = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(
        np.float32)
    got = run("batch_norm", {"x": IMG}, {"mean": mean, "variance": var, "gamma": gamma,
                                         "beta": beta, "epsilon": 1e-3})[0]
    want = F.batch_norm(t(IMG), t(mean), t(var), t(gamma), t(beta), eps=1e-3).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    got = run("instance_norm", {"x": IMG}, {"gamma": gamma, "beta": beta, "epsilon": 1e-5})[0]
    want = F.instance_norm(t(IMG), weight=t(gamma), bias=t(beta), eps=1e-5).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    g2 = rng.standard_normal(IMG.shape[2:]).astype(np.float32)
    got = run("layer_norm", {"x": IMG}, {"axes": [2, 3], "gamma": g2, "beta": g2 * 0.5,
                                         "epsilon": 1e-5})[0]
    want = F.layer_norm(t(IMG), IMG.shape[2:], t(g2), t(g2 * 0.5), eps=1e-5).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    got = run("local_response_norm", {"x": IMG}, {"size": 3, "alpha": 1e-3, "beta": 0.75,
                                                  "k": 1.0})[0]
    want = F.local_response_norm(t(IMG), 3, 1e-3, 0.75, 1.0).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("align", [True, False])
def test_upsample_bilinear_matches_torch(align):
    got = run("upsample_bilinear", {"x": IMG}, {"scale_factor_height": 2.0,
                                                "scale_factor_width": 3.0,
                                                "align_corners": align})[0]
    want = F.interpolate(t(IMG), size=(18, 24), mode="bilinear", align_corners=align).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_upsample_and_resize_nearest():
    got = run("upsample_nearest_neighbor", {"x": IMG}, {"scale_factor_height": 2,
                                                        "scale_factor_width": 3})[0]
    np.testing.assert_array_equal(got, IMG.repeat(2, axis=2).repeat(3, axis=3))
    got = run("resize_nearest_neighbor", {"x": IMG}, {"target_size_height": 18,
                                                      "target_size_width": 16})[0]
    np.testing.assert_array_equal(got, IMG.repeat(2, axis=2).repeat(2, axis=3))


def _space_to_depth_ref(x: np.ndarray, b: int) -> np.ndarray:
    """TensorFlow's SpaceToDepth, which coremltools' TF frontend maps to MIL `space_to_depth`
    (NCHW here): out[n, (i * b + j) * C + c, h, w] = x[n, c, h * b + i, w * b + j]."""
    n, c, h, w = x.shape
    out = np.empty((n, c * b * b, h // b, w // b), x.dtype)
    for i in range(b):
        for j in range(b):
            for ch in range(c):
                out[:, (i * b + j) * c + ch] = x[:, ch, i::b, j::b]
    return out


def test_space_to_depth_and_depth_to_space_against_tensorflow_and_numpy():
    import tensorflow as tf

    x = rng.standard_normal((2, 3, 4, 6)).astype(np.float32)
    want = _space_to_depth_ref(x, 2)
    nhwc = tf.nn.space_to_depth(x.transpose(0, 2, 3, 1), 2).numpy().transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(want, nhwc)  # the oracle is TensorFlow's op
    y = run("space_to_depth", {"x": x}, {"block_size": 2})[0]
    np.testing.assert_array_equal(y, want)
    back = run("depth_to_space", {"x": y}, {"block_size": 2})[0]
    np.testing.assert_array_equal(back, x)  # its inverse, with C > 1 (C = 1 cannot tell)
    z = rng.standard_normal((1, 12, 2, 3)).astype(np.float32)
    d2s = tf.nn.depth_to_space(z.transpose(0, 2, 3, 1), 2).numpy().transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(run("depth_to_space", {"x": z}, {"block_size": 2})[0], d2s)


def test_pixel_shuffle_is_pytorchs():
    x = rng.standard_normal((1, 8, 4, 6)).astype(np.float32)
    np.testing.assert_array_equal(run("pixel_shuffle", {"x": x}, {"upscale_factor": 2})[0],
                                  F.pixel_shuffle(t(x), 2).numpy())
