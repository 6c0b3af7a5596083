"""Model files from strangers: no pickled code runs, Lambda layers need explicit trust, and
corrupt files of every format give a clear error and a recorded outcome."""

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from convbench.cli.main import main
from convbench.convert import convert
from convbench.models.load import ModelLoadError, load_keras, load_torch
from convbench.records import Artifact
from convbench.runtimes import open_runner


class _System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Exec:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


class _Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"__import__('pathlib').Path({str(self.marker)!r}).touch()",))


@pytest.mark.parametrize("payload", [_System, _Exec, _Eval])
@pytest.mark.parametrize("wrap", ["bare", "in_state_dict", "raw_pickle"])
def test_pickle_payloads_are_refused_and_never_run(tmp_path, payload, wrap):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    obj = payload(marker)
    if wrap == "raw_pickle":
        path.write_bytes(pickle.dumps(obj))
    else:
        torch.save(obj if wrap == "bare" else {"weight": torch.zeros(2), "x": obj}, path)
    with pytest.raises(ModelLoadError, match="weights_only=True"):
        load_torch(path, factory="torch.nn:Identity")
    assert not marker.exists()


def test_a_lambda_layer_needs_explicit_trust(tmp_path, capsys):
    import keras

    inp = keras.Input((28, 28, 1))
    out = keras.layers.Lambda(lambda t: t * 1.0)(inp)
    out = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(out))
    path = tmp_path / "lambda.keras"
    keras.Model(inp, out).save(path)
    with pytest.raises(ModelLoadError, match="--trust-model"):
        load_keras(path)
    args = ["assess", "--framework", "keras", "--model", str(path), "--dataset", "digits",
            "--n", "30", "--batch-sizes", "2", "--no-memory", "--store", str(tmp_path / "s.db")]
    assert main(args) == 2
    assert "--trust-model" in capsys.readouterr().err
    assert load_keras(path, trust=True) is not None


def _corruptions(good: bytes) -> dict[str, bytes]:
    return {"empty": b"", "truncated": good[: len(good) // 3], "garbage": os.urandom(2048),
            "flipped": bytes(b ^ 0xFF if i % 97 == 0 else b for i, b in enumerate(good))}


@pytest.fixture(scope="module")
def models(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("good")
    src = trained["torch"].artifact
    return {"torch": src, "keras": trained["keras"].artifact,
            "onnx": convert(src, "onnx", out, exporter="torchscript").artifact,
            "coreml-nn": convert(src, "coreml-nn", out).artifact,
            "coreml": convert(src, "coreml-fp32", out).artifact}


@pytest.mark.parametrize("fmt", ["torch", "keras", "onnx", "coreml-nn", "coreml"])
def test_corrupt_model_files_give_a_clear_error(models, tmp_path, fmt):
    good = models[fmt]
    for name, data in _corruptions(_main_file(good).read_bytes()).items():
        bad = _copy_with(good, tmp_path / name, data)
        with pytest.raises(Exception) as e:
            with open_runner(bad, engine="interpreter") if bad.format == "coreml" \
                    else open_runner(bad):
                pass
        assert type(e.value).__name__ in ("ModelLoadError", "ProgramLoadError", "MilError",
                                          "UnsupportedOpError"), (name, e.value)
        assert str(bad.path) in str(e.value) or "Core ML" in str(e.value), str(e.value)


def _main_file(art: Artifact):
    from pathlib import Path

    p = Path(art.path)
    return p / "Data" / "com.apple.CoreML" / "model.mlmodel" if p.is_dir() else p


def _copy_with(good: Artifact, where, data: bytes) -> Artifact:
    from pathlib import Path

    src = Path(good.path)
    where.mkdir(parents=True, exist_ok=True)
    dst = where / src.name
    if src.is_dir():
        shutil.copytree(src, dst)
        (dst / "Data" / "com.apple.CoreML" / "model.mlmodel").write_bytes(data)
    else:
        dst.write_bytes(data)
        for side in (".arch.json",):
            if Path(str(src) + side).exists():
                shutil.copy(str(src) + side, str(dst) + side)
    return Artifact.from_path(good.format, dst, **good.meta)


def test_a_wrong_shape_state_dict_is_a_clear_error(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(torch.nn.Linear(3, 3).state_dict(), path)
    with pytest.raises(ModelLoadError, match="weights do not fit"):
        load_torch(path, architecture={"model": "lenet5", "input_shape": [1, 28, 28],
                                       "num_classes": 10, "options": {}})


def test_a_converted_model_that_does_not_load_is_a_runtime_error(models, tmp_path):
    """A converted model that does not load is a categorised failure, not a traceback."""
    from convbench.convert.base import Conversion
    from convbench.records import Category
    from convbench.study.cell import CellFailure, MeasureOptions, compare

    bad = _copy_with(models["onnx"], tmp_path / "b", b"not onnx")
    conv = Conversion("onnx_from_torch", Category.OK, bad)
    x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    with pytest.raises(CellFailure) as e:
        compare(models["torch"], conv, x, np.zeros(8, int), MeasureOptions([1], 0, 1, False))
    assert e.value.category is Category.RUNTIME_ERROR and "cannot load" in str(e.value)


def test_nan_inputs_are_a_data_error(models):
    from convbench.convert.base import Conversion
    from convbench.records import Category
    from convbench.study.cell import CellFailure, MeasureOptions, compare

    x = np.zeros((4, 1, 28, 28), np.float32)
    x[2, 0, 3, 3] = np.nan
    conv = Conversion("onnx_from_torch", Category.OK, models["onnx"])
    with pytest.raises(CellFailure, match="1 input.s. hold NaN or Inf") as e:
        compare(models["torch"], conv, x, np.zeros(4, int), MeasureOptions([1], 0, 1, False))
    assert e.value.category is Category.DATA_ERROR


def test_fuzzed_model_files_never_escape_as_uncaught_errors(models, tmp_path):
    """At least 1,000 mutated files per format (CONVBENCH_FUZZ_CASES to change it), each
    loaded through its runner in a child process: 0 uncaught errors, 0 native crashes."""
    import subprocess
    import sys
    from dataclasses import asdict
    from pathlib import Path

    cases = int(os.environ.get("CONVBENCH_FUZZ_CASES", "1000"))
    (tmp_path / "models.json").write_text(json.dumps(
        {fmt: asdict(art) for fmt, art in models.items()}))
    script = Path(__file__).with_name("fuzz_models.py")
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), str(cases)],
                          capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(summary) == set(models)
    for fmt, s in summary.items():
        assert s["cases"] >= cases, (fmt, s["cases"])
        assert s["uncaught_count"] == 0, (fmt, s["uncaught"])
