"""The report: every table, numbers equal to the store's, statistics, and a real browser."""

import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from convbench.records import Artifact, Category, CellKey, CellResult, Status
from convbench.report import build_report
from convbench.report.findings import FINDINGS
from convbench.report.stats import wilcoxon_paired, wilson
from convbench.store import Store

LAT_O = [0.010, 0.011, 0.012, 0.010, 0.013, 0.011]
LAT_C = [0.005, 0.006, 0.005, 0.006, 0.005, 0.007]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Six runs of one cell with known numbers, and one failed cell."""
    d = tmp_path_factory.mktemp("synthetic")
    f = d / "m.onnx"
    f.write_bytes(b"x" * 2048)
    with Store(d / "s.db") as store:
        for run in range(6):
            r = CellResult(CellKey("torch", "lenet5", "mnist", "onnx", "onnxruntime", run, "h"))
            r.metrics = {"n": 1000, "accuracy_original": 0.98 + run / 1000,
                         "accuracy_converted": 0.98 + run / 1000, "mcnemar_p": 1.0,
                         "label_flips": float(run), "abs_err_mean": 1e-7, "abs_err_p99": 1e-6,
                         "abs_err_max": 2e-6, "bitwise_mismatch_rate": 0.5, "accuracy_delta": 0,
                         "size_bytes_original": 4096, "size_bytes_converted": 2048,
                         "latency_median_s_bs1_original": LAT_O[run] / 10,
                         "latency_median_s_bs1_converted": LAT_C[run] / 10,
                         "latency_median_s_bs128_original": LAT_O[run],
                         "latency_median_s_bs128_converted": LAT_C[run],
                         "fgsm_n": 100, "fgsm_misclass_original": 0.4, "fgsm_misclass_converted":
                         0.4, "fgsm_divergence": 0, "fgsm_divergence_rate": 0.0,
                         "fgsm_abs_out_diff_mean": 0.0}
            r.artifacts = {"converted": Artifact.from_path("onnx", f, holds="ONNX graph")}
            store.put(r, "synthetic")
        store.put(CellResult(CellKey("keras", "lstm", "imdb", "coreml", "coreml", 0, "h"),
                             Status.FAILED, Category.CONVERTER_CRASH, "IndexError: boom"),
                  "synthetic")
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
    b128 = f"b128: {np.mean(LAT_O) * 1e3:.2f} ± {np.std(LAT_O, ddof=1) * 1e3:.2f} -> "
    assert b128 in text
    w = wilcoxon_paired(LAT_O, LAT_C)
    assert f"| {w['p']:.3g} | {w['effect']:+.2f} | significant |" in text
    assert "| fgsm | 100 ± 0 | 40.0% ± 0.0% | 40.0% ± 0.0% | 0.0 ± 0.0 | 0.0% ± 0.0% |" in text
    assert "| failed | converter_crash | 1 |" in text and "IndexError: boom" in text
    for title, _, _ in FINDINGS:
        assert title in text
    for section in ("RQ1", "RQ2", "RQ3", "The study beside convbench", "Conversion outcomes",
                    "Environment"):
        assert f"## {section}" in text
    for fig in ("accuracy", "errors", "latency", "size", "divergence"):
        assert (d / "out" / "figures" / f"{fig}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"figures/{fig}.png" in text


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
    out = capsys.readouterr().out
    assert "report: " in out and (tmp_path / "convbench-report" / "report.html").exists()
    md = (tmp_path / "convbench-report" / "report.md").read_text()
    assert "torch lenet5 digits -> coreml" in md and "| fgsm |" in md
