"""Normalisation, legacy rearrangement, resizing, ND indexing, 3-D, bidirectional LSTM,
detection and random layers, against numpy (or torch) computations of the spec's formulas."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nncheck import run

rng = np.random.default_rng(11)
IMG = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# --- Normalisation ------------------------------------------------------------------------


@pytest.mark.parametrize("across, norm_var", [(True, True), (False, True), (False, False)])
def test_mvn(across, norm_var):  # "mvn"
    got = run({"x": IMG}, lambda b: b.add_mvn("l", "x", "y", across_channels=across,
                                              normalize_variance=norm_var, epsilon=1e-3))[0]
    axes = (1, 2, 3) if across else (2, 3)
    want = IMG - IMG.mean(axis=axes, keepdims=True)
    if norm_var:
        want = want / np.sqrt(IMG.var(axis=axes, keepdims=True) + 1e-3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_layer_normalization_lrn_bias_dot():
    # "layerNormalization", "lrn", "bias", "dot"
    gamma = rng.standard_normal((4, 5)).astype(np.float32)
    beta = rng.standard_normal((4, 5)).astype(np.float32)
    got = run({"x": IMG}, lambda b: b.add_layer_normalization(
        "l", "x", "y", normalized_shape=[4, 5], gamma=gamma, beta=beta, eps=1e-4))[0]
    mean = IMG.mean(axis=(2, 3), keepdims=True)
    var = IMG.var(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(got, (IMG - mean) / np.sqrt(var + 1e-4) * gamma + beta,
                               rtol=1e-5, atol=1e-5)

    got = run({"x": IMG}, lambda b: b.add_lrn("l", "x", "y", alpha=0.3, beta=0.75, local_size=3,
                                              k=2.0))[0]
    want = np.empty_like(IMG)
    for c in range(3):  # window [c - 1, c + 1] across channels, clipped at the ends
        window = (IMG[:, max(c - 1, 0):c + 2] ** 2).sum(axis=1)
        want[:, c] = IMG[:, c] / (2.0 + 0.3 / 3 * window) ** 0.75
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    bc = rng.standard_normal(3).astype(np.float32)
    got = run({"x": IMG}, lambda b: b.add_bias("l", bc, "x", "y", shape_bias=[3]))[0]
    np.testing.assert_allclose(got, IMG + bc[:, None, None], rtol=1e-6)
    bhw = rng.standard_normal((1, 4, 5)).astype(np.float32)
    got = run({"x": IMG}, lambda b: b.add_bias("l", bhw, "x", "y", shape_bias=[1, 4, 5]))[0]
    np.testing.assert_allclose(got, IMG + bhw, rtol=1e-6)

    a = rng.standard_normal((2, 6, 1, 1)).astype(np.float32)
    c = rng.standard_normal((2, 6, 1, 1)).astype(np.float32)
    got = run({"a": a, "c": c}, lambda b: b.add_elementwise("l", ["a", "c"], "y", "DOT"))[0]
    np.testing.assert_allclose(got, (a * c).sum(axis=1, keepdims=True), rtol=1e-5)
    got = run({"a": a, "c": c}, lambda b: b.add_elementwise("l", ["a", "c"], "y", "COS"))[0]
    cos = (a * c).sum(axis=1, keepdims=True) / (
        np.linalg.norm(a, axis=1, keepdims=True) * np.linalg.norm(c, axis=1, keepdims=True))
    np.testing.assert_allclose(got, cos, rtol=1e-5)


# --- Legacy rearrangements ----------------------------------------------------------------

X5 = rng.standard_normal((2, 1, 2, 3, 2)).astype(np.float32)  # [Seq, Batch, C, H, W]


def test_permute_reshape_sequence_repeat():  # "permute", "reshape", "sequenceRepeat"
    got = run({"x": X5}, lambda b: b.add_permute("l", (0, 3, 1, 2), "x", "y"))[0]
    np.testing.assert_array_equal(got, X5.transpose(0, 1, 4, 2, 3))  # [Seq, B, W, C, H]
    got = run({"x": X5}, lambda b: b.add_permute("l", (3, 1, 2, 0), "x", "y"))[0]
    np.testing.assert_array_equal(got, X5.transpose(4, 1, 2, 3, 0))  # [W, B, C, H, Seq]

    got = run({"x": X5}, lambda b: b.add_reshape("l", "x", "y", (3, 4, 1), 0))[0]
    np.testing.assert_array_equal(got, X5.reshape(2, 1, 3, 4, 1))
    got = run({"x": X5}, lambda b: b.add_reshape("l", "x", "y", (3, 4, 1), 1))[0]
    hwc = X5.transpose(0, 1, 3, 4, 2).reshape(2, 1, 4, 1, 3)  # flattened H, W, C; then H', W', C'
    np.testing.assert_array_equal(got, hwc.transpose(0, 1, 4, 2, 3))
    got = run({"x": X5}, lambda b: b.add_reshape("l", "x", "y", (4, 3, 1, 2), 0))[0]
    np.testing.assert_array_equal(got, X5.reshape(4, 1, 3, 1, 2))
    x3 = X5[0, 0]
    got = run({"x": x3}, lambda b: b.add_reshape("l", "x", "y", (6, 1, 2), 0))[0]
    np.testing.assert_array_equal(got, x3.reshape(6, 1, 2))

    got = run({"x": X5}, lambda b: b.add_sequence_repeat("l", 3, "x", "y"))[0]
    np.testing.assert_array_equal(got, np.concatenate([X5, X5, X5], axis=0))


def test_crop():  # "crop"
    got = run({"x": IMG}, lambda b: b.add_crop("l", 1, 2, 1, 0, [0, 0], ["x"], "y"))[0]
    np.testing.assert_array_equal(got, IMG[:, :, 1:, 1:3])
    ref = np.zeros((2, 3, 2, 2), np.float32)
    got = run({"x": IMG, "r": ref}, lambda b: b.add_crop("l", 0, 0, 0, 0, [1, 2], ["x", "r"],
                                                        "y"))[0]
    np.testing.assert_array_equal(got, IMG[:, :, 1:3, 2:4])


def test_reorganize_data():  # "reorganizeData": the spec's example, C = 8, H = 1, W = 2
    x = np.arange(1, 17, dtype=np.float32).reshape(8, 1, 2)
    d2s = np.array([[[1, 5, 2, 6], [9, 13, 10, 14]], [[3, 7, 4, 8], [11, 15, 12, 16]]],
                   np.float32)
    shuffle = np.array([[[1, 3, 2, 4], [5, 7, 6, 8]], [[9, 11, 10, 12], [13, 15, 14, 16]]],
                       np.float32)
    np.testing.assert_array_equal(run({"x": x}, lambda b: b.add_reorganize_data(
        "l", "x", "y", "DEPTH_TO_SPACE", 2))[0], d2s)
    np.testing.assert_array_equal(run({"x": x}, lambda b: b.add_reorganize_data(
        "l", "x", "y", "PIXEL_SHUFFLE", 2))[0], shuffle)
    np.testing.assert_array_equal(run({"x": d2s[None]}, lambda b: b.add_reorganize_data(
        "l", "x", "y", "SPACE_TO_DEPTH", 2))[0], x[None])


# --- Resizing -----------------------------------------------------------------------------


def _spec_grid(start, size, n, mode):
    """NeuralNetwork.proto's SamplingMode points over [start, start + size - 1]."""
    last = size - 1
    if mode == "ALIGN_ENDPOINTS_MODE" and n == 1:
        g = np.array([last / 2])
    elif mode in ("STRICT_ALIGN_ENDPOINTS_MODE", "ALIGN_ENDPOINTS_MODE"):
        g = np.linspace(0, last, n)
    elif mode == "UPSAMPLE_MODE":
        g = np.minimum(last, np.linspace(0, size - size / n, n))
    else:
        spacing = max(1, last) / n
        g = np.minimum(last, np.linspace(0.5 * spacing, 0.5 * spacing + (n - 1) * spacing, n))
    return start + g


def _bilinear(img, ys, xs):
    """img [..., H, W] at the points ys x xs (clamped into the image)."""
    h, w = img.shape[-2:]
    out = np.zeros(img.shape[:-2] + (len(ys), len(xs)), np.float64)
    for i, y in enumerate(np.clip(ys, 0, h - 1)):
        y0 = int(np.floor(y))
        y1, fy = min(y0 + 1, h - 1), y - y0
        for j, x in enumerate(np.clip(xs, 0, w - 1)):
            x0 = int(np.floor(x))
            x1, fx = min(x0 + 1, w - 1), x - x0
            out[..., i, j] = ((1 - fy) * (1 - fx) * img[..., y0, x0] + (1 - fy) * fx *
                              img[..., y0, x1] + fy * (1 - fx) * img[..., y1, x0] +
                              fy * fx * img[..., y1, x1])
    return out


MODES = ["STRICT_ALIGN_ENDPOINTS_MODE", "ALIGN_ENDPOINTS_MODE", "UPSAMPLE_MODE",
         "ROI_ALIGN_MODE"]


@pytest.mark.parametrize("mode", MODES)
def test_resize_bilinear(mode):  # "resizeBilinear"
    got = run({"x": IMG}, lambda b: b.add_resize_bilinear("l", "x", "y", 7, 3, mode=mode))[0]
    want = _bilinear(IMG, _spec_grid(0, 4, 7, mode), _spec_grid(0, 5, 3, mode))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["ALIGN_ENDPOINTS_MODE", "ROI_ALIGN_MODE"])
def test_crop_resize(mode):  # "cropResize"
    x = rng.standard_normal((1, 2, 3, 6, 7)).astype(np.float32)
    roi = np.array([[1, 0.5, 1, 4, 5.5], [0, 0, 2, 5, 6]], np.float32).reshape(2, 1, 5, 1, 1)
    got = run({"x": x, "r": roi}, lambda b: b.add_crop_resize(
        "l", ["x", "r"], "y", target_height=3, target_width=4, mode=mode))[0]
    assert got.shape == (2, 1, 3, 3, 4)
    for n in range(2):
        bi, h0, w0, h1, w1 = roi[n, 0, :, 0, 0]
        want = _bilinear(x[0, int(bi)], _spec_grid(h0, h1 - h0 + 1, 3, mode),
                         _spec_grid(w0, w1 - w0 + 1, 4, mode))
        np.testing.assert_allclose(got[n, 0], want, rtol=1e-5, atol=1e-6)
    # four coordinates, normalised, width first: every box from every batch item
    roi4 = np.array([[0.0, 0.2, 1.0, 0.6]], np.float32).reshape(1, 1, 4, 1, 1)
    got = run({"x": x, "r": roi4}, lambda b: b.add_crop_resize(
        "l", ["x", "r"], "y", target_height=2, target_width=3, mode=mode, normalized_roi=True,
        box_indices_mode="CORNERS_WIDTH_FIRST"))[0]
    h0, h1, w0, w1 = 0.2 * 5, 0.6 * 5, 0.0, 1.0 * 6
    want = _bilinear(x[0], _spec_grid(h0, h1 - h0 + 1, 2, mode), _spec_grid(w0, w1 - w0 + 1, 3,
                                                                           mode))
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)


# --- ND indexing and shaping --------------------------------------------------------------

A = rng.standard_normal((3, 4, 5)).astype(np.float32)


def test_slice_by_size_constant_pad_reverse():  # "sliceBySize", "constantPad", "reverse"
    got = run({"x": A, "b": np.array([1], np.float32)}, lambda b: b.add_slice_by_size(
        "l", ["x", "b"], "y", axis=1, size=2))[0]
    np.testing.assert_array_equal(got, A[:, 1:3])
    got = run({"x": A}, lambda b: b.add_constant_pad("l", ["x"], "y", value=2.5,
                                                     pad_amounts=[0, 1, 2, 0, 1, 3]))[0]
    np.testing.assert_array_equal(got, np.pad(A, [(0, 1), (2, 0), (1, 3)], constant_values=2.5))
    got = run({"x": A}, lambda b: b.add_constant_pad(
        "l", ["x"], "y", value=-1.0, pad_to_given_output_size_mode=True,
        pad_amounts=[0, 0, 6, 0, 0, 8]))[0]
    np.testing.assert_array_equal(got, np.pad(A, [(0, 0), (2, 0), (0, 3)], constant_values=-1))
    amounts = np.array([1, 0, 0, 0, 0, 2], np.float32)
    got = run({"x": A, "p": amounts}, lambda b: b.add_constant_pad("l", ["x", "p"], "y"))[0]
    np.testing.assert_array_equal(got, np.pad(A, [(1, 0), (0, 0), (0, 2)]))
    got = run({"x": A}, lambda b: b.add_reverse("l", "x", "y", reverse_dim=[True, False,
                                                                            True]))[0]
    np.testing.assert_array_equal(got, A[::-1, :, ::-1])


def test_reverse_sequence():  # "reverseSeq"
    lengths = np.array([3, 0, 5], np.float32)
    got = run({"x": A, "n": lengths}, lambda b: b.add_reverse_sequence(
        "l", ["x", "n"], "y", batch_axis=0, seq_axis=2))[0]
    want = A.copy()
    for i, n in enumerate(lengths.astype(int)):
        want[i, :, :n] = A[i, :, :n][:, ::-1]
    np.testing.assert_array_equal(got, want)
    lengths = np.array([2, 4, 1, 3, 0], np.float32)  # batch axis after the sequence axis
    got = run({"x": A, "n": lengths}, lambda b: b.add_reverse_sequence(
        "l", ["x", "n"], "y", batch_axis=2, seq_axis=1))[0]
    want = A.copy()
    for i, n in enumerate(lengths.astype(int)):
        want[:, :n, i] = A[:, :n, i][:, ::-1]
    np.testing.assert_array_equal(got, want)


def test_topk_argsort_cumsum():  # "topK", "argSort", "cumSum"
    vals, idx = run({"x": A}, lambda b: b.add_topk("l", ["x"], ["v", "i"], k=2, axis=1),
                    outputs=("v", "i"))
    order = np.argsort(-A, axis=1)[:, :2]
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_array_equal(vals, np.take_along_axis(A, order, axis=1))
    vals, idx = run({"x": A, "k": np.array([3], np.float32)}, lambda b: b.add_topk(
        "l", ["x", "k"], ["v", "i"], axis=-1, use_bottom_k=True), outputs=("v", "i"))
    order = np.argsort(A, axis=-1)[..., :3]
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_array_equal(vals, np.take_along_axis(A, order, axis=-1))
    np.testing.assert_array_equal(run({"x": A}, lambda b: b.add_argsort(
        "l", "x", "y", axis=2))[0], np.argsort(A, axis=2))
    np.testing.assert_array_equal(run({"x": A}, lambda b: b.add_argsort(
        "l", "x", "y", axis=0, descending=True))[0], np.argsort(-A, axis=0))
    np.testing.assert_allclose(run({"x": A}, lambda b: b.add_cumsum(
        "l", ["x"], "y", axis=1))[0], np.cumsum(A, axis=1), rtol=1e-5, atol=1e-6)
    rev_excl = np.flip(np.cumsum(np.flip(A, 2), axis=2), 2) - A  # [13, 7, 0] of the spec
    np.testing.assert_allclose(run({"x": A, "a": np.array([2], np.float32)}, lambda b: b.add_cumsum(
        "l", ["x", "a"], "y", reverse=True, exclusive=True))[0], rev_excl, rtol=1e-5, atol=1e-5)
    v = np.array([4, 6, 7], np.float32)  # the spec's example
    np.testing.assert_array_equal(run({"x": v}, lambda b: b.add_cumsum(
        "l", ["x"], "y", axis=0, exclusive=True))[0], [0, 4, 10])


def test_gather_nd_scatter_nd():  # "gatherND", "scatterND"
    idx = np.array([[2, 1], [0, 3], [-1, 0]], np.float32)
    got = run({"x": A, "i": idx}, lambda b: b.add_gather_nd("l", ["x", "i"], "y"))[0]
    np.testing.assert_array_equal(got, np.stack([A[2, 1], A[0, 3], A[-1, 0]]))
    upd = rng.standard_normal((3, 5)).astype(np.float32)
    idx2 = np.array([[2, 1], [0, 3], [2, 1]], np.float32)  # a repeated index accumulates
    got = run({"x": A, "i": idx2, "u": upd}, lambda b: b.add_scatter_nd(
        "l", ["x", "i", "u"], "y", mode="ADD"))[0]
    want = A.copy()
    for (i, j), u in zip(idx2.astype(int), upd):
        want[i, j] += u
    np.testing.assert_allclose(got, want, rtol=1e-6)
    got = run({"x": A, "i": idx2[:2], "u": upd[:2]}, lambda b: b.add_scatter_nd(
        "l", ["x", "i", "u"], "y", mode="UPDATE"))[0]
    want = A.copy()
    want[2, 1], want[0, 3] = upd[0], upd[1]
    np.testing.assert_array_equal(got, want)


def test_band_part_triangular_one_hot_where_nonzero_sliding_windows():
    # "matrixBandPart", "lowerTriangular", "upperTriangular", "oneHot", "whereNonZero",
    # "slidingWindows"
    i, j = np.indices((4, 5))
    got = run({"x": A}, lambda b: b.add_matrix_band_part("l", "x", "y", num_lower=1,
                                                         num_upper=2))[0]
    np.testing.assert_array_equal(got, np.where((i - j <= 1) & (j - i <= 2), A, 0))
    got = run({"x": A}, lambda b: b.add_matrix_band_part("l", "x", "y", num_lower=-1,
                                                         num_upper=0))[0]
    np.testing.assert_array_equal(got, np.where(j <= i, A, 0))
    np.testing.assert_array_equal(run({"x": A}, lambda b: b.add_lower_triangular(
        "l", "x", "y", k=-1))[0], np.where(j - i <= -1, A, 0))
    np.testing.assert_array_equal(run({"x": A}, lambda b: b.add_upper_triangular(
        "l", "x", "y", k=1))[0], np.where(j - i >= 1, A, 0))

    ids = np.array([[2, 0, 5], [-1, 3, 1]], np.float32)
    got = run({"x": ids}, lambda b: b.add_one_hot("l", ["x"], "y", one_hot_vector_size=4,
                                                  axis=1, on_value=5.0, off_value=-1.0))[0]
    want = np.full((2, 4, 3), -1.0, np.float32)
    for r in range(2):
        for c in range(3):
            if 0 <= ids[r, c] < 4:
                want[r, int(ids[r, c]), c] = 5.0
    np.testing.assert_array_equal(got, want)
    got = run({"x": ids, "n": np.array([6], np.float32)}, lambda b: b.add_one_hot(
        "l", ["x", "n"], "y"))[0]
    np.testing.assert_array_equal(got, np.stack([(ids == k) for k in range(6)], -1))

    m = np.array([[1, 2, 1], [0, 2, 2], [2, 1, 0]], np.float32)  # the spec's example
    np.testing.assert_array_equal(run({"x": m}, lambda b: b.add_where_nonzero(
        "l", "x", "y"))[0], np.argwhere(m))

    got = run({"x": A}, lambda b: b.add_sliding_windows("l", "x", "y", axis=1, window_size=2,
                                                        step=2))[0]
    np.testing.assert_array_equal(got, np.stack([A[:, 0:2], A[:, 2:4]], axis=1))
    v = np.arange(7, dtype=np.float32)
    got = run({"x": v}, lambda b: b.add_sliding_windows("l", "x", "y", axis=0, window_size=3,
                                                        step=2))[0]
    np.testing.assert_array_equal(got, [[0, 1, 2], [2, 3, 4], [4, 5, 6]])


# --- 3-D convolution and pooling ----------------------------------------------------------

VOL = rng.standard_normal((2, 4, 5, 6, 7)).astype(np.float32)


@pytest.mark.parametrize("padding, stride, groups", [("valid", 1, 1), ("same", 2, 2),
                                                     ("custom", 1, 4)])
def test_convolution3d(padding, stride, groups):  # "convolution3d"
    w = rng.standard_normal((8, 4 // groups, 3, 2, 3)).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)
    custom = {"padding_front": 1, "padding_back": 0, "padding_top": 2, "padding_bottom": 1,
              "padding_left": 0, "padding_right": 2}
    got = run({"x": VOL}, lambda b: b.add_convolution3d(
        "l", 4, 8, 3, 2, 3, w, bias, True, groups=groups, stride_depth=stride,
        stride_height=stride, stride_width=stride, padding_mode=padding, input_name="x",
        output_name="y", **(custom if padding == "custom" else {})))[0]
    x = t(VOL)
    if padding == "same":  # ceil(in / stride) out; an odd padding unit goes after
        pads = []
        for n, k in zip(VOL.shape[:1:-1], (3, 2, 3)[::-1]):  # F.pad: last dim first
            total = max((-(-n // stride) - 1) * stride + k - n, 0)
            pads += [total // 2, total - total // 2]
        x = F.pad(x, pads)
    elif padding == "custom":
        x = F.pad(x, [0, 2, 2, 1, 1, 0])
    want = F.conv3d(x, t(w), t(bias), stride, 0, 1, groups).numpy()
    if padding == "same":
        assert want.shape[2:] == (3, 3, 4)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_deconvolution3d():  # "convolution3d" transposed: W given as [C_out / groups, C_in, ..]
    w = rng.standard_normal((3, 4, 2, 2, 2)).astype(np.float32)
    got = run({"x": VOL}, lambda b: b.add_convolution3d(
        "l", 4, 3, 2, 2, 2, w, None, False, stride_depth=2, stride_height=2, stride_width=2,
        is_deconv=True, input_name="x", output_name="y"))[0]
    want = F.conv_transpose3d(t(VOL), t(w.transpose(1, 0, 2, 3, 4)), stride=2).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_pooling3d_and_global():  # "pooling3d", "globalPooling3d": the spec's example first
    x = np.arange(1, 19, dtype=np.float32).reshape(1, 1, 2, 3, 3)
    got = run({"x": x}, lambda b: b.add_pooling3d("l", "x", "y", "MAX", 2, 2, 2, 1, 1, 1))[0]
    np.testing.assert_array_equal(got, [[[[[14, 15], [17, 18]]]]])
    np.testing.assert_array_equal(run({"x": x}, lambda b: b.add_global_pooling3d(
        "l", "x", "y", "MAX"))[0], [[[[[18]]]]])
    np.testing.assert_allclose(run({"x": VOL}, lambda b: b.add_global_pooling3d(
        "l", "x", "y", "AVERAGE"))[0], VOL.mean(axis=(2, 3, 4), keepdims=True), rtol=1e-5)

    got = run({"x": VOL}, lambda b: b.add_pooling3d(
        "l", "x", "y", "AVERAGE", 2, 3, 2, 2, 2, 2, padding_mode="custom",
        custom_padding_front=1, custom_padding_top=1, custom_padding_right=1,
        average_pooling_count_excludes_padding=True))[0]
    padded = np.pad(VOL, [(0, 0), (0, 0), (1, 0), (1, 0), (0, 1)], constant_values=np.nan)
    od, oh, ow = (6 - 2) // 2 + 1, (7 - 3) // 2 + 1, (8 - 2) // 2 + 1
    want = np.empty((2, 4, od, oh, ow), np.float32)
    for d in range(od):
        for h in range(oh):
            for w in range(ow):
                win = padded[:, :, 2 * d:2 * d + 2, 2 * h:2 * h + 3, 2 * w:2 * w + 2]
                want[:, :, d, h, w] = np.nanmean(win.reshape(2, 4, -1), axis=-1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# --- Bidirectional LSTM -------------------------------------------------------------------


@pytest.mark.parametrize("output_all", [True, False])
def test_bidirectional_lstm_matches_torch(output_all):  # "biDirectionalLSTM"
    seq, batch, inp, hid = 5, 2, 3, 4
    ref = torch.nn.LSTM(inp, hid, bidirectional=True)
    x = rng.standard_normal((seq, batch, inp, 1, 1)).astype(np.float32)
    h0 = rng.standard_normal((2, batch, hid)).astype(np.float32)
    c0 = rng.standard_normal((2, batch, hid)).astype(np.float32)

    def gates(m):  # torch i, f, g, o -> builder's [i, f, o, z]
        i, f, g, o = np.split(m, 4)
        return [i, f, o, g]

    def params(sfx):
        wi = getattr(ref, "weight_ih_l0" + sfx).detach().numpy()
        wh = getattr(ref, "weight_hh_l0" + sfx).detach().numpy()
        bias = (getattr(ref, "bias_ih_l0" + sfx) + getattr(ref, "bias_hh_l0" + sfx)).detach()
        return gates(wh), gates(wi), gates(bias.numpy())

    (rh, rx, rb), (bh, bx, bb) = params(""), params("_reverse")
    names = ("y", "h", "c", "hb", "cb")
    feeds = {"x": x, "h0": h0[0].reshape(1, batch, hid, 1, 1),
             "c0": c0[0].reshape(1, batch, hid, 1, 1), "h1": h0[1].reshape(1, batch, hid, 1, 1),
             "c1": c0[1].reshape(1, batch, hid, 1, 1)}
    y, h, c, hb, cb = run(feeds, lambda b: b.add_bidirlstm(
        "l", rh, rx, rb, bh, bx, bb, hid, inp, ["x", "h0", "c0", "h1", "c1"], list(names),
        output_all=output_all), outputs=names)
    with torch.no_grad():
        want, (wh_, wc_) = ref(t(x[..., 0, 0]), (t(h0), t(c0)))
    want = want.numpy()
    if not output_all:  # [forward's last step, backward's last step (time 0)]
        want = np.concatenate([want[-1, :, :hid], want[0, :, hid:]], axis=-1)[None]
    np.testing.assert_allclose(y[..., 0, 0], want, rtol=1e-5, atol=1e-5)
    for got, ref_state in ((h, wh_[0]), (c, wc_[0]), (hb, wh_[1]), (cb, wc_[1])):
        np.testing.assert_allclose(got.reshape(batch, hid), ref_state.numpy(), rtol=1e-5,
                                   atol=1e-5)


# --- Detection ----------------------------------------------------------------------------


def test_non_maximum_suppression():  # "NonMaximumSuppression"
    # centre x, y, width, height; box 1 overlaps box 0 with IoU 0.6, box 3 overlaps 2 with IoU 1/3
    boxes = np.array([[[0, 0, 2, 2], [0.5, 0, 2, 2], [5, 5, 2, 2], [6, 5, 2, 2],
                       [9, 9, 1, 1]]], np.float32)
    scores = np.array([[[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.6], [0.05, 0.01]]],
                      np.float32)
    outs = ("b", "s", "i", "n")
    b, s, i, n = run({"x": boxes, "c": scores}, lambda bl: bl.add_nms(
        "l", ["x", "c"], list(outs), iou_threshold=0.5, score_threshold=0.1, max_boxes=4),
        outputs=outs)
    np.testing.assert_array_equal(i, [[0, 2, 3, -1]])  # 1 suppressed by 0; 4 below threshold
    np.testing.assert_array_equal(n, [3])
    np.testing.assert_array_equal(b[0, :3], boxes[0, [0, 2, 3]])
    np.testing.assert_array_equal(b[0, 3], 0)
    np.testing.assert_array_equal(s[0, :3], scores[0, [0, 2, 3]])
    # per class: box 1 (class 0) is still suppressed by box 0; dynamic thresholds drop 3
    b, s, i, n = run({"x": boxes, "c": scores, "iou": np.array([0.1], np.float32),
                      "th": np.array([0.65], np.float32)}, lambda bl: bl.add_nms(
        "l", ["x", "c", "iou", "th"], list(outs), max_boxes=3, per_class_suppression=True),
        outputs=outs)
    np.testing.assert_array_equal(i, [[0, 2, -1]])
    np.testing.assert_array_equal(n, [2])
    # no box reaches the threshold: the best-scored box alone
    b, s, i, n = run({"x": boxes, "c": scores}, lambda bl: bl.add_nms(
        "l", ["x", "c"], list(outs), score_threshold=0.99, max_boxes=2), outputs=outs)
    np.testing.assert_array_equal(i, [[0, -1]])
    np.testing.assert_array_equal(n, [1])


# --- Random draws -------------------------------------------------------------------------

DUMMY = {"d": np.zeros(1, np.float32)}
SHAPE = (200, 250)


def _draws(add, feeds=DUMMY):
    y = run(feeds, add)[0]
    assert y.dtype == np.float32 and y.shape == SHAPE
    return y


RANDOM = [
    ("Normal", {"mean": 1.5, "stddev": 2.0}, lambda y: (np.testing.assert_allclose(
        [y.mean(), y.std()], [1.5, 2.0], atol=0.03))),
    ("Uniform", {"minval": -1.0, "maxval": 3.0}, lambda y: (
        np.testing.assert_allclose([y.mean(), y.var()], [1.0, 16 / 12], atol=0.02),
        np.testing.assert_array_less(-1.0 - 1e-6, y), np.testing.assert_array_less(y, 3.0))),
    ("Bernoulli", {"prob": 0.3}, lambda y: (
        np.testing.assert_allclose(y.mean(), 0.3, atol=0.008),
        np.testing.assert_array_equal(np.unique(y), [0, 1]))),
]


@pytest.mark.parametrize("dist, kw, check", RANDOM, ids=[r[0] for r in RANDOM])
def test_random_layers(dist, kw, check):
    # "randomNormalStatic", "randomNormalDynamic", "randomNormalLike", and the Uniform and
    # Bernoulli ones: the distribution's moments; the same seed, the same draws
    name = {"Normal": "normal", "Uniform": "uniform", "Bernoulli": "bernoulli"}[dist]
    static = _draws(lambda b: getattr(b, f"add_random_{name}_static")(
        "l", "y", list(SHAPE), seed=7, **kw))
    check(static)
    again = _draws(lambda b: getattr(b, f"add_random_{name}_static")(
        "l", "y", list(SHAPE), seed=7, **kw))
    np.testing.assert_array_equal(static, again)
    other = _draws(lambda b: getattr(b, f"add_random_{name}_static")(
        "l", "y", list(SHAPE), seed=8, **kw))
    assert not np.array_equal(static, other)
    dynamic = _draws(lambda b: getattr(b, f"add_random_{name}_dynamic")(
        "l", ["s"], "y", seed=7, **kw), {"s": np.array(SHAPE, np.float32)})
    check(dynamic)
    like = _draws(lambda b: getattr(b, f"add_random_{name}_like")(
        "l", "r", "y", seed=3, **kw), {"r": np.zeros(SHAPE, np.float32)})
    check(like)
    unseeded = [_draws(lambda b: getattr(b, f"add_random_{name}_static")(
        "l", "y", list(SHAPE), **kw)) for _ in range(2)]
    assert not np.array_equal(*unseeded)


def test_categorical_distribution():  # "categoricalDistribution"
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]], np.float32)
    y = run({"p": probs}, lambda b: b.add_categorical_distribution(
        "l", "p", "y", num_samples=20000, is_logits=False, seed=5))[0]
    assert y.shape == (2, 20000) and y.dtype == np.float32
    freq = np.stack([(y == k).mean(axis=1) for k in range(3)], axis=1)
    np.testing.assert_allclose(freq, probs, atol=0.012)
    again = run({"p": probs}, lambda b: b.add_categorical_distribution(
        "l", "p", "y", num_samples=20000, is_logits=False, seed=5))[0]
    np.testing.assert_array_equal(y, again)
    logits = np.log(probs)  # temperature 2: softmax(logits / 2) ~ sqrt(probs)
    y = run({"p": logits}, lambda b: b.add_categorical_distribution(
        "l", "p", "y", num_samples=20000, temperature=2.0, seed=6))[0]
    want = np.sqrt(probs) / np.sqrt(probs).sum(axis=1, keepdims=True)
    freq = np.stack([(y == k).mean(axis=1) for k in range(3)], axis=1)
    np.testing.assert_allclose(freq, want, atol=0.012)
