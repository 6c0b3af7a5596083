"""Core ML conversion of every zoo model in both frameworks, run on convbench's interpreters.

FP32 programs and NeuralNetwork models must match the source framework to <= 1e-5 relative
(max over outputs); FP16 programs stay within fp16 rounding and keep >= 99.9% of labels.
"""

import numpy as np
import pytest

from conftest import need_data
from convbench.convert import convert
from convbench.models import to_layout
from convbench.records import Category
from convbench.runtimes import open_runner
from convbench.training import preset_config, train
from convbench.training.run import dataset_for

FP16_REL = 1e-2  # fp16 rounds to 2^-11 relative; 20 such steps accumulated through a network
IMAGE = [("lenet5", "digits"), ("resnet18", "digits"), ("vgg16", "digits")]
TEXT = [("lstm", "imdb"), ("gru", "imdb")]


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo")
    cache = {}

    def get(framework, model, dataset):
        if (framework, model) not in cache:
            # trained well enough that labels have margins (an untrained model's near-uniform
            # probabilities flip under any rounding, fp16 or not)
            text = dataset == "imdb"
            cfg = preset_config("smoke", framework, model, dataset, epochs=6 if text else 12,
                                n_train=3000 if text else None, batch_size=64 if text else 32,
                                lr=0.003 if text else 0.05)
            art = train(cfg, out).artifact
            ds = dataset_for(model, dataset, **cfg.data_options)
            x, y, _ = ds.arrays("test", n=1000 if text else 500)
            cache[(framework, model)] = (art, x, y)
        return cache[(framework, model)]

    return get


def _outputs(art, x):
    with open_runner(art) as r:
        return r.infer_all(x, 64)


def _check(src, conv, x, target):
    layout = "keras" if conv.artifact.meta.get("layout") == "nhwc" else "torch"
    ref = _outputs(src, to_layout(x, "keras" if src.format == "keras" else "torch"))
    got = _outputs(conv.artifact, to_layout(x, layout))
    rel = np.abs(got - ref).max() / np.abs(ref).max()
    agree = (got.argmax(1) == ref.argmax(1)).mean()
    if target == "coreml":  # FP16 program: fp16 rounding bounds, labels kept
        assert rel < FP16_REL, rel
        # Labels that could flip are fixed before looking at the program's outputs: those
        # whose two top reference outputs are within twice the fp16 tolerance of that
        # sample's own scale (fp16 rounds relative to each value). Every other label must
        # stay; this is not implied by the bound above, which is relative to the largest
        # output of the whole set.
        top2 = np.sort(ref, axis=1)[:, -2:]
        scale = np.abs(ref).max(1)
        could_flip = (top2[:, 1] - top2[:, 0]) <= 2 * FP16_REL * scale
        flipped = got.argmax(1) != ref.argmax(1)
        assert not (flipped & ~could_flip).any(), np.flatnonzero(flipped & ~could_flip)
        assert agree >= 0.999, (agree, could_flip.sum())
    else:
        assert rel <= 1e-5, rel
        assert agree == 1.0


@pytest.mark.parametrize("framework", ["torch", "keras"])
@pytest.mark.parametrize("model, dataset", IMAGE)
@pytest.mark.parametrize("target", ["coreml", "coreml-fp32", "coreml-nn"])
def test_image_models(originals, tmp_path, framework, model, dataset, target):
    src, x, _ = originals(framework, model, dataset)
    conv = convert(src, target, tmp_path)
    assert conv.ok, conv.message
    assert conv.artifact.meta["model_type"] == ("neuralnetwork" if target == "coreml-nn"
                                                else "mlprogram")
    _check(src, conv, x, target)


@pytest.mark.parametrize("model, dataset", TEXT)
@pytest.mark.parametrize("target", ["coreml", "coreml-fp32", "coreml-nn"])
def test_torch_recurrent_models(originals, tmp_path, model, dataset, target):
    need_data("imdb")
    src, x, _ = originals("torch", model, dataset)
    conv = convert(src, target, tmp_path)
    assert conv.ok, conv.message
    _check(src, conv, x, target)


@pytest.mark.parametrize("model, dataset", TEXT)
def test_keras_recurrent_models_fail_directly_and_convert_through_the_twin(originals, tmp_path,
                                                                            model, dataset):
    need_data("imdb")
    src, x, _ = originals("keras", model, dataset)
    direct = convert(src, "coreml-fp32", tmp_path)
    assert not direct.ok and direct.category is Category.CONVERTER_CRASH  # coremltools 9
    twin = convert(src, "coreml-fp32", tmp_path, route="torch-twin")
    assert twin.ok, twin.message
    assert twin.artifact.meta["route"] == "keras-weights-in-torch-twin"
    _check(src, twin, x, "coreml-fp32")


def test_torch_export_route(originals, tmp_path):
    src, x, _ = originals("torch", "lenet5", "digits")
    conv = convert(src, "coreml-fp32", tmp_path, source="export")
    assert conv.ok and conv.artifact.meta["route"] == "torch-export"
    _check(src, conv, x, "coreml-fp32")


@pytest.mark.parametrize("target, spec_version", [("iOS16", 7), ("iOS17", 8), ("iOS18", 9)])
def test_deployment_targets_run_on_the_interpreter(originals, tmp_path, target, spec_version):
    src, x, _ = originals("torch", "lenet5", "digits")
    conv = convert(src, "coreml-fp32", tmp_path, minimum_deployment_target=target)
    assert conv.ok and conv.artifact.meta["spec_version"] == spec_version
    _check(src, conv, x, "coreml-fp32")


def test_a_bad_deployment_target(originals, tmp_path):
    src, _, _ = originals("torch", "lenet5", "digits")
    bad = convert(src, "coreml", tmp_path, minimum_deployment_target="iOS99")
    assert not bad.ok and "unknown deployment target 'iOS99'" in bad.message


@pytest.mark.parametrize("target", ["iOS16", "iOS18"])
@pytest.mark.parametrize("compress", ["quantize", "palettize"])
def test_compressed_weights_run_like_their_decompressed_program(originals, tmp_path, target,
                                                                compress):
    """A compressed package (constexpr ops) computes what coremltools' own decompressed copy
    of it computes: the interpreter decompresses exactly."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    from convbench.records import Artifact

    src, x, _ = originals("torch", "lenet5", "digits")
    conv = convert(src, "coreml-fp32", tmp_path, minimum_deployment_target=target)
    model = ct.models.MLModel(conv.artifact.path, skip_model_load=True)
    if compress == "quantize":
        config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
            mode="linear_symmetric", weight_threshold=0))
        small = cto.linear_quantize_weights(model, config)
    else:
        config = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(
            nbits=4, mode="kmeans", weight_threshold=0))
        small = cto.palettize_weights(model, config)
    full = cto.decompress_weights(small)
    paths = {}
    for name, m in (("small", small), ("full", full)):
        paths[name] = tmp_path / f"{name}.mlpackage"
        m.save(str(paths[name]))
    from convbench.cli.coreml_cmd import census

    _, ops, _ = census(str(paths["small"]))
    assert any(op.startswith("constexpr_") for op in ops), ops
    meta = conv.artifact.meta
    got = _outputs(Artifact.from_path("coreml", paths["small"], **meta), x)
    want = _outputs(Artifact.from_path("coreml", paths["full"], **meta), x)
    np.testing.assert_array_equal(got, want)
