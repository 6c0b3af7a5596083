"""The report: every table, numbers equal to the store's, statistics, and a real browser."""

import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from convbench.records import Artifact, Outcome, Status
from convbench.report import build_report
from convbench.report.findings import FINDINGS
from convbench.report.stats import wilcoxon_paired, wilson
from convbench.store import Store

from cells import cell, failed

LAT_O = [0.010, 0.011, 0.012, 0.010, 0.013, 0.011]
LAT_C = [0.005, 0.006, 0.005, 0.006, 0.005, 0.007]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Six runs of one cell with known numbers, one failed cell, one failed attack."""
    d = tmp_path_factory.mktemp("synthetic")
    f = d / "m.onnx"
    f.write_bytes(b"x" * 2048)
    with Store(d / "s.db") as store:
        for run in range(6):
            r = cell(run=run, acc=(0.98 + run / 1000,) * 2, flips=run,
                     latency={1: ((LAT_O[run] / 10,) * 3 + (False,),
                                  (LAT_C[run] / 10,) * 3 + (run == 0,)),
                              128: ((LAT_O[run],) * 3 + (False,), (LAT_C[run],) * 3 + (False,))},
                     attacks={"fgsm": {"n": 100, "miss": (0.4, 0.4), "only": (0, 0), "div": 0,
                                       "params": {"eps": 0.3},
                                       "sweep": {0.1: (0.1, 0.1), 0.2: (0.25, 0.3)}}},
                     artifact=Artifact.from_path("onnx", f, holds="ONNX graph"))
            if run == 0:
                r.outcomes.append(Outcome("attack", "boundary", Status.FAILED, "boundary boom"))
                r.outcomes.append(Outcome("measure", "memory", Status.FAILED, "probe boom"))
            store.put(r, "synthetic")
        store.put(failed(), "synthetic")
    return d / "s.db", d


def test_numbers_equal_the_stores(synthetic):
    db, d = synthetic
    md, html = build_report(db, d / "out")
    text = md.read_text()
    acc = np.mean([0.98 + r / 1000 for r in range(6)])
    lo, hi = wilson(acc, 6000)
    assert f"{acc:.4f} [{lo:.4f}, {hi:.4f}]" in text
    assert f"{np.mean(range(6)):.1f} ± {np.std(range(6), ddof=1):.1f}" in text  # flips
    assert "4.0 KB" in text and "2.0 KB" in text and "ONNX graph" in text
    b128 = f"b128: {np.mean(LAT_O) * 1e3:.1f} ± {np.std(LAT_O, ddof=1) * 1e3:.2f} -> "
    assert b128 in text
    assert f"b1: {np.mean(LAT_O) * 1e2:.3g} ± " in text and "* ->" not in text
    # one converted figure at batch 1 was noisy: the cell's figure is marked, and listed
    assert f"{np.mean(LAT_C) * 1e2:.3g} ± {np.std(LAT_C, ddof=1) * 1e2:.3g}*" in text
    assert "| torch lenet5 mnist -> onnx run 0 | converted | 1 |" in text
    w = wilcoxon_paired(LAT_O, LAT_C)
    assert f"| 128 | 6 | {w['p']:.3g} | {w['effect']:+.2f} | significant |" in text
    # formats by models: the six lenet5 runs kept their accuracy, the lstm's conversion failed
    matrix = text[text.index("## Formats by model"):text.index("## RQ1")]
    assert "| framework | model | dataset | onnx | coreml |" in matrix
    assert "| keras | lstm | imdb |  | failed: converter_crash |" in matrix
    assert "| torch | lenet5 | mnist | +0.00% |  |" in matrix
    assert "| fgsm | 100 ± 0 | 0 ± 0 | 40.0% ± 0.0% | 40.0% ± 0.0% | 0.0 ± 0.0 | 1 |" in text
    assert "| failed | converter_crash | 1 |" in text and "IndexError: boom" in text
    assert "| attack | boundary | failed | boundary boom |" in text
    assert "| measure | memory | failed | probe boom |" in text
    for check in FINDINGS:
        assert check([]).title in text
    for section in ("RQ1", "RQ2", "RQ3", "The study beside convbench", "Outcomes",
                    "Environment"):
        assert f"## {section}" in text
    for fig in ("accuracy", "errors", "latency", "size", "divergence", "robustness-fgsm"):
        assert (d / "out" / "figures" / f"{fig}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"figures/{fig}.png" in text


def test_every_sweep_is_a_robustness_curve(synthetic, monkeypatch):
    from convbench.report import build as report_build

    curves = {}

    def spy(series, xlabel, ylabel, **kw):
        curves[xlabel] = series
        return b"\x89PNG"

    monkeypatch.setattr(report_build.plots, "paired_lines", spy)
    db, d = synthetic
    build_report(db, d / "spy")
    [(x, orig, conv)] = curves["fgsm eps"].values()
    assert x == [0.1, 0.2, 0.3]  # the sweep and the attack's own eps
    assert orig == pytest.approx([0.1, 0.25, 0.4]) and conv == pytest.approx([0.1, 0.3, 0.4])


def test_statistics():
    lo, hi = wilson(0.5, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.4038, 0.5962)
    assert "too few runs" in wilcoxon_paired([1, 2], [0, 1])["verdict"]
    w = wilcoxon_paired([2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 1, 1, 1, 1, 1, 1])
    assert w["verdict"] == "significant" and w["effect"] == 1.0
    same = wilcoxon_paired([1, 2, 3, 4, 5, 6, 7], [1.1, 1.9, 3.2, 3.8, 5.1, 5.9, 7.05])
    assert same["verdict"] == "not significant"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_renders_in_a_real_browser(synthetic):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install chromium (.ci/run does)")
        pytest.skip("chromium not installed")
    db, d = synthetic
    _, html = build_report(db, d / "browser")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=5000", "--dump-dom", html.resolve().as_uri()],
            capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    loaded = dom.split('data-images-loaded="')[1].split('"')[0]
    ok, total = map(int, loaded.split("/"))
    assert total >= 5 and ok == total, loaded  # every plot decoded
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    assert "RQ3: does the converted model keep its robustness?" in dom


def test_demo_writes_the_report(tmp_path, monkeypatch, capsys):
    from convbench.cli import study_cmds

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(study_cmds.DEMO, "train", {"epochs": 2, "n_train": 300})
    monkeypatch.setitem(study_cmds.DEMO, "n_test", 60)
    monkeypatch.setitem(study_cmds.DEMO, "attack_n", 20)
    monkeypatch.setitem(study_cmds.DEMO, "measures", {"latency_batch_sizes": [1],
                                                      "latency_repeats": 2, "memory": False})
    from convbench.cli.main import main

    assert main(["demo"]) == 0
    out, err = capsys.readouterr()
    assert "report: " in out and (tmp_path / "convbench-report" / "report.html").exists()
    md = (tmp_path / "convbench-report" / "report.md").read_text()
    assert "torch lenet5 digits -> coreml" in md and "| fgsm |" in md
    # nothing but the table and the report's path on the console: the frameworks' chatter
    # (TensorFlow start-up, exporter warnings, coremltools' progress bars) is in the logs
    out_lines = [line for line in out.splitlines() if line.strip()]
    assert out_lines[0].startswith("cell ") and out_lines[-1].startswith("report: ")
    for chatter in ("oneDNN", "absl", "Converting PyTorch Frontend", "Running MIL",
                    "torchvision", "WARNING"):
        assert chatter not in out and chatter not in err, chatter
