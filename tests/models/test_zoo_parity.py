"""Each zoo model has the same layers in both frameworks: parameter counts and output shapes."""

import numpy as np
import pytest

from convbench.models import ZOO, build, count_params, to_layout

SHAPES = {"lenet5": ((1, 28, 28), None, 10), "resnet18": ((3, 32, 32), None, 10),
          "vgg16": ((3, 32, 32), None, 10), "lstm": ((40,), 1000, 2), "gru": ((40,), 1000, 2)}
SMALL = {"lenet5": {"width": 0.5}, "resnet18": {"width": 0.125}, "vgg16": {"width": 0.125},
         "lstm": {"hidden": 16, "embed": 8}, "gru": {"hidden": 16, "embed": 8}}


def _pair(name, **opts):
    shape, vocab, classes = SHAPES[name]
    return (build("torch", name, shape, classes, vocab=vocab, **opts),
            build("keras", name, shape, classes, vocab=vocab, **opts))


def _expected_extra(name, opts):
    spec = ZOO.get(name)
    return spec.extra_torch_params(spec.options(**opts)) if spec.extra_torch_params else 0


@pytest.mark.parametrize("name", ZOO.names())
def test_parameter_counts_match_at_full_size(name):
    t, k = _pair(name)
    # PyTorch's LSTM carries b_ih and b_hh, Keras one bias: exactly 4*hidden per layer more.
    assert count_params("torch", t) == count_params("keras", k) + _expected_extra(name, {})


FULL_SIZE = {"lenet5": 61706, "resnet18": 11183562, "vgg16": 14732490}


@pytest.mark.parametrize("name", sorted(FULL_SIZE))
def test_image_models_have_their_known_sizes(name):
    t, _ = _pair(name)
    assert count_params("torch", t) == FULL_SIZE[name]


@pytest.mark.parametrize("name", ZOO.names())
def test_small_models_match_and_give_probabilities(name):
    import torch

    opts = SMALL[name]
    t, k = _pair(name, **opts)
    assert count_params("torch", t) == count_params("keras", k) + _expected_extra(name, opts)
    shape, vocab, classes = SHAPES[name]
    rng = np.random.default_rng(0)
    x = (rng.integers(0, vocab, (3, *shape)) if vocab else
         rng.random((3, *shape), dtype=np.float32))
    with torch.no_grad():
        pt = t.eval()(torch.from_numpy(x)).numpy()
    pk = np.asarray(k(to_layout(x, "keras"), training=False))
    assert pt.shape == pk.shape == (3, classes)
    np.testing.assert_allclose(pt.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(pk.sum(1), 1, rtol=1e-5)


def test_lstm_extra_bias_is_what_the_count_differs_by():
    t, k = _pair("lstm", hidden=16, embed=8)
    biases = sum(p.numel() for n, p in t.named_parameters() if "bias_hh" in n)
    assert count_params("torch", t) - count_params("keras", k) == biases == 4 * 16 * 2


def test_unknown_option_is_refused():
    with pytest.raises(ValueError, match="has no option"):
        build("torch", "lenet5", (1, 28, 28), 10, depth=3)
