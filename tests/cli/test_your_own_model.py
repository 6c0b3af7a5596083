"""`convbench assess` on the models and data users hold: every model source (state_dict,
TorchScript, ExportedProgram, .keras/.h5/SavedModel, ONNX), every kind of data (image folder,
.npz, CSV, synthetic), and the errors that bad input gets before any conversion."""

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from convbench.cli.main import main
from convbench.store import Store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAST = ["--batch-sizes", "none", "--no-memory"]  # outputs only: no latency, no memory


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 3x96x96 CNN saved every way PyTorch saves a model, its ONNX export, a tabular MLP,
    and data for them: an image folder (one file unreadable), an .npz (channels last) and a
    CSV."""
    import torch
    from PIL import Image

    sys.path.insert(0, str(FIXTURES))
    import user_models

    d = tmp_path_factory.mktemp("own")
    torch.manual_seed(0)
    cnn = user_models.cnn96().eval()
    example = torch.zeros(2, 3, 96, 96)
    torch.save(cnn.state_dict(), d / "cnn96.pt")
    torch.jit.save(torch.jit.trace(cnn, example), d / "cnn96_script.pt")
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.export.save(torch.export.export(cnn, (example,), dynamic_shapes=({0: batch},)),
                      d / "cnn96.pt2")
    torch.onnx.export(cnn, (example,), d / "cnn96.onnx", dynamo=False, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "b"},
                                                             "output": {0: "b"}})
    torch.save(user_models.mlp().state_dict(), d / "mlp.pt")
    rng = np.random.default_rng(0)
    for i in range(24):
        folder = d / "images" / f"class{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (120, 100, 3), dtype=np.uint8)).save(
            folder / f"{i}.png")
    (d / "images" / "class0" / "broken.png").write_bytes(b"not an image")
    np.savez(d / "data96.npz", x=rng.integers(0, 256, (30, 96, 96, 3), dtype=np.uint8),
             y=rng.integers(0, 3, 30))
    rows = ["a,b,c,d,e,f,label"] + [",".join(f"{v:.4f}" for v in rng.normal(size=6)) +
                                    f",{i % 3}" for i in range(40)]
    (d / "tab.csv").write_text("\n".join(rows) + "\n")
    return d


def _cells(store: Path) -> dict:
    with Store(store) as s:
        return {c.key.format: c for c in s.cells()}


def _assess(argv, tmp_path) -> tuple[int, dict]:
    store = tmp_path / "s.db"
    rc = main(["assess", *argv, *FAST, "--store", str(store)])
    return rc, _cells(store) if store.exists() else {}


def test_a_folder_of_images_resized_to_the_model(files, tmp_path, capsys):
    rc, cells = _assess(["--model", str(files / "cnn96.pt"), "--factory",
                         f"{FIXTURES / 'user_models.py'}:cnn96", "--data", str(files / "images"),
                         "--input-shape", "3,96,96", "--to", "onnx"], tmp_path)
    assert rc == 0
    assert "1 unreadable file(s) skipped" in capsys.readouterr().err
    cell = cells["onnx"]
    assert cell.key.dataset == "images" and cell.metrics.one(measure="inputs").value == 24
    assert cell.info["data"]["skipped"] == 1 and cell.info["data"]["classes"] == [
        "class0", "class1", "class2"]
    assert cell.metrics.one(measure="accuracy", role="original") is not None
    assert cell.metrics.one(measure="abs_err", stat="max").value < 1e-5


def test_an_npz_channels_last_with_labels(files, tmp_path):
    """uint8 images scaled by 1/255 and moved to the model's NCHW; the data's shape is the
    model's shape when the state_dict does not say it."""
    rc, cells = _assess(["--model", str(files / "cnn96.pt"), "--factory",
                         f"{FIXTURES / 'user_models.py'}:cnn96", "--data",
                         str(files / "data96.npz"), "--n", "20", "--to", "onnx",
                         "--attack", "fgsm", "--attack-n", "5"], tmp_path)
    assert rc == 0
    cell = cells["onnx"]
    # the model ends in logits, not a softmax: the attack takes gradients of them as they are
    assert [(o.name, o.status.value) for o in cell.outcomes if o.kind == "attack"] == [
        ("fgsm", "ok")]
    assert cell.metrics.get("inputs", attack="fgsm", direction="forward") >= 1
    assert cell.metrics.find(measure="latency") == []  # --batch-sizes none
    assert cell.artifacts["original"].meta["input_shape"] == [3, 96, 96]
    assert cell.artifacts["original"].meta["shape_from"] == "the data"
    assert cell.info["data"]["layout_given"] == "nhwc"
    assert cell.metrics.one(measure="inputs").value == 20


@pytest.mark.parametrize("name, kind", [("cnn96_script.pt", "torchscript"),
                                        ("cnn96.pt2", "exported_program")])
def test_whole_pytorch_models_need_trust_and_convert(files, tmp_path, capsys, name, kind):
    argv = ["--model", str(files / name), "--data", str(files / "data96.npz"), "--n", "12",
            "--to", "onnx,coreml"]
    rc, cells = _assess(argv, tmp_path)
    assert rc == 2 and not cells  # refused before any work
    assert "--trust-model" in capsys.readouterr().err
    rc, cells = _assess([*argv, "--trust-model"], tmp_path)
    assert rc == 0
    assert set(cells) == {"onnx", "coreml"}
    for fmt, tolerance in (("onnx", 1e-5), ("coreml", 1e-2)):
        c = cells[fmt]
        assert c.artifacts["original"].meta["kind"] == kind
        assert c.metrics.one(measure="abs_err", stat="max").value < tolerance
    if kind == "torchscript":  # dynamo cannot export a ScriptModule: the other exporter
        meta = cells["onnx"].artifacts["converted"].meta
        assert meta["route"] == "torchscript-dynamic"
        assert meta["fallbacks"][0]["route"] == "dynamo-dynamic"


def test_an_exported_program_declares_its_shape(files, tmp_path):
    rc, cells = _assess(["--model", str(files / "cnn96.pt2"), "--trust-model", "--synthetic",
                         "8", "--to", "onnx"], tmp_path)
    assert rc == 0
    meta = cells["onnx"].artifacts["original"].meta
    assert meta["input_shape"] == [3, 96, 96] and meta["shape_from"] == "the model file"


def test_an_onnx_source_against_onnx_runtimes_optimised_graph(files, tmp_path, capsys):
    rc, cells = _assess(["--model", str(files / "cnn96.onnx"), "--data",
                         str(files / "data96.npz"), "--to", "onnx"], tmp_path)
    assert rc == 0
    cell = cells["onnx"]
    assert cell.key.framework == "onnx"
    assert cell.info["runner_original"]["optimization"] == "disable"
    assert cell.artifacts["converted"].meta["route"] == "ort-all"
    assert cell.metrics.one(measure="abs_err", stat="max").value < 1e-5
    rc, _ = _assess(["--model", str(files / "cnn96.onnx"), "--data", str(files / "data96.npz"),
                     "--to", "coreml"], tmp_path)
    assert rc == 2 and "no converter from onnx to coreml" in capsys.readouterr().err


def test_synthetic_inputs_give_agreement_without_labels(files, tmp_path):
    rc, cells = _assess(["--model", str(files / "cnn96_script.pt"), "--trust-model",
                         "--synthetic", "16", "--input-shape", "3,96,96", "--to", "onnx"],
                        tmp_path)
    assert rc == 0
    cell = cells["onnx"]
    assert cell.key.dataset == "synthetic"
    assert cell.metrics.one(measure="inputs").value == 16
    assert cell.metrics.one(measure="accuracy", role="original") is None  # no labels
    assert cell.metrics.one(measure="label_flips").value == 0


def test_a_csv_for_a_tabular_model(files, tmp_path):
    rc, cells = _assess(["--model", str(files / "mlp.pt"), "--factory",
                         f"{FIXTURES / 'user_models.py'}:mlp", "--data", str(files / "tab.csv"),
                         "--to", "onnx,coreml-fp32", "--attack", "fgsm"], tmp_path)
    assert rc == 0
    [attack] = [o for o in cells["onnx"].outcomes if o.kind == "attack"]
    assert attack.status.value == "skipped" and "this one takes tabular" in attack.message
    for cell in cells.values():
        assert cell.artifacts["original"].meta["input_shape"] == [6]
        assert cell.info["data"]["label_column"] == "label"
        assert cell.metrics.one(measure="inputs").value == 40
        assert cell.metrics.one(measure="abs_err", stat="max").value < 1e-5


def test_quantising_targets_calibrate_on_the_rows_not_evaluated(files, tmp_path):
    rc, cells = _assess(["--model", str(files / "cnn96.pt"), "--factory",
                         f"{FIXTURES / 'user_models.py'}:cnn96", "--data",
                         str(files / "data96.npz"), "--n", "20", "--to",
                         "onnx-int8-static,openvino-int8"], tmp_path)
    assert rc == 0 and set(cells) == {"onnx-int8-static", "openvino-int8"}
    for cell in cells.values():  # 30 rows, 20 evaluated: the other 10 calibrate
        assert cell.status.value == "ok", cell.message
        cal = cell.artifacts["converted"].meta["calibration"]
        assert (cal["split"], cal["n"]) == ("rows not evaluated", 10)
    # every row evaluated: the calibration takes them, and its record says so
    rc, cells = _assess(["--model", str(files / "mlp.pt"), "--factory",
                         f"{FIXTURES / 'user_models.py'}:mlp", "--data", str(files / "tab.csv"),
                         "--to", "onnx-int8-static"], tmp_path)
    cal = cells["onnx-int8-static"].artifacts["converted"].meta["calibration"]
    assert cal["split"].startswith("the evaluated rows") and cal["n"] == 40


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    import keras

    sys.path.insert(0, str(FIXTURES))
    import keras_user_models

    d = tmp_path_factory.mktemp("keras_own")
    keras.utils.set_random_seed(0)
    seq = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                            keras.layers.MaxPooling2D(), keras.layers.Flatten(),
                            keras.layers.Dense(10, activation="softmax")])
    seq.save(d / "seq.h5")
    seq.export(str(d / "seq_savedmodel"))
    sub = keras_user_models.SmallNet(10)
    sub(np.zeros((1, 28, 28, 1), np.float32))
    sub.save(d / "sub.keras")
    return d


@pytest.mark.parametrize("name, trust", [("seq.h5", False), ("seq_savedmodel", True)])
def test_legacy_keras_files_and_savedmodels(keras_files, tmp_path, name, trust):
    rc, cells = _assess(["--model", str(keras_files / name), "--dataset", "digits", "--n", "40",
                         "--to", "onnx,coreml", *(["--trust-model"] if trust else [])],
                        tmp_path)
    assert rc == 0
    assert set(cells) == {"onnx", "coreml"}
    for fmt, tolerance in (("onnx", 1e-5), ("coreml", 5e-3)):
        c = cells[fmt]
        assert c.key.framework == "keras"
        assert c.artifacts["original"].meta["input_shape"] == [28, 28, 1]
        assert c.metrics.one(measure="abs_err", stat="max").value < tolerance


def test_a_subclassed_keras_model(keras_files, tmp_path, capsys):
    argv = ["--model", str(keras_files / "sub.keras"), "--dataset", "digits", "--n", "40",
            "--to", "onnx,coreml-nn"]
    rc, _ = _assess(argv, tmp_path)
    assert rc == 2 and "--custom-objects" in capsys.readouterr().err
    rc, cells = _assess([*argv, "--custom-objects", str(FIXTURES / "keras_user_models.py")],
                        tmp_path)
    assert rc == 0
    for c in cells.values():
        assert c.metrics.one(measure="abs_err", stat="max").value < 1e-5


def test_spec_out_reruns_the_assessment_as_a_study(files, tmp_path):
    spec = tmp_path / "mine.yaml"
    rc, cells = _assess(["--model", str(files / "mlp.pt"), "--factory",
                         f"{FIXTURES / 'user_models.py'}:mlp", "--data", str(files / "tab.csv"),
                         "--to", "onnx", "--spec-out", str(spec)], tmp_path)
    assert rc == 0
    written = yaml.safe_load(spec.read_text())
    assert written["models"][0]["data"]["path"] == str(files / "tab.csv")
    store = tmp_path / "study.db"
    assert main(["run", str(spec), "--store", str(store)]) == 0
    [again] = _cells(store).values()
    assert again.key == cells["onnx"].key  # the same cell, planned the same way
    assert again.metrics.one(measure="label_flips").value == 0


@pytest.fixture(scope="module")
def stored_once(files, tmp_path_factory):
    """A store holding one assessed cell, for tests that check nothing stored is lost."""
    store = tmp_path_factory.mktemp("stored") / "s.db"
    assert main(["assess", "--model", str(files / "cnn96_script.pt"), "--trust-model", "--to",
                 "onnx", *FAST, "--store", str(store), "--synthetic", "4", "--input-shape",
                 "3,96,96"]) == 0
    return store


@pytest.mark.parametrize("argv, message", [
    (["--data", "{files}/data96.npz", "--input-shape", "3,64,64"], "the model takes 3x64x64"),
    (["--data", "{files}/tab.csv", "--input-shape", "3,96,96"],
     "6 feature columns; the model takes 3x96x96"),
    (["--synthetic", "4"], "give --input-shape"),
    (["--data", "{files}/notes.txt"], "unknown kind of data file '.txt'"),
    (["--data", "{files}/images"], "the data does not say it; give --input-shape"),
    (["--dataset", "digits", "--data", "{files}/tab.csv"], "give one of --dataset"),
    (["--dataset", "digits", "--mean", "0.5"], "--mean apply to your own data"),
    (["--data", "{files}/data96.npz", "--mean", "0.5,0.5"], "--mean: 2 values for data of 3"),
])
def test_bad_data_is_refused_before_any_conversion(files, stored_once, tmp_path, capsys,
                                                    argv, message):
    import shutil

    (files / "notes.txt").write_text("hello")
    store = tmp_path / "s.db"
    shutil.copy(stored_once, store)
    before = len(_cells(store))
    argv = [a.replace("{files}", str(files)) for a in argv]
    rc = main(["assess", "--model", str(files / "cnn96_script.pt"), "--trust-model", "--to",
               "onnx", *argv, *FAST, "--store", str(store)])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert len(_cells(store)) == before == 1  # what was stored is still there


def test_unknown_model_files_and_labels_beyond_the_model(files, tmp_path, capsys):
    (files / "model.tflite").write_bytes(b"\0" * 64)
    assert main(["assess", "--model", str(files / "model.tflite"), "--dataset", "digits",
                 "--store", str(tmp_path / "s.db")]) == 2
    assert "unknown kind of model file '.tflite'" in capsys.readouterr().err
    np.savez(files / "labels9.npz", x=np.zeros((6, 6), np.float32), y=np.arange(6) + 4)
    rc, cells = _assess(["--model", str(files / "mlp.pt"), "--factory",
                         f"{FIXTURES / 'user_models.py'}:mlp", "--data",
                         str(files / "labels9.npz"), "--to", "onnx"], tmp_path)
    assert rc == 1
    cell = cells["onnx"]
    assert cell.category.value == "data_error" and "labels go up to 9" in cell.message
    assert "converted" not in cell.artifacts  # refused before converting


def test_flips_of_a_near_uniform_model_in_float16_are_ties(files, tmp_path):
    """Outputs 5 +- 1e-4: float16 (spacing 0.004 at 5) cannot tell them apart, so the FP16
    program's labels flip on ties, none decided; the FP32 program keeps every label."""
    import torch

    sys.path.insert(0, str(FIXTURES))
    import user_models

    torch.manual_seed(0)
    model = user_models.mlp()
    with torch.no_grad():
        model[2].weight.mul_(1e-4)
        model[2].bias.fill_(5.0)
    torch.save(model.state_dict(), tmp_path / "flat.pt")
    rc, cells = _assess(["--model", str(tmp_path / "flat.pt"), "--factory",
                         f"{FIXTURES / 'user_models.py'}:mlp", "--data", str(files / "tab.csv"),
                         "--to", "coreml,coreml-fp32", "--fail-if", "decided_flip_rate > 0"],
                        tmp_path)
    assert rc == 0  # the gate holds: no decided flip
    fp16 = cells["coreml"].metrics
    assert fp16.get("label_flips") > 10
    assert fp16.get("tie_flips") == fp16.get("label_flips") and fp16.get("decided_flips") == 0
    assert cells["coreml-fp32"].metrics.get("label_flips") == 0


def test_a_text_model_keeps_its_free_sequence_axis(tmp_path):
    """A Keras text model declaring inputs of (None,) token ids: the data's length is
    assessed, and the converted models keep the sequence axis free (they run other lengths)."""
    import keras
    import onnx

    from convbench.runtimes import open_runner

    keras.utils.set_random_seed(0)
    inp = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8)(inp)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling1D()(h))
    keras.Model(inp, out).save(tmp_path / "text.keras")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "ids.npz", x=rng.integers(1, 50, (24, 20)), y=rng.integers(0, 2, 24))
    rc, cells = _assess(["--model", str(tmp_path / "text.keras"), "--data",
                         str(tmp_path / "ids.npz"), "--to", "onnx,coreml-fp32"], tmp_path)
    assert rc == 0
    original = cells["onnx"].artifacts["original"]
    assert original.meta["input_shape"] == [20] and original.meta["free_axes"] == [0]
    onnx_art = cells["onnx"].artifacts["converted"]
    dims = onnx.load(onnx_art.path).graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_param and not dims[1].dim_value
    longer = rng.integers(1, 50, (3, 35)).astype(np.int32)
    with open_runner(original) as k:
        want = k.infer(longer)
    from convbench.mil.program import load_spec

    coreml = cells["coreml-fp32"].artifacts["converted"]
    assert coreml.meta["batch"] == "flexible" and coreml.meta["free_axes"] == [0]
    [batch, length] = load_spec(coreml.path).description.input[0].type.multiArrayType \
        .shapeRange.sizeRanges
    assert length.upperBound == -1 or length.upperBound > 20  # the file declares it free
    for fmt in ("onnx", "coreml-fp32"):
        art = cells[fmt].artifacts["converted"]
        assert cells[fmt].metrics.get("label_flips") == 0
        with open_runner(art, **({"engine": "interpreter"} if fmt != "onnx" else {})) as r:
            got = r.infer(longer if fmt != "onnx" else longer.astype(np.int32))
        assert np.abs(got - want).max() < 1e-5, fmt


def test_a_spec_alone_does_not_grant_trust(files, tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"models": [{"file": str(files / "cnn96_script.pt"),
                                                "trust_model": True,
                                                "data": {"synthetic": 4}}]}))
    assert main(["run", str(spec), "--store", str(tmp_path / "s.db")]) == 2
    assert "pass --trust-model to run them" in capsys.readouterr().err


def test_a_fifo_named_like_a_model_is_refused_unread(tmp_path, capsys):
    import os

    os.mkfifo(tmp_path / "model.pt")  # opening it to read would block forever
    assert main(["assess", "--model", str(tmp_path / "model.pt"), "--dataset", "digits",
                 "--store", str(tmp_path / "s.db")]) == 2
    assert "FIFO" in capsys.readouterr().err
