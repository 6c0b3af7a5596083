"""`convbench explain` on the zoo's real conversions (no fault where none exists), its pieces
(weight relations, layouts, geometry, sample choice) and its command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from convbench.cli.main import main
from convbench.explain import explain_models, pick_samples, wanted
from convbench.explain.compare import error, layouts, tolerance
from convbench.explain.diff import geometry
from convbench.explain.match import relate
from convbench.explain.trace import Node


# -- the zoo's real conversions -----------------------------------------------------------------
@pytest.mark.parametrize("target", ["onnx", "coreml-fp32", "coreml-nn", "coreml"])
def test_real_conversions_report_no_fault(zoo_pairs, target):
    """FP32 and NeuralNetwork conversions: every op within precision; FP16: no fault beyond
    what fp16 explains. Every source weight is found, none altered."""
    pairs = [p for p in zoo_pairs if target in p.converted]
    assert {(p.framework, p.model) for p in pairs} >= {("torch", "lenet5"), ("keras", "lenet5"),
                                                        ("torch", "resnet18")}
    for pair in pairs:
        ex = explain_models(pair.original, pair.converted[target], pair.x, samples=4)
        v = ex.verdict
        allowed = (None,) if target != "coreml" else (None, "precision")
        assert v.fault in allowed, f"{pair.framework} {pair.model} {target}: {v}"
        kinds = {p["kind"] for p in ex.parameters}
        assert kinds <= {"equal", "transposed", "folded", "fp16"}, (pair.model, kinds)
        assert not [p for p in ex.parameters if p["kind"] == "not found"]
        compared = [r for r in ex.ops if r.error]
        assert len(compared) >= 0.8 * len([r for r in ex.ops if r.status != "no-value"])
        assert all(r.status == "ok" for r in compared), [
            (r.op, r.error["rel"], r.tolerance) for r in compared if r.status != "ok"]
        assert ex.samples and len(ex.samples) == 4


@pytest.mark.parametrize("framework,target", [("torch", "openvino"), ("keras", "tflite"),
                                              ("keras", "tflite-fp16")])
def test_openvino_and_litert_conversions_are_explained_too(zoo_pairs, framework, target):
    """LeNet-5 to OpenVINO IR and LiteRT: every op traced, its weights found, no fault."""
    from convbench.convert import convert

    pair = next(p for p in zoo_pairs if p.model == "lenet5" and p.framework == framework)
    c = convert(pair.original, target, Path(pair.converted["onnx"].path).parent)
    assert c.ok, c.message
    ex = explain_models(pair.original, c.artifact, pair.x, samples=4)
    assert ex.verdict.fault in ((None,) if target != "tflite-fp16" else (None, "precision"))
    kinds = {p["kind"] for p in ex.parameters if p["op"]}
    assert kinds and kinds <= {"equal", "transposed", "fp16"}, ex.parameters
    compared = [r for r in ex.ops if r.error]
    assert len(compared) >= 8 and all(r.status == "ok" for r in compared)


def test_every_runtime_but_executorch_exposes_its_tensors():
    """A runtime added without a tracer is caught here (and named in the README if left so)."""
    from convbench.runtimes import RUNNERS
    from convbench.runtimes.base import Runner

    untraced = {n for n in RUNNERS.names() if RUNNERS.get(n).trace is Runner.trace}
    assert untraced == {"executorch"}


def test_the_traced_rows_are_the_flipped_then_the_worst():
    a = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]])
    b = np.array([[0.9, 0.1], [0.4, 0.6], [0.25, 0.75], [0.5, 0.5]])
    assert pick_samples(a, b, 1) == [1]  # the flip first
    assert pick_samples(a, b, 2) == [1, 2]  # then the largest error
    assert wanted("on_flip", 0, 0.0) is False and wanted("on_flip", 1, 0.0) is True
    assert wanted("on_flip", 0, 1e-3) is True and wanted(True, 0, 0.0) is True


def test_traces_over_the_memory_budget_keep_fewer_samples(zoo_pairs, monkeypatch):
    import convbench.explain as explain

    pair = zoo_pairs[0]
    monkeypatch.setattr(explain, "MEMORY_GIB", 1e-4)  # ~100 KiB: one LeNet-5 sample fits
    ex = explain_models(pair.original, pair.converted["onnx"], pair.x, samples=4)
    assert len(ex.samples) < 4 and ex.notes and "CONVBENCH_EXPLAIN_GIB" in ex.notes[0]
    assert ex.verdict.fault is None and all(r.status != "diverged" for r in ex.ops)


def _chain(kind: str, values: list, dtype: str = "float32", weights=None):
    """A hand-made trace: one op per value, each reading the previous."""
    from convbench.explain.trace import Trace

    nodes, prev = [], "input"
    for i, v in enumerate(values):
        nodes.append(Node(f"{kind}{i}", kind, [prev], f"{kind}{i}", v, dtype=dtype,
                          weights=dict(weights[i]) if weights and weights[i] else {}))
        prev = f"{kind}{i}"
    return nodes


def test_verdicts_of_hand_made_traces():
    """A graph that breaks at its first op is a graph fault, not "no fault"; an fp16 op just
    past what fp16 explains is precision; fp16 rounding that flips a near tie is precision."""
    from convbench.explain import explain_traces
    from convbench.explain.trace import Trace

    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    h = np.maximum(x, 0)
    orig = Trace(_chain("relu", [h]), "input", x, "none")
    broken = Trace([], "input", x, "none", stopped="the converted graph stops at Foo 'f': boom")
    v = explain_traces(orig, broken).verdict
    assert v.fault == "graph" and "boom" in v.detail
    off = h * (1 + 2e-2)  # past what fp16 explains at this depth (6e-3), within 10x
    v = explain_traces(orig, Trace(_chain("Relu", [off], "float16"), "input", x, "none")).verdict
    assert v.fault == "precision" and v.op == "Relu0"
    logits = np.array([[1.0, 1.0001], [3.0, 0.0]], np.float32)  # the first row is a near tie
    orig = Trace(_chain("dense", [logits]), "input", logits, "none")
    swapped = logits.copy()
    swapped[0] = [1.0001, 1.0]
    v = explain_traces(orig, Trace(_chain("Gemm", [swapped], "float16"), "input", logits,
                                   "none")).verdict
    assert v.fault == "precision" and "1 of 2 labels flip" in v.detail
    # a departure a later op undoes (a converter moved +3 into the op before): no divergence
    h2 = np.minimum(h, 6.0) * 0.5
    orig = Trace(_chain("relu", [h, h2]), "input", x, "none")
    conv = Trace(_chain("add", [h + 3.0, h2]), "input", x, "none")
    ex = explain_traces(orig, conv)
    assert ex.verdict.fault is None and [r.status for r in ex.ops] == ["rejoins", "ok"]


# -- pieces ---------------------------------------------------------------------------------
def test_weight_relations():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    assert relate(w.copy(), w).kind == "equal"
    hwio = w.transpose(2, 3, 1, 0)  # Keras' kernel layout
    r = relate(w, hwio)
    assert r.kind == "transposed" and hwio.transpose(r.perm).shape == w.shape
    assert relate(w.astype(np.float16).astype(np.float32), w).kind == "fp16"
    scale = rng.uniform(0.5, 2, 8).astype(np.float32)
    r = relate(w * scale[:, None, None, None], w)
    assert r.kind == "folded" and r.axis == 0 and np.allclose(r.scale, scale, rtol=1e-5)
    noisy = w + 0.5 * w.std() * rng.standard_normal(w.shape).astype(np.float32)
    assert relate(noisy, w).kind == "altered"
    assert relate(rng.standard_normal(w.shape).astype(np.float32), w) is None  # unrelated


def test_layouts_never_hide_a_transpose():
    assert layouts((2, 8, 5, 5), (2, 5, 5, 8)) == [(0, 2, 3, 1)]
    assert (0, 1, 3, 2) not in layouts((2, 8, 5, 5), (2, 8, 5, 5))  # an H/W swap is a change
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 4)).astype(np.float32)
    assert error(x, x.transpose(0, 2, 3, 1)).rel == 0
    assert error(x, x.transpose(0, 1, 3, 2)).rel > 0.5
    assert error(x, x[:, :, :2]).shape_differs
    assert tolerance("float16", 10) > 100 * tolerance("float32", 10)


def test_padding_reads_the_same_across_frameworks():
    """Keras "same" on a 28x28 input with a 5x5 kernel is ONNX's pads [2,2,2,2], PyTorch's
    padding 2, MIL's custom pad [2,2,2,2] and a NeuralNetwork border of 2."""
    k = Node("c", "Conv2D", [], "c", None, attrs={"padding": "same", "strides": [1, 1],
                                                   "kernel": [5, 5]})
    o = Node("c", "Conv", [], "c", None, attrs={"pads": [2, 2, 2, 2], "strides": [1, 1],
                                                 "kernel_shape": [5, 5]})
    t = Node("c", "Conv2d", [], "c", None, attrs={"padding": [2, 2], "strides": [1, 1],
                                                   "kernel": [5, 5]})
    m = Node("c", "conv", [], "c", None, attrs={"pad_type": "custom", "pad": [2, 2, 2, 2],
                                                 "strides": [1, 1]},
             weights={"weight": np.zeros((6, 1, 5, 5), np.float32)})
    nn = Node("c", "convolution", [], "c", None, attrs={
        "valid.paddingAmounts.borderAmounts": [{"startEdgeSize": 2, "endEdgeSize": 2}] * 2,
        "stride": [1, 1], "kernelSize": [5, 5]})
    pads = {n.kind: geometry(n, [28, 28])["pads"] for n in (k, o, t, m, nn)}
    assert set(map(tuple, pads.values())) == {(2, 2, 2, 2)}, pads
    # stride 2 on an even input: TensorFlow pads the extra pixel at the end
    k2 = Node("c", "Conv2D", [], "c", None, attrs={"padding": "same", "strides": [2, 2],
                                                    "kernel": [3, 3]})
    assert geometry(k2, [32, 32])["pads"] == [0, 0, 1, 1]


# -- the command line ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def lenet_torch(zoo_pairs):
    return next(p for p in zoo_pairs if p.model == "lenet5" and p.framework == "torch")


def test_cli_explains_a_pair_of_files_as_json(lenet_torch, capsys):
    p = lenet_torch
    code = main(["explain", "--original", p.original.path, "--converted",
                 p.converted["onnx"].path, "--dataset", "digits", "--n", "100", "--samples",
                 "3", "--format", "json"])
    out = json.loads(capsys.readouterr().out,  # strict JSON: no Infinity, no NaN
                     parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert code == 0
    assert out["verdict"]["fault"] is None and len(out["samples"]) == 3
    first = out["ops"][0]
    assert first["op_type"] == "Conv" and first["layer"] == "body.0"
    assert first["weights"]["kind"] == "equal" and first["status"] == "ok"
    assert out["input_contract"]["converted"]["layout"] == "nchw"


def test_cli_repairs_altered_weights(lenet_torch, tmp_path, capsys):
    import onnx
    from onnx import numpy_helper

    p = lenet_torch
    m = onnx.load(p.converted["onnx"].path)
    w = next(t for t in m.graph.initializer if numpy_helper.to_array(t).ndim == 4)
    a = numpy_helper.to_array(w)
    w.CopyFrom(numpy_helper.from_array((a * -1.0).astype(a.dtype), w.name))  # sign flipped
    bad = tmp_path / "bad.onnx"
    onnx.save(m, bad)
    fixed = tmp_path / "fixed.onnx"
    code = main(["explain", "--original", p.original.path, "--converted", str(bad),
                 "--dataset", "digits", "--n", "200", "--repair", "weights", "--repair-out",
                 str(fixed), "--plot", str(tmp_path / "depth.png")])
    out = capsys.readouterr().out
    assert code == 0 and "fault: weights" in out
    assert fixed.exists() and (tmp_path / "depth.png").read_bytes()[:4] == b"\x89PNG"
    repaired = {t.name: numpy_helper.to_array(t) for t in onnx.load(fixed).graph.initializer}
    assert np.array_equal(repaired[w.name], a)  # the source's weights, back
    line = next(ln for ln in out.splitlines() if ln.startswith("repaired weights"))
    before, after = (int(v) for v in line.split(": ")[1].split(" label")[0].split(" -> "))
    assert before > 0 and after == 0


def test_cli_bad_input_says_what_to_do(lenet_torch, tmp_path, capsys):
    p = lenet_torch
    assert main(["explain", "--cell", "nope", "--store", str(tmp_path / "s.db")]) == 2
    assert "none stored" in capsys.readouterr().err
    pte = tmp_path / "m.pte"
    pte.write_bytes(b"x")
    assert main(["explain", "--original", p.original.path, "--converted", str(pte),
                 "--dataset", "digits"]) == 2
    assert "ExecuTorch programs do not expose" in capsys.readouterr().err
    assert main(["explain", "--original", p.original.path]) == 2
    assert "--converted" in capsys.readouterr().err
    assert main(["explain", "--original", p.original.path, "--converted",
                 p.converted["onnx"].path, "--dataset", "digits", "--samples", "0"]) == 2
    assert "at least one sample" in capsys.readouterr().err


def test_a_study_explains_its_cells_and_stores_the_verdict(tmp_path, capsys):
    """`explain: true` in a study: a new cell is explained as it runs, a cell stored before
    explain was on is explained as stored (not run again); the verdict is stored with the
    cell, shown by `explain --cell`, in `results --format json` and in the report."""
    spec = tmp_path / "s.yaml"
    body = ("name: ex\npreset: smoke\nframeworks: [torch]\nmodels: [{model: lenet5, "
            "dataset: digits}]\nn_test: 60\nexplain_samples: 3\n"
            "measures: {latency_batch_sizes: [], memory: false}\n")
    store = str(tmp_path / "s.db")
    spec.write_text(body + "formats: [coreml-nn]\n")
    assert main(["run", str(spec), "--store", store]) == 0
    spec.write_text(body + "formats: [coreml-nn, onnx]\nexplain: true\n")
    assert main(["run", str(spec), "--store", store]) == 0
    assert "explaining 1 stored cell(s)" in capsys.readouterr().err
    assert main(["results", "--store", store, "--format", "json"]) == 0
    cells = json.loads(capsys.readouterr().out,
                       parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))["cells"]
    assert [c["format"] for c in cells] == ["coreml-nn", "onnx"]  # the first one not rerun
    assert cells[0]["attempts"] == 1
    for cell in cells:
        assert cell["explanation"]["verdict"]["fault"] is None
        assert len(cell["explanation"]["samples"]) == 3
        assert any(o["name"] == "explain" and o["status"] == "ok" for o in cell["outcomes"])
    assert main(["explain", "--cell", cells[0]["id"][:10], "--store", store]) == 0
    out = capsys.readouterr().out
    assert "(as stored)" in out and "no fault" in out and "convolution" in out
    assert main(["report", "--store", store, "--out", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Where conversions depart" in md and "explain_1.png" in md
