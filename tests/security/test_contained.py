"""Files from strangers, contained: structured attacks beside the byte-mutation fuzz.

Each probe runs convbench as a user's shell would (a fresh process, `probe.py`) on a file made
here, and asserts a clear refusal or a recorded cap, in under 10 s and under 1 GiB of peak
resident memory (the probe's own peak, and the peak total of its process tree).
"""

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from convbench.files import UnsafeFileError, check_model_path, check_zip
from convbench.records import Artifact, sha256_path

PROBE = Path(__file__).with_name("probe.py")
SECONDS, PEAK_MIB = 10.0, 1024.0
#: each refusal is held to a wall-clock bound (and limits of 1-4 s), which only a machine
#: with no other test beside it makes a claim about convbench
pytestmark = pytest.mark.solo


def probe(*args: str, env: dict | None = None, seconds: float = SECONDS) -> dict:
    """Run `convbench ARGS` in a fresh process: its result line, console text and stderr."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(PROBE), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})
    wall = time.monotonic() - t0
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr[-2000:]
    out = json.loads(lines[-1])
    out.update(stdout="\n".join(lines[:-1]), stderr=proc.stderr, wall=wall)
    print(f"probe {' '.join(args[:1])}: rc {out['rc']}, {wall:.2f} s, peak "
          f"{out['self_mib']:.0f} MiB (tree {out['tree_mib']:.0f} MiB)")
    assert wall < seconds, (wall, out["stdout"][-500:], proc.stderr[-1000:])
    assert max(out["self_mib"], out["tree_mib"]) < PEAK_MIB, out
    return out


def _error(out: dict) -> str:
    assert out["rc"] == 2, out
    assert "Traceback" not in out["stderr"], out["stderr"][-2000:]
    return out["stderr"].split("convbench: error: ")[-1]


# -- Core ML packages ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def package(trained, tmp_path_factory):
    from convbench.convert import convert

    out = tmp_path_factory.mktemp("pkg")
    return Path(convert(trained["torch"].artifact, "coreml-fp32", out).artifact.path)


def _copy(package: Path, where: Path) -> Path:
    dst = where / package.name
    shutil.copytree(package, dst, symlinks=True)
    return dst


def _manifest(pkg: Path) -> tuple[dict, str]:
    doc = json.loads((pkg / "Manifest.json").read_text())
    return doc, doc["rootModelIdentifier"]


@pytest.mark.parametrize("where", ["relative", "absolute"])
def test_a_manifest_naming_a_model_outside_the_package_is_refused(package, tmp_path, where):
    pkg = _copy(package, tmp_path)
    outside = tmp_path / "outside.mlmodel"
    shutil.copy(pkg / "Data" / "com.apple.CoreML" / "model.mlmodel", outside)
    doc, root = _manifest(pkg)
    doc["itemInfoEntries"][root]["path"] = ("../../outside.mlmodel" if where == "relative"
                                            else str(outside))
    (pkg / "Manifest.json").write_text(json.dumps(doc))
    message = _error(probe("coreml", "ops", str(pkg)))
    assert "outside the package" in message and "Manifest.json" in message
    # --trust-model does not make a manifest path outside the package acceptable
    assert "outside the package" in _error(probe("coreml", "ops", str(pkg), "--trust-model"))


def test_a_model_symlinked_from_outside_needs_trust(package, tmp_path):
    pkg = _copy(package, tmp_path)
    inner = pkg / "Data" / "com.apple.CoreML" / "model.mlmodel"
    outside = tmp_path / "elsewhere.mlmodel"
    shutil.move(inner, outside)
    inner.symlink_to(outside)
    message = _error(probe("coreml", "ops", str(pkg)))
    assert "points outside it" in message and "--trust-model" in message
    trusted = probe("coreml", "ops", str(pkg), "--trust-model", seconds=60)
    assert trusted["rc"] == 0 and "ML Program" in trusted["stdout"], trusted


@pytest.mark.parametrize("target", ["/proc/self/pagemap", "/dev/zero"])
def test_weights_linked_to_a_system_file_are_never_read(package, tmp_path, target):
    pkg = _copy(package, tmp_path)
    weights = next(pkg.rglob("weight.bin"))
    weights.unlink()
    weights.symlink_to(target)
    for trust in ([], ["--trust-model"]):
        message = _error(probe("coreml", "ops", str(pkg), *trust))
        assert "never read" in message and target in message
    t0 = time.monotonic()
    sha256_path(pkg)  # hashing stats the link: it does not read what it points to
    assert time.monotonic() - t0 < 2


def test_a_fifo_inside_a_package_is_never_opened(package, tmp_path):
    pkg = _copy(package, tmp_path)
    os.mkfifo(pkg / "Data" / "com.apple.CoreML" / "weights" / "pipe")
    assert "a FIFO" in _error(probe("coreml", "ops", str(pkg)))
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        sha256_path(pkg)  # would block forever on open()


def test_a_package_declaring_more_than_the_budget_is_refused_unread(package, tmp_path):
    """A 64 GiB weight file that takes no disk (sparse): refused by its size, never read."""
    pkg = _copy(package, tmp_path)
    with open(next(pkg.rglob("weight.bin")), "r+b") as f:
        f.truncate(64 << 30)
    message = _error(probe("coreml", "ops", str(pkg)))
    assert "budget for a model" in message and "CONVBENCH_ARCHIVE_BUDGET" in message


def test_the_suite_packages_still_load(package):
    check_model_path(package, "coreml")
    assert Artifact.from_path("coreml", package).size_bytes > 0


# -- archives --------------------------------------------------------------------------------

def _keras_model(path: Path, shape=(28, 28, 1)) -> Path:
    import keras

    inp = keras.Input(shape)
    out = keras.layers.Dense(10, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp)))
    keras.Model(inp, out).save(path)
    return path


def _inflate(src: Path, dst: Path, member: str, extra: int) -> Path:
    """A copy of zip `src` whose `member` grows by `extra` bytes of spaces (deflates to ~1/1000)."""
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            data = a.read(info.filename)
            b.writestr(info.filename, data + b" " * extra if info.filename == member else data)
    return dst


def _assess(model: Path, tmp_path: Path, *extra: str, framework: str = "keras") -> list[str]:
    return ["assess", "--framework", framework, "--model", str(model), "--dataset", "digits",
            "--n", "20", "--batch-sizes", "2", "--no-memory", "--store",
            str(tmp_path / "s.db"), *extra]


def test_a_keras_config_bomb_is_refused_before_it_inflates(tmp_path):
    good = _keras_model(tmp_path / "good.keras")
    bomb = _inflate(good, tmp_path / "bomb.keras", "config.json", 80 << 20)
    assert bomb.stat().st_size < 1 << 20
    message = _error(probe(*_assess(bomb, tmp_path)))
    assert "config.json inflates to 80 MiB" in message and "decompression bomb" in message


def test_keras_weights_past_the_budget_are_refused(tmp_path):
    good = _keras_model(tmp_path / "good.keras")
    bomb = _inflate(good, tmp_path / "big.keras", "model.weights.h5", 200 << 20)
    message = _error(probe(*_assess(bomb, tmp_path), env={"CONVBENCH_ARCHIVE_BUDGET": "0.1"}))
    assert "above the 102 MiB budget" in message and "CONVBENCH_ARCHIVE_BUDGET" in message
    assert check_zip(good) < 1 << 20  # the genuine model passes with the same budget


def test_a_torch_checkpoint_bomb_is_refused(tmp_path):
    import torch

    good = tmp_path / "w.pt"
    torch.save(torch.nn.Linear(4, 2).state_dict(), good)
    with zipfile.ZipFile(good) as z:
        member = next(n for n in z.namelist() if n.endswith("data.pkl"))
    bomb = _inflate(good, tmp_path / "bomb.pt", member, 300 << 20)
    message = _error(probe(*_assess(bomb, tmp_path, "--factory", "torch.nn:Identity",
                                    framework="torch"),
                           env={"CONVBENCH_ARCHIVE_BUDGET": "0.25"}))
    assert "inflate to" in message and "bomb.pt" in message


@pytest.mark.parametrize("path", ["/dev/zero", "fifo"])
def test_a_special_file_as_the_model_is_refused(tmp_path, path):
    if path == "fifo":
        path = str(tmp_path / "model.keras")
        os.mkfifo(path)
    message = _error(probe(*_assess(Path(path), tmp_path)))
    assert "not a model file" in message


# -- declared shapes and run-time allocations ------------------------------------------------

def test_a_huge_declared_input_is_refused_before_data_is_resized(tmp_path):
    model = _keras_model(tmp_path / "wide.keras", shape=(3000, 3000, 1))
    assert model.stat().st_size < 100_000
    message = _error(probe(*_assess(model, tmp_path, "--memory-limit", "4")))
    assert "declares inputs of 3000x3000x1" in message and "above the memory cap of 4 GiB" \
        in message


USER_MODELS = '''
import time

import torch
from torch import nn


class Greedy(nn.Module):
    """Classifies 1x28x28 digits; run eagerly on real data it allocates 8 GiB."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            x = x + torch.ones(1 << 31).sum() * 0
        return torch.softmax(self.fc(x.flatten(1)), 1)


class Sleepy(Greedy):
    def forward(self, x):
        time.sleep(600)
        return super().forward(x)


def greedy():
    return Greedy()


def sleepy():
    return Sleepy()
'''


def _user_model(tmp_path: Path, factory: str) -> tuple[Path, str]:
    import torch

    (tmp_path / "user_models.py").write_text(USER_MODELS)
    weights = tmp_path / f"{factory}.pt"
    torch.save(torch.nn.Linear(784, 10).state_dict(), tmp_path / "lin.pt")
    torch.save({f"fc.{k}": v for k, v in torch.load(tmp_path / "lin.pt").items()}, weights)
    return weights, f"{tmp_path / 'user_models.py'}:{factory}"


def _stored(tmp_path: Path) -> dict:
    from convbench.store import Store

    with Store(tmp_path / "s.db") as store:
        (cell,) = store.cells()
    return cell


def test_an_allocation_past_the_cap_is_a_recorded_out_of_memory(tmp_path):
    weights, factory = _user_model(tmp_path, "greedy")
    out = probe(*_assess(weights, tmp_path, "--factory", factory, "--memory-limit", "2",
                         "--exporter", "torchscript", framework="torch"))
    assert out["rc"] == 1 and "Traceback" not in out["stderr"]
    cell = _stored(tmp_path)
    assert cell.category.value == "out_of_memory", cell.message
    # the original runs first on one input (its outputs checked against the labels)
    assert "while running the original on the data" in cell.message
    assert "greedy.pt" in cell.message
    assert "memory cap of 2 GiB" in cell.message and "--memory-limit" in cell.message


def test_a_model_past_its_time_limit_is_a_recorded_timeout(tmp_path):
    weights, factory = _user_model(tmp_path, "sleepy")
    out = probe(*_assess(weights, tmp_path, "--factory", factory, "--time-limit", "4",
                         framework="torch"))
    assert out["rc"] == 1 and "Traceback" not in out["stderr"]
    cell = _stored(tmp_path)
    assert cell.category.value == "timeout", cell.message
    assert "past its time limit of 4 s" in cell.message and "sleepy.pt" in cell.message
    assert "--time-limit" in cell.message


def _expand_bomb(path: Path) -> Path:
    """A 95-byte ONNX model whose single Expand allocates 16 GiB when run."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([1 << 16, 1 << 16], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Expand", ["x", "shape"], ["y"])], "bomb",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


RUN_BOMB = """
import json, re, sys
import numpy as np
from convbench.limits import memory_cap, out_of_memory
from convbench.records import Artifact
from convbench.runtimes import open_runner

with memory_cap(1 << 30):
    try:
        with open_runner(Artifact.from_path("onnx", sys.argv[1])) as r:
            r.infer(np.ones(1, np.float32))
        message = ""
    except Exception as e:
        message = str(e)
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read())[1]
print(json.dumps({"oom": out_of_memory(message), "message": message[:300],
                  "peak_mib": int(hwm) / 1024}))
"""


def test_a_runtime_allocation_bomb_fails_at_once_under_the_cap(tmp_path):
    bomb = _expand_bomb(tmp_path / "expand.onnx")
    assert bomb.stat().st_size < 200
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", RUN_BOMB, str(bomb)], capture_output=True,
                          text=True, timeout=60)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["oom"] and "Failed to allocate" in out["message"], out
    assert out["peak_mib"] < PEAK_MIB and time.monotonic() - t0 < SECONDS


def test_onnx_external_data_outside_the_model_folder_is_refused(tmp_path):
    """ONNX Runtime checks external data paths itself; convbench says it plainly."""
    from onnx import TensorProto, helper

    (tmp_path / "secret.bin").write_bytes(np.ones(4, np.float32).tobytes())
    (tmp_path / "m").mkdir()
    w = helper.make_tensor("w", TensorProto.FLOAT, [4], np.zeros(4, np.float32))
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../secret.bin"), ("length", "16")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "m" / "m.onnx"
    path.write_bytes(model.SerializeToString())
    from convbench.models.load import ModelLoadError
    from convbench.runtimes import open_runner

    with pytest.raises(ModelLoadError, match="escapes model directory"):
        with open_runner(Artifact.from_path("onnx", path)):
            pass


# -- the serial executor's limits, in this process --------------------------------------------

class _Cell:
    """A stand-in cell whose body misbehaves."""

    def __init__(self, body):
        from convbench.records import CellKey

        self.key = CellKey("torch", "probe", "digits", "onnx", "onnxruntime")
        self.body = body

    def files(self):
        return ["probe.pt"]

    def run(self, log=None):
        from convbench.progress import step
        from convbench.study.cell import guarded

        def body(result):
            step("converting")
            self.body()

        return guarded(self.key, body)


def _serial(tmp_path, body, limits):
    from convbench.store import Store
    from convbench.study.executor import run_study

    with Store(tmp_path / "s.db") as store:
        (result,) = run_study([_Cell(body)], store, "probe", limits=limits,
                              console=open(os.devnull, "w"))
    return result


def test_serial_cells_are_stopped_at_their_time_limit(tmp_path):
    from convbench.limits import Limits

    t0 = time.monotonic()
    result = _serial(tmp_path, lambda: time.sleep(60), Limits(seconds=1.5))
    assert time.monotonic() - t0 < 5
    assert result.category.value == "timeout"
    assert "while converting" in result.message and "1.5 s" in result.message


def test_a_time_limit_is_not_taken_for_a_failure_the_cell_records(tmp_path):
    """Converters, runtimes and attacks turn their exceptions into recorded outcomes; the
    time limit passes through them."""
    from convbench.limits import Limits

    def swallowing():
        try:
            time.sleep(60)
        except Exception:  # noqa: BLE001 - what a converter's or an attack's guard does
            pass
        raise AssertionError("the time limit was swallowed")

    result = _serial(tmp_path, swallowing, Limits(seconds=1))
    assert result.category.value == "timeout", result.message


def test_serial_cells_are_held_to_their_memory_cap(tmp_path):
    import re

    from convbench.limits import Limits

    data = int(re.search(r"VmData:\s+(\d+) kB", Path("/proc/self/status").read_text())[1])
    cap = data * 1024 + (512 << 20)
    result = _serial(tmp_path, lambda: np.ones(1 << 31, np.uint8), Limits(memory_bytes=cap))
    assert result.category.value == "out_of_memory", result.message
    assert "while converting" in result.message and "Unable to allocate" in result.message
    np.ones(1 << 28, np.uint8)  # the cap is lifted after the cell


def test_a_model_file_is_loaded_once_per_process(tmp_path):
    from convbench.models.load import forget_loaded, load_keras

    path = _keras_model(tmp_path / "m.keras")
    forget_loaded()
    first = load_keras(path)
    assert load_keras(path) is first  # the converter and the runner share it
    assert load_keras(path, trust=True) is not first  # other options: loaded again
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert load_keras(path) is not first  # a changed file is read again
    forget_loaded()


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_a_shared_model_is_unchanged_by_its_conversions(trained, tmp_path, framework,
                                                        digits_test):
    """The converters get the very model object the runner then runs: it must come out of
    both conversions as it went in."""
    from convbench.convert import convert
    from convbench.models import to_layout
    from convbench.models.load import forget_loaded
    from convbench.runtimes import open_runner

    art = trained[framework].artifact
    x = to_layout(digits_test[0][:64], "keras" if framework == "keras" else "torch")
    forget_loaded()
    with open_runner(art) as runner:
        before = runner.infer(x)
    for target in ("onnx", "coreml-fp32"):
        assert convert(art, target, tmp_path / target).ok
    with open_runner(art) as runner:
        assert np.array_equal(runner.infer(x), before)
    forget_loaded()
