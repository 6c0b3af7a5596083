"""Models that are not in the zoo, through every Core ML target: Keras' MobileNetV2
(weights=None, briefly trained), a DenseNet-style PyTorch model, and a Hugging Face ViT (its
LayerNorm becomes a NeuralNetwork `mvn`)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from convbench.convert import convert
from convbench.data import get_dataset
from convbench.records import Artifact
from convbench.runtimes import open_runner

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def digits32():
    ds = get_dataset("digits", size=32, channels=3)
    return ds.arrays("train"), ds.arrays("test")


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory, digits32):
    import keras

    (x, y, _), _ = digits32
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None,
                                          classes=10)
    base.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    xk = x.transpose(0, 2, 3, 1)
    base.fit(xk, y, batch_size=64, epochs=6, verbose=0)
    for layer in base.layers:  # recompute batch-norm statistics for the final weights
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    base(xk, training=True)
    path = tmp_path_factory.mktemp("mnv2") / "mobilenetv2.keras"
    base.save(path)
    return Artifact.from_path("keras", path, layout="nhwc", input_shape=[32, 32, 3],
                              input_dtype="float32")


@pytest.fixture(scope="module")
def densenet(tmp_path_factory, digits32):
    import torch

    sys.path.insert(0, str(FIXTURES))
    import user_models

    (x, y, _), _ = digits32
    torch.manual_seed(0)
    model = user_models.densenet_block()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(8):
        for i in range(0, len(y), 64):
            opt.zero_grad()
            loss = torch.nn.functional.nll_loss(torch.log(model(xt[i:i + 64]) + 1e-9),
                                                yt[i:i + 64])
            loss.backward()
            opt.step()
    for m in model.modules():  # recompute batch-norm statistics for the final weights
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        for i in range(0, len(y), 64):
            model(xt[i:i + 64])
    path = tmp_path_factory.mktemp("dense") / "densenet.pt"
    torch.save(model.state_dict(), path)
    return Artifact.from_path("torch", path, layout="nchw", input_shape=[3, 32, 32],
                              input_dtype="float32",
                              factory=f"{FIXTURES / 'user_models.py'}:densenet_block")


def _run(art, x):
    with open_runner(art) as r:
        return r.infer_all(x, 64)


@pytest.mark.parametrize("which", ["mobilenet", "densenet"])
@pytest.mark.parametrize("target", ["coreml", "coreml-fp32", "coreml-nn"])
def test_classifiers_beyond_the_zoo(request, digits32, tmp_path, which, target):
    src = request.getfixturevalue(which)
    _, (x, y, _) = digits32
    x = x.transpose(0, 2, 3, 1) if src.format == "keras" else x
    options = {"factory": src.meta["factory"]} if src.format == "torch" else {}
    conv = convert(src, target, tmp_path, **options)
    assert conv.ok, conv.message
    ref, got = _run(src, x), _run(conv.artifact, x)
    assert (ref.argmax(1) == y).mean() > 0.5  # trained: labels carry information
    rel = np.abs(got - ref).max() / np.abs(ref).max()
    agree = (got.argmax(1) == ref.argmax(1)).mean()
    if target == "coreml":
        # fp16 storage: the error is the trained weights' sensitivity (2-5% of the largest
        # probability here, with the CPU's training); a wrong op would give an error near 1
        assert rel < 1e-1 and agree >= 0.99, (rel, agree)
    else:
        assert rel <= 1e-5 and agree == 1.0, (rel, agree)


def _adaptive_2x2():
    from torch import nn

    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d((2, 2)),
                         nn.Flatten(), nn.Linear(16, 10), nn.Softmax(dim=1))


@pytest.mark.parametrize("target", ["coreml", "coreml-fp32", "coreml-nn"])
def test_a_model_that_needs_a_fixed_batch_converts_through_the_fallback(tmp_path, digits_test,
                                                                        target, monkeypatch):
    """AdaptiveAvgPool2d((2, 2)) converts only with a known input size: the flexible and the
    enumerated batch fail (recorded), a fixed batch of 1 converts, and larger batches run as
    loops over it, with the original's outputs."""
    import torch

    from convbench.models import to_layout

    module = type(sys)("adaptive_models")
    module.adaptive_2x2 = _adaptive_2x2
    monkeypatch.setitem(sys.modules, "adaptive_models", module)
    torch.manual_seed(0)
    model = _adaptive_2x2().eval()
    path = tmp_path / "adaptive.pt"
    torch.save(model.state_dict(), path)
    src = Artifact.from_path("torch", path, layout="nchw", input_shape=[1, 28, 28],
                             input_dtype="float32", factory="adaptive_models:adaptive_2x2")
    conv = convert(src, target, tmp_path, factory="adaptive_models:adaptive_2x2")
    assert conv.ok, conv.message
    meta = conv.artifact.meta
    assert meta["batch"] == "fixed"
    assert [e["batch"] for e in meta["batch_fallbacks"]] == ["flexible", "enumerated"]
    assert "Adaptive pooling" in meta["batch_fallbacks"][0]["error"]
    x = to_layout(digits_test[0][:37], "torch")
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    with open_runner(conv.artifact, engine="interpreter") as runner:
        got = runner.infer(x)  # 37 samples through a batch-1 model
    tolerance = 5e-3 if target == "coreml" else 1e-5
    assert got.shape == want.shape and np.abs(got - want).max() < tolerance


@pytest.mark.parametrize("to", ["neuralnetwork", "mlprogram"])
def test_a_hugging_face_vit_runs_on_both_interpreters(tmp_path, to):
    import coremltools as ct
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=64,
                    num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                    num_labels=10)
    vit = ViTForImageClassification(cfg).eval()

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vit = vit

        def forward(self, x):
            return self.vit(pixel_values=x, return_dict=False)[0]

    x = torch.randn(2, 3, 32, 32)
    net = Logits().eval()
    extra = {"compute_precision": ct.precision.FLOAT32} if to == "mlprogram" else {}
    model = ct.convert(torch.jit.trace(net, x), inputs=[ct.TensorType(name="x", shape=x.shape)],
                       convert_to=to, **extra)
    path = tmp_path / ("vit.mlmodel" if to == "neuralnetwork" else "vit.mlpackage")
    model.save(str(path))
    if to == "neuralnetwork":
        kinds = {layer.WhichOneof("layer") for layer in model.get_spec().neuralNetwork.layers}
        assert "mvn" in kinds  # LayerNorm
    got = _run(Artifact.from_path("coreml", path), x.numpy())
    np.testing.assert_allclose(got, net(x).detach().numpy(), rtol=1e-4, atol=1e-5)
