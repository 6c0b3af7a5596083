"""The MIL ops real models brought beyond the zoo's (issue 13): resizing and sampling, space and
batch moves, N-d scatter and slice updates, attention, quantization, lists, random draws,
state and NMS, each against an independent oracle: TensorFlow's or PyTorch's own kernel of the
same documented semantics, numpy, or the op's documented example."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from milcheck import inferred, run

rng = np.random.default_rng(5)
IMG = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


def _ct():
    import coremltools as ct

    return ct


def _run_prog(prog, inputs):
    from convbench.mil import Interpreter

    return Interpreter(prog).run(inputs)


def _tf():
    import tensorflow as tf

    return tf


def _nhwc(a):
    return np.transpose(a, (0, 2, 3, 1))


def _nchw(a):
    return np.transpose(np.asarray(a), (0, 3, 1, 2))


# -- resizing and sampling ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "UNALIGN_CORNERS",
                                  "DEFAULT"])
def test_resize_bilinear_sampling_modes(mode):
    tf = _tf()
    align, half = {"STRICT_ALIGN_CORNERS": (True, False), "ALIGN_CORNERS": (True, False),
                   "UNALIGN_CORNERS": (False, True), "DEFAULT": (False, False)}[mode]
    want = _nchw(tf.compat.v1.image.resize_bilinear(_nhwc(IMG), (9, 4), align_corners=align,
                                                    half_pixel_centers=half))
    got = run("resize_bilinear", {"x": IMG}, {"target_size_height": 9, "target_size_width": 4,
                                              "sampling_mode": mode})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_resize_bilinear_offset_corners_follows_its_formula():
    # OFFSET_CORNERS: delta = max(1, Xin - 1) / Xout, points 0.5 delta + i delta (numpy)
    x = np.arange(5, dtype=np.float32).reshape(1, 1, 1, 5) * 2
    got = run("resize_bilinear", {"x": x}, {"target_size_height": 1, "target_size_width": 3,
                                            "sampling_mode": "OFFSET_CORNERS"})[0]
    delta = 4 / 3
    np.testing.assert_allclose(got.reshape(-1), 2 * (0.5 * delta + np.arange(3) * delta),
                               rtol=1e-6)


@pytest.mark.parametrize("interp", ["LINEAR", "NEAREST_NEIGHBOR"])
def test_resize_to_a_runtime_shape(interp):
    ct, mb = _ct(), _mb()

    @mb.program(input_specs=[mb.TensorSpec(IMG.shape)], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.resize(x=x, shape=np.array([0, 10, 0], np.int32), resized_dims=np.uint32(2),
                         interpolation_mode=interp, sampling_mode="STRICT_ALIGN_CORNERS")

    got = _run_prog(prog, {"x": IMG})[0]
    if interp == "LINEAR":  # height to 10, width kept (0)
        want = F.interpolate(torch.from_numpy(IMG), size=(10, 6), mode="bilinear",
                             align_corners=True).numpy()
    else:
        want = F.interpolate(torch.from_numpy(IMG), size=(10, 6), mode="nearest").numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_crop():
    got = run("crop", {"x": IMG}, {"crop_height": [1, 2], "crop_width": [0, 3]})[0]
    np.testing.assert_array_equal(got, IMG[:, :, 1:3, 0:3])


def test_crop_resize_is_tensorflows_crop_and_resize():
    ct, mb, tf = _ct(), _mb(), _tf()
    boxes = np.array([[0.1, 0.2, 0.8, 0.9], [0.0, 0.0, 1.0, 0.5], [-0.2, 0.3, 0.6, 1.3]],
                     np.float32)  # the last reaches outside: pad_value there
    idx = np.array([1, 0, 1], np.int32)

    @mb.program(input_specs=[mb.TensorSpec(IMG.shape)], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.crop_resize(x=x, boxes=boxes, box_indices=idx, target_height=4,
                              target_width=3, normalized_coordinates=True,
                              sampling_mode="STRICT_ALIGN_CORNERS", pad_value=-7.0)

    got = _run_prog(prog, {"x": IMG})[0]
    want = _nchw(tf.image.crop_and_resize(_nhwc(IMG), boxes, idx, (4, 3),
                                          extrapolation_value=-7.0))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    @mb.program(input_specs=[mb.TensorSpec(IMG.shape)], opset_version=ct.target.iOS15)
    def prog15(x):  # iOS15: roi [N, 1, 4, 1, 1] over every image, pixel coordinates
        roi = (boxes[:2] * np.array([4, 5, 4, 5], np.float32)).reshape(2, 1, 4, 1, 1)
        return mb.crop_resize(x=x, roi=roi, target_height=4, target_width=3,
                              sampling_mode="STRICT_ALIGN_CORNERS")

    got = _run_prog(prog15, {"x": IMG})[0]
    assert got.shape == (2, 2, 3, 4, 3)
    for b in range(2):
        want = _nchw(tf.image.crop_and_resize(_nhwc(IMG), boxes[:2], [b, b], (4, 3)))
        np.testing.assert_allclose(got[:, b], want, rtol=1e-5, atol=1e-5)


def test_affine_is_an_affine_grid_sample():
    ct, mb = _ct(), _mb()
    theta = np.array([[0.9, 0.2, 0.1, -0.3, 1.1, 0.05], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]],
                     np.float32)

    @mb.program(input_specs=[mb.TensorSpec(IMG.shape)], opset_version=ct.target.iOS15)
    def prog(x):
        return mb.affine(x=x, transform_matrix=theta, output_height=7, output_width=4,
                         sampling_mode="bilinear", padding_mode="constant", padding_value=0.0,
                         coordinates_mode="normalized_minus_one_to_one", align_corners=True)

    got = _run_prog(prog, {"x": IMG})[0]
    grid = F.affine_grid(torch.from_numpy(theta).reshape(2, 2, 3), [2, 3, 7, 4],
                         align_corners=True)
    want = F.grid_sample(torch.from_numpy(IMG), grid, align_corners=True).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# (torch's reflection without align_corners reflects about the image's edge: not MIL's)
@pytest.mark.parametrize("padding, align", [("constant", True), ("constant", False),
                                            ("border", True), ("border", False),
                                            ("reflection", True)])
def test_resample_is_grid_sample(padding, align):
    ct, mb = _ct(), _mb()
    coords = rng.uniform(-1.3, 1.3, (2, 4, 5, 2)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(IMG.shape)], opset_version=ct.target.iOS16)
    def prog(x):
        return mb.resample(x=x, coordinates=coords, sampling_mode="bilinear",
                           padding_mode=padding, padding_value=0.0,
                           coordinates_mode="normalized_minus_one_to_one", align_corners=align)

    got = _run_prog(prog, {"x": IMG})[0]
    want = F.grid_sample(torch.from_numpy(IMG), torch.from_numpy(coords),
                         padding_mode={"constant": "zeros"}.get(padding, padding),
                         align_corners=align).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding, want", [
    ("reflection", [2, 3, 2, 1, 2, 3, 2, 1, 2]),   # the op's documented examples
    ("symmetric", [3, 2, 1, 1, 2, 3, 3, 2, 1]),
    ("border", [1, 1, 1, 1, 2, 3, 3, 3, 3]),
    ("constant", [9, 9, 9, 1, 2, 3, 9, 9, 9])])
def test_resample_padding_modes_as_documented(padding, want):
    ct, mb = _ct(), _mb()
    x = np.array([1, 2, 3], np.float32).reshape(1, 1, 1, 3)
    coords = np.stack([np.arange(-3, 6), np.zeros(9)], -1).reshape(1, 1, 9, 2).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(x.shape)], opset_version=ct.target.iOS16)
    def prog(x):
        return mb.resample(x=x, coordinates=coords, sampling_mode="nearest",
                           padding_mode=padding, padding_value=9.0,
                           coordinates_mode="unnormalized", align_corners=True)

    np.testing.assert_array_equal(_run_prog(prog, {"x": x})[0].reshape(-1), want)


# -- rearranging ----------------------------------------------------------------------------------
def test_space_to_batch_and_back_are_tensorflows():
    tf = _tf()
    x = rng.standard_normal((2, 3, 4, 6)).astype(np.float32)
    pads = np.array([[1, 1], [0, 2]], np.int32)
    got = run("space_to_batch", {"x": x}, {"block_shape": np.array([2, 4], np.int32),
                                           "paddings": pads})[0]
    want = _nchw(tf.space_to_batch_nd(_nhwc(x), [2, 4], pads))
    np.testing.assert_array_equal(got, want)
    back = run("batch_to_space", {"x": got}, {"block_shape": np.array([2, 4], np.int32),
                                              "crops": pads})[0]
    np.testing.assert_array_equal(back, x)
    np.testing.assert_array_equal(back, _nchw(tf.batch_to_space(_nhwc(got), [2, 4], pads)))


def test_pixel_unshuffle():
    ct = _ct()
    x = rng.standard_normal((1, 2, 4, 6)).astype(np.float32)
    got = run("pixel_unshuffle", {"x": x}, {"downscale_factor": np.uint32(2)},
              opset=ct.target.iOS16)[0]
    want = np.empty((1, 8, 2, 3), np.float32)
    for c in range(2):
        for i in range(2):
            for j in range(2):
                want[0, c * 4 + i * 2 + j] = x[0, c, i::2, j::2]
    np.testing.assert_array_equal(got, want)


def test_reverse_sequence_is_tensorflows():
    tf = _tf()
    x = rng.standard_normal((3, 5, 2)).astype(np.float32)
    lengths = np.array([2, 5, 0], np.int32)
    got = run("reverse_sequence", {"x": x, "lengths": lengths},
              {"seq_axis": 1, "batch_axis": 0})[0]
    np.testing.assert_array_equal(got, tf.reverse_sequence(x, lengths, seq_axis=1,
                                                           batch_axis=0).numpy())
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))  # batch after sequence
    got = run("reverse_sequence", {"x": xt, "lengths": lengths},
              {"seq_axis": 0, "batch_axis": 1})[0]
    np.testing.assert_array_equal(got, tf.reverse_sequence(xt, lengths, seq_axis=0,
                                                           batch_axis=1).numpy())


def test_sliding_windows():
    x = rng.standard_normal((2, 9, 3)).astype(np.float32)
    got = run("sliding_windows", {"x": x}, {"axis": 1, "size": 4, "stride": 2})[0]
    want = np.lib.stride_tricks.sliding_window_view(x, 4, axis=1)[:, ::2].transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", ["update", "add", "mul", "max"])
def test_scatter_nd(mode):
    data = rng.standard_normal((3, 4, 2)).astype(np.float32)
    idx = np.array([[0, 1], [2, -1], [0, 1]], np.int32)  # a repeat: combined in add/mul/max
    upd = rng.standard_normal((3, 2)).astype(np.float32)
    want = data.copy()
    for (i, j), u in zip(idx, upd):
        cur = want[i, j]
        want[i, j] = {"update": u, "add": cur + u, "mul": cur * u,
                      "max": np.maximum(cur, u)}[mode]
    if mode == "update":  # which repeated write wins is unspecified: no repeats
        idx, upd = idx[:2], upd[:2]
        want = data.copy()
        want[0, 1], want[2, 3] = upd
    got = run("scatter_nd", {"data": data, "indices": idx, "updates": upd}, {"mode": mode})[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_slice_update():
    ct = _ct()
    x = rng.standard_normal((4, 5, 3)).astype(np.float32)
    upd = rng.standard_normal((2, 2)).astype(np.float32)
    got = run("slice_update", {"x": x, "update": upd},
              {"begin": np.array([3, 0, 1], np.int32), "end": np.array([0, 5, 2], np.int32),
               "stride": np.array([-2, 3, 1], np.int32),
               "squeeze_mask": [False, False, True]}, opset=ct.target.iOS18)[0]
    want = x.copy()
    want[3:0:-2, 0:5:3, 1] = upd
    np.testing.assert_array_equal(got, want)


def test_fill_like():
    ct = _ct()
    got = run("fill_like", {"ref_tensor": IMG}, {"value": 2.5}, opset=ct.target.iOS16)[0]
    np.testing.assert_array_equal(got, np.full(IMG.shape, 2.5, np.float32))


# -- attention and quantization ---------------------------------------------------------------------
@pytest.mark.parametrize("mask", [None, "bool", "float"])
def test_scaled_dot_product_attention_is_torchs(mask):
    ct = _ct()
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in
               ((2, 3, 5, 8), (2, 3, 7, 8), (2, 3, 7, 4)))
    tensors = {"query": q, "key": k, "value": v}
    m = None
    if mask == "bool":
        m = rng.random((5, 7)) > 0.3
        m[:, 0] = True  # every query attends to something
    elif mask == "float":
        m = rng.standard_normal((1, 5, 7)).astype(np.float32)
    if m is not None:
        tensors["attn_mask"] = m
    got = run("scaled_dot_product_attention", tensors, {}, opset=ct.target.iOS18)[0]
    want = F.scaled_dot_product_attention(*(torch.from_numpy(t) for t in (q, k, v)),
                                          attn_mask=None if m is None else torch.from_numpy(m))
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)


def test_quantize_and_dequantize():
    ct = _ct()
    x = (rng.standard_normal((2, 3, 4)) * 3).astype(np.float32)
    scale = np.array([0.05, 0.02, 0.1], np.float32)
    zp = np.array([3, -5, 0], np.int8)
    got = run("quantize", {"input": x}, {"scale": scale, "zero_point": zp, "axis": 1,
                                         "output_dtype": "int8"}, opset=ct.target.iOS17)[0]
    want = np.clip(np.round(x / scale[:, None]) + zp[:, None], -128, 127).astype(np.int8)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want)
    back = run("dequantize", {"input": want}, {"scale": scale, "zero_point": zp, "axis": 1},
               opset=ct.target.iOS17)[0]
    np.testing.assert_allclose(back, (want.astype(np.float32) - zp[:, None]) * scale[:, None],
                               rtol=1e-6)
    u8 = run("quantize", {"input": x}, {"scale": np.float32(0.1), "output_dtype": "uint8"},
             opset=ct.target.iOS17)[0]
    np.testing.assert_array_equal(u8, np.clip(np.round(x / 0.1), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("kind", ["linear", "lut"])
def test_conv_quantized(kind):
    mb = _mb()
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    wq = rng.integers(0, 16, (4, 2, 3, 3)).astype(np.uint8)
    if kind == "linear":
        scale = np.array([0.1, 0.2, 0.05, 0.3], np.float32)
        bias = np.array([-0.5, 0.1, 0.0, 0.2], np.float32)
        w = wq * scale[:, None, None, None] + bias[:, None, None, None]
    else:
        scale, bias = np.linspace(-1, 1, 16).astype(np.float32), np.float32(0)
        w = scale[wq]

    @mb.program(input_specs=[mb.TensorSpec(x.shape)])
    def prog(x):
        return mb.conv_quantized(x=x, weight=wq, quantization_type=kind, nbits=4,
                                 quant_scale=scale, quant_bias=bias, pad_type="same")

    got = _run_prog(prog, {"x": x})[0]
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w.astype(np.float32)), padding=1)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)


def test_sparse_compressed_weights_decompress_like_coremltools():
    ct = _ct()
    mb = _mb()
    from coremltools.converters.mil.mil import types

    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [1, 1, 0, 0]], np.uint8)
    bits = mask.astype(types.np_uint1_dtype)
    nonzero = np.array([10, 11, 3, 4, 5, 6, 7, 8, 9], np.int8)  # the op's documented example
    scale = np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)
    offset = np.array([[1, 2, 3, 4]], np.int8)
    cases = {
        "constexpr_sparse_blockwise_shift_scale": {
            "data_mask": bits, "nonzero_data": nonzero, "scale": scale,
            "offset": offset},
        "constexpr_lut_to_sparse": {
            "indices_mask": bits,
            "indices_nonzero_data": np.array([0, 1, 1, 0, 1, 1, 0, 0, 1]).astype(
                types.np_uint1_dtype),
            "lut": np.array([[[[-2.0], [3.0]]], [[[5.0], [7.0]]]], np.float32)},
    }
    def densified(op, values):
        @mb.program(input_specs=[mb.TensorSpec(shape=(1,))], opset_version=ct.target.iOS18)
        def prog(d):
            m, v = getattr(mb, op)(**values)
            return mb.identity(x=mb.constexpr_sparse_to_dense(nonzero_data=v, mask=m)), d

        return _run_prog(prog, {"d": np.zeros(1, np.float32)})[0]

    for op, values in cases.items():
        want = inferred(op, values, ct.target.iOS18)
        dense = densified(op, values)
        np.testing.assert_array_equal(dense != 0, mask.astype(bool) & (dense != 0))
        np.testing.assert_allclose(dense[mask.astype(bool)], want[1], rtol=1e-6, err_msg=op)
    np.testing.assert_allclose(
        inferred("constexpr_sparse_blockwise_shift_scale",
                 cases["constexpr_sparse_blockwise_shift_scale"], ct.target.iOS18)[1],
        [0.9, 1.8, 0.2, 0.4, 0.6, 0.9, 1.2, 0.7, 1.4], rtol=1e-6)


# -- lists, random draws, state, NMS ----------------------------------------------------------------
def test_lists_write_read_gather_scatter_length():
    mb = _mb()
    a = rng.standard_normal((2, 3)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(a.shape)])
    def prog(a):
        ls = mb.make_list(init_length=2, dynamic_length=True, elem_shape=[2, 3], dtype="fp32")
        ls = mb.list_write(ls=ls, index=0, value=a)
        ls2 = mb.list_write(ls=ls, index=3, value=mb.mul(x=a, y=2.0))  # grows the list
        ls3 = mb.list_scatter(ls=ls2, indices=np.array([1, 2], np.int32),
                              value=mb.stack(values=[mb.add(x=a, y=1.0), mb.mul(x=a, y=-1.0)],
                                             axis=0))
        return (mb.list_read(ls=ls, index=0), mb.list_length(ls=ls2),
                mb.list_gather(ls=ls3, indices=np.array([3, 1, 2, 0], np.int32)),
                mb.list_length(ls=ls))

    first, n2, gathered, n1 = _run_prog(prog, {"a": a})
    np.testing.assert_array_equal(first, a)
    assert int(n2) == 4 and int(n1) == 2  # the earlier list keeps its length
    np.testing.assert_allclose(gathered, np.stack([2 * a, a + 1, -a, a]), rtol=1e-6)


def test_random_draws_are_seeded_and_follow_their_distribution():
    mb = _mb()
    shape = np.array([200, 300], np.int32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1,))])
    def prog(d):
        return (mb.random_normal(shape=shape, mean=2.0, stddev=0.5, seed=7),
                mb.random_uniform(shape=shape, low=-1.0, high=3.0, seed=7),
                mb.random_bernoulli(shape=shape, prob=0.3, seed=7),
                mb.random_categorical(x=np.log(np.array([[0.1, 0.6, 0.3]], np.float32)),
                                      size=60000, seed=7), d)

    from convbench.mil import Interpreter

    interp = Interpreter(prog)
    normal, uniform, bern, cat, _ = interp.run({"d": np.zeros(1, np.float32)})
    again = interp.run({"d": np.zeros(1, np.float32)})
    np.testing.assert_array_equal(normal, again[0])  # a seed: the same draws each run
    assert normal.shape == (200, 300) and abs(normal.mean() - 2) < 0.01
    assert abs(normal.std() - 0.5) < 0.01
    assert uniform.min() >= -1 and uniform.max() < 3 and abs(uniform.mean() - 1) < 0.02
    assert set(np.unique(bern)) == {0.0, 1.0} and abs(bern.mean() - 0.3) < 0.01
    freq = np.bincount(cat.reshape(-1).astype(int), minlength=3) / cat.size
    np.testing.assert_allclose(freq, [0.1, 0.6, 0.3], atol=0.01)


def test_state_is_kept_between_runs_until_reset():
    ct, mb = _ct(), _mb()
    from coremltools.converters.mil.mil import types

    @mb.program(input_specs=[mb.StateTensorSpec((2, 3), dtype=types.fp16),
                             mb.TensorSpec((2, 3), dtype=types.fp16)],
                opset_version=ct.target.iOS18)
    def prog(acc, x):
        total = mb.add(x=mb.read_state(input=acc), y=x)
        mb.coreml_update_state(state=acc, value=total)
        return mb.mul(x=mb.read_state(input=acc), y=np.float16(10))

    from convbench.mil import Interpreter

    interp = Interpreter(prog)
    assert interp.input_names == ["x"]  # the state is not an input a caller gives
    x = np.full((2, 3), 1.5, np.float16)
    outs = [interp.run({"x": x})[0] for _ in range(3)]
    np.testing.assert_array_equal([o[0, 0] for o in outs], [15, 30, 45])
    assert interp.states["acc"].dtype == torch.float16
    interp.reset_states()
    assert interp.run({"x": x})[0][0, 0] == 15


def test_non_maximum_suppression():
    ct, mb = _ct(), _mb()
    # centre-size boxes: 0 and 1 overlap heavily (IoU 0.68), 2 apart, 3 below the threshold
    boxes = np.array([[[5, 5, 4, 4], [5.5, 5, 4, 4], [20, 20, 4, 4], [30, 30, 2, 2]]],
                     np.float32)
    scores = np.array([[[0.9, 0.1], [0.2, 0.8], [0.7, 0.0], [0.05, 0.04]]], np.float32)

    @mb.program(input_specs=[mb.TensorSpec(boxes.shape), mb.TensorSpec(scores.shape)],
                opset_version=ct.target.iOS15)
    def prog(b, s):
        return mb.non_maximum_suppression(boxes=b, scores=s, iou_threshold=0.5,
                                          score_threshold=0.1, max_boxes=4)

    kept_boxes, kept_scores, idx, count = _run_prog(prog, {"b": boxes, "s": scores})
    np.testing.assert_array_equal(idx, [[0, 2, -1, -1]])
    assert int(count[0]) == 2
    np.testing.assert_array_equal(kept_boxes[0, :2], boxes[0, [0, 2]])
    np.testing.assert_array_equal(kept_scores[0, 2:], 0)

    @mb.program(input_specs=[mb.TensorSpec((1, 4, 4)), mb.TensorSpec((1, 2, 4))],
                opset_version=ct.target.iOS17)
    def prog17(b, s):  # per class: box 1's best class differs from box 0's, so it stays
        return mb.non_maximum_suppression(boxes=b, scores=s, iou_threshold=0.5, max_boxes=3,
                                          per_class_suppression=True)

    _, _, idx = _run_prog(prog17, {"b": boxes.transpose(0, 2, 1).copy(),
                                   "s": scores.transpose(0, 2, 1).copy()})
    np.testing.assert_array_equal(idx, [[0, 1, 2]])


def test_reshape_like():
    ct, mb = _ct(), _mb()
    x = rng.standard_normal((2, 12)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(x.shape), mb.TensorSpec((5, 2, 3)),
                             mb.TensorSpec((4, 7))], opset_version=ct.target.iOS16)
    def prog(x, a, b):
        return mb.reshape_like(x=x, ref_tensors=(a, b), begins=(1, 0), ends=(2, 1),
                               end_masks=(True, False))

    got = _run_prog(prog, {"x": x, "a": np.zeros((5, 2, 3), np.float32),
                           "b": np.zeros((4, 7), np.float32)})[0]
    np.testing.assert_array_equal(got, x.reshape(2, 3, 4))


def test_a_classifier_program_is_run_end_to_end():
    """coremltools ends a classifier ML Program with `classify`: the top label, and the
    probabilities (a dictionary in Core ML; here the vector in the classes' order)."""
    import coremltools as ct

    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=-1)).eval()
    x = rng.standard_normal((1, 4)).astype(np.float32)
    traced = torch.jit.trace(net, torch.from_numpy(x))
    model = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=x.shape)],
                       classifier_config=ct.ClassifierConfig(["cat", "dog", "eel"]),
                       convert_to="mlprogram", minimum_deployment_target=ct.target.iOS15,
                       compute_precision=ct.precision.FLOAT32)
    from coremltools.converters.mil.frontend.milproto.load import load as load_mil

    from convbench.mil import Interpreter

    prog = load_mil(model.get_spec(), specification_version=model.get_spec().specificationVersion,
                    file_weights_dir=model.weights_dir)
    ops = [op.op_type for op in prog.functions["main"].operations]
    assert "classify" in ops
    label, probs = Interpreter(prog).run({"x": x})
    want = net(torch.from_numpy(x)).detach().numpy().reshape(-1)
    np.testing.assert_allclose(probs, want, rtol=1e-5)
    assert str(label) == ["cat", "dog", "eel"][int(want.argmax())]
