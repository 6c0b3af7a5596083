import json
import subprocess
import sys
from pathlib import Path

import pytest

from convbench.cli.main import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_help_imports_no_deep_learning_framework():
    code = ("import sys; from convbench.cli.main import main\n"
            "try: main(['--help'])\nexcept SystemExit: pass\n"
            "heavy = [m for m in ('torch', 'tensorflow', 'keras', 'coremltools', 'onnxruntime')"
            " if m in sys.modules]\nprint('HEAVY:' + ','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "COMMAND" in out.stdout and out.stdout.strip().splitlines()[-1] == "HEAVY:"


def test_assess_a_torch_model_defined_outside_the_zoo(tmp_path, capsys):
    import torch

    sys.path.insert(0, str(FIXTURES))
    import user_models

    torch.manual_seed(0)
    model = user_models.tiny_cnn()
    torch.save(model.state_dict(), tmp_path / "tiny.pt")
    store = tmp_path / "s.db"
    rc = main(["assess", "--framework", "torch", "--model", str(tmp_path / "tiny.pt"),
               "--factory", f"{FIXTURES / 'user_models.py'}:tiny_cnn", "--dataset", "digits",
               "--input-shape", "1,16,16", "--to", "onnx", "--n", "200", "--batch-sizes", "1,16",
               "--store", str(store)])
    assert rc == 0
    assert "torch tiny.pt digits -> onnx" in capsys.readouterr().out
    assert main(["results", "--store", str(store), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["schema"], out["version"]) == ("convbench.results", 2)
    [cell] = out["cells"]
    assert (cell["framework"], cell["model"], cell["format"], cell["runtime"], cell["status"]) == (
        "torch", "tiny.pt", "onnx", "onnxruntime", "ok")
    assert _value(cell, "inputs") == 200 and _value(cell, "label_flips") == 0
    assert _value(cell, "abs_err", stat="max") < 1e-5
    assert _value(cell, "memory", stat="peak", role="converted") > 0
    assert _value(cell, "latency", stat="median", role="original", batch_size=16) > 0
    lat = [m for m in cell["metrics"] if m["measure"] == "latency"]
    assert {m["unit"] for m in lat if m["stat"] == "median"} == {"s"}
    assert all(isinstance(m["noisy"], bool) for m in lat)


def _value(cell: dict, measure: str, **fields):
    """The value of the one JSON metric with these fields (the unnamed ones at their empty
    defaults), as a user reading `convbench results --format json` would find it."""
    want = {"stat": "", "role": "", "batch_size": None, "attack": "", "direction": "",
            "sweep": "", "sweep_value": None, **fields, "measure": measure}
    [m] = [m for m in cell["metrics"] if all(m[k] == v for k, v in want.items())]
    return m["value"]


def test_assess_a_keras_model(trained, tmp_path, capsys):
    rc = main(["assess", "--framework", "keras", "--model", trained["keras"].artifact.path,
               "--dataset", "digits", "--n", "100", "--batch-sizes", "4", "--no-memory",
               "--store", str(tmp_path / "s.db")])
    assert rc == 0
    capsys.readouterr()
    main(["results", "--store", str(tmp_path / "s.db"), "--format", "csv"])
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    flips = [r for r in rows if r["measure"] == "label_flips"]
    assert len(flips) == 1 and flips[0]["status"] == "ok" and float(flips[0]["value"]) == 0
    lat = [r for r in rows if r["measure"] == "latency" and r["stat"] == "median"]
    assert {(r["role"], r["batch_size"]) for r in lat} == {("original", "4"), ("converted", "4")}


def test_assess_refuses_a_pickled_module(tmp_path, capsys):
    import torch

    torch.save(torch.nn.Linear(2, 2), tmp_path / "whole.pt")  # a pickled module, not weights
    rc = main(["assess", "--framework", "torch", "--model", str(tmp_path / "whole.pt"),
               "--factory", "torch.nn:Identity", "--dataset", "digits", "--n", "20",
               "--store", str(tmp_path / "s.db"), "--no-memory"])
    assert rc == 1
    out = capsys.readouterr().out
    assert "model_load_error" in out and "weights_only" in out


@pytest.mark.parametrize("argv, message", [
    (["run", "nope.yaml"], "no such study spec"),
    (["assess", "--framework", "torch", "--model", "nope.pt", "--dataset", "digits"],
     "no such file"),
    (["results", "--store", "{junk}"], "not a convbench store"),
])
def test_bad_input_gives_a_clear_error(argv, message, tmp_path, capsys):
    junk = tmp_path / "junk.db"
    junk.write_text("junk" * 100)
    argv = [a.replace("{junk}", str(junk)) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_data_info_lists_every_dataset(capsys):
    assert main(["data", "info"]) == 0
    out = capsys.readouterr().out
    assert "digits   present (450 test samples)" in out
    for name in ("mnist", "cifar10", "imdb"):
        assert name in out


def test_train_command_saves_the_model(tmp_path, capsys):
    assert main(["train", "--framework", "torch", "--model", "lenet5", "--dataset", "digits",
                 "--preset", "smoke", "--epochs", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert ".pt" in out and "no optimizer state" in out
    assert list(tmp_path.glob("lenet5-torch-*.pt"))


def test_assess_with_attacks(trained, tmp_path, capsys):
    rc = main(["assess", "--framework", "torch", "--model", trained["torch"].artifact.path,
               "--dataset", "digits", "--to", "onnx", "--n", "120", "--batch-sizes", "4",
               "--no-memory", "--attack", "fgsm,hopskipjump", "--attack-n", "20",
               "--store", str(tmp_path / "s.db")])
    assert rc == 0
    assert "fgsm " in capsys.readouterr().out  # the RQ3 column
    main(["results", "--store", str(tmp_path / "s.db"), "--format", "json"])
    [cell] = json.loads(capsys.readouterr().out)["cells"]
    assert _value(cell, "inputs", attack="fgsm", direction="forward") == 20
    assert _value(cell, "inputs", attack="hopskipjump", direction="reverse") == 20
    assert _value(cell, "misclassification", role="original", attack="hopskipjump",
                  direction="forward") > 0.5
    assert [(o["name"], o["status"]) for o in cell["outcomes"]] == [("fgsm", "ok"),
                                                                   ("hopskipjump", "ok")]


def test_a_study_with_missing_data_is_refused_before_any_work(tmp_path, capsys):
    import yaml

    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"name": "x", "preset": "smoke", "frameworks": ["torch"],
                                    "models": [{"model": "lenet5", "dataset": "mnist"},
                                               {"model": "lenet5", "dataset": "digits"}]}))
    store = tmp_path / "s.db"
    assert main(["run", str(spec), "--store", str(store), "--data-dir",
                 str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "nothing was run" in err and "mnist: not found" in err
    assert not store.exists()
