"""Cost measures: the latency statistics, load/memory/latency in processes of their own, the
noise mark, the machine's timing lock."""

import subprocess
import sys
import time

import numpy as np
import pytest

from convbench.convert import convert
from convbench.measures import CostOptions, measure_cost
from convbench.measures.cost import Model
from convbench.measures.latency import Figure, LatencyOptions, median_ci, noisy_reason, settled
from convbench.records import Artifact, Metrics


def test_median_interval_is_the_sign_test_interval():
    # n = 10: P(Bin(10, 1/2) <= 1) = 11/1024 <= 0.025 < P(<= 2) = 56/1024: ranks 2 and 9
    assert median_ci(np.arange(1, 11)) == (2.0, 9.0)
    # n = 100: the textbook ranks 40 and 61
    assert median_ci(np.arange(1, 101)) == (40.0, 61.0)
    # n = 6 is the least with a 95% interval (the whole range: 1 - 2/64 = 96.9%); below, none
    assert median_ci(np.arange(1, 7)) == (1.0, 6.0)
    assert all(np.isnan(median_ci([5.0, 1.0, 3.0, 2.0, 4.0])))


def test_median_interval_covers_the_true_median_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    hits = sum(lo <= np.log(2) <= hi for lo, hi in
               (median_ci(rng.exponential(1.0, 40)) for _ in range(2000)))
    assert 0.95 <= hits / 2000 <= 0.99  # exact intervals are conservative, not wild


def test_warm_up_settles_when_the_last_runs_stop_changing():
    assert not settled([5.0, 4.0, 3.0, 2.0, 1.5, 1.2, 1.1, 1.0, 1.0, 1.0])
    assert settled([2.0] * 5 + [1.0] * 5 + [1.0] * 5)
    assert not settled([1.0] * 9)  # fewer than two windows


def _figure(samples, others_cpu_s=0.0):
    f = Figure()
    f.add_block(samples, cpu_s=sum(samples), wall_s=sum(samples), others_cpu_s=others_cpu_s,
                wait_s=0.0)
    return f


def test_a_figure_is_noisy_when_its_interval_is_wide_or_the_machine_busy():
    opts = LatencyOptions()
    rng = np.random.default_rng(0)
    tight = list(1e-3 * (1 + 0.01 * rng.standard_normal(200)))
    wide = list(1e-3 * rng.uniform(0.5, 1.5, 30))
    quiet = Metrics(_figure(tight).metrics(opts, cpus=2, threads=2, role="converted"))
    assert not any(m.noisy for m in quiet)
    assert quiet.get("latency", stat="runs", role="converted") == 200
    assert quiet.get("latency", stat="others_load", role="converted") == 0
    noisy = Metrics(_figure(wide).metrics(opts, cpus=2, threads=2))
    assert all(m.noisy for m in noisy) and "95% interval +-" in noisy_reason(noisy)
    # another process took 0.6 CPU-seconds over 2 CPUs x 1 s of runs: 30% > 25%
    busy = Metrics(_figure(tight * 5, others_cpu_s=0.6 * sum(tight * 5)).metrics(opts, 2, 2))
    assert all(m.noisy for m in busy)
    assert "other processes used 30% of the CPUs" in noisy_reason(busy)


@pytest.fixture(scope="module")
def pair(trained, digits_test, tmp_path_factory):
    """The trained PyTorch LeNet-5 and its ONNX export, with digits in their layout."""
    x, _ = digits_test
    torch_art = trained["torch"].artifact
    onnx_art = convert(torch_art, "onnx", tmp_path_factory.mktemp("onnx"),
                       exporter="torchscript").artifact
    return {"original": Model(torch_art, "torch", x), "converted": Model(onnx_art,
                                                                         "onnxruntime", x)}


@pytest.mark.solo  # timings, or phase windows of processes started together
def test_each_model_is_measured_in_a_process_of_its_own(pair):
    import psutil

    opts = CostOptions(LatencyOptions(batch_sizes=(1, 32), time_cap=5.0))
    metrics, outcomes, info = measure_cost(pair, opts, threads=2)
    m = Metrics(metrics)
    assert outcomes == []
    for role in ("original", "converted"):
        assert m.get("load_time", role=role) > 0
        for b in (1, 32):
            where = {"role": role, "batch_size": b}
            med = m.get("latency", stat="median", **where)
            assert m.get("latency", stat="ci_low", **where) <= med
            assert med <= m.get("latency", stat="ci_high", **where)
            assert m.get("latency", stat="runs", **where) >= opts.latency.repeats
            assert m.get("latency", stat="threads", **where) == 2
            assert 0 < m.get("latency", stat="cpu_per_wall", **where) <= 2.5
        assert m.get("latency", stat="median", role=role, batch_size=32) > \
            m.get("latency", stat="median", role=role, batch_size=1)
        peak, base = (m.get("memory", stat=s, role=role) for s in ("peak", "import"))
        assert 0 < base <= peak and m.get("memory", stat="model", role=role) == peak - base
    # ONNX Runtime is far lighter than torch; neither includes this (large) test process
    ort = m.get("memory", stat="peak", role="converted")
    assert ort < m.get("memory", stat="peak", role="original")
    assert ort < psutil.Process().memory_info().rss
    assert info["runner_converted"]["runtime"] == "onnxruntime"


def test_a_model_that_fails_in_its_process_is_an_outcome_and_the_other_keeps_its_numbers(
        pair, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"junk")
    models = {**pair, "converted": Model(Artifact.from_path("onnx", bad), "onnxruntime",
                                         pair["converted"].x)}
    metrics, outcomes, _ = measure_cost(models, CostOptions(LatencyOptions(batch_sizes=(4,))))
    assert {o.name for o in outcomes} == {"load_time", "memory", "latency"}
    assert all("converted: onnxruntime" in o.message and "cannot load" in o.message
               for o in outcomes)
    m = Metrics(metrics)
    assert m.get("latency", stat="median", role="original", batch_size=4) > 0
    assert m.get("latency", stat="median", role="converted", batch_size=4) is None


def test_core_ml_process_leaves_out_tensorflow(trained, digits_test, tmp_path):
    x, _ = digits_test
    coreml = convert(trained["torch"].artifact, "coreml-fp32", tmp_path).artifact
    metrics, outcomes, _ = measure_cost(
        {"converted": Model(coreml, "coreml", x[:8], {"engine": "interpreter"})},
        CostOptions(LatencyOptions(batch_sizes=())))
    # coremltools with TensorFlow imported takes about 850 MB; the runtime itself far less
    assert outcomes == []
    assert 0 < Metrics(metrics).get("memory", stat="peak", role="converted") < 600 * 2 ** 20


def _burners(n: int):
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def _reasons(metrics: Metrics) -> list[str]:
    return [noisy_reason(metrics.find(measure="latency", role=m.role, batch_size=m.batch_size))
            for m in metrics.find(measure="latency", stat="median")]


@pytest.mark.solo
def test_a_cpu_burning_neighbour_marks_the_figures_noisy_and_a_quiet_machine_does_not(pair):
    """The mark for other processes' CPU use: every figure taken beside a CPU-bound neighbour
    carries it, none taken alone does. (A figure alone may still be marked for a wide
    interval when the host's own contention shifts it: that criterion is tested above.)"""
    opts = CostOptions(LatencyOptions(batch_sizes=(1, 32), time_cap=4.0), memory=False)
    quiet = Metrics(measure_cost(pair, opts, threads=2)[0])
    burners = _burners(2)  # one per core of this 2-core machine
    try:
        time.sleep(0.5)
        busy = Metrics(measure_cost(pair, opts, threads=2)[0])
    finally:
        for p in burners:
            p.kill()
    assert len(_reasons(quiet)) == len(_reasons(busy)) == 4
    assert not any("other processes" in r for r in _reasons(quiet)), _reasons(quiet)
    assert all(m.value < 0.25 for m in quiet.find(measure="latency", stat="others_load"))
    assert all(m.noisy for m in busy.find(measure="latency", stat="median"))
    assert all("other processes used" in r for r in _reasons(busy)), _reasons(busy)
    assert all(m.value > 0.3 for m in busy.find(measure="latency", stat="others_load"))


_PHASE = """
import sys, time
from convbench.measures.machine import compute_phase, timing_phase
phase = timing_phase if sys.argv[1] == "timing" else compute_phase
time.sleep(float(sys.argv[2]))
with phase():
    t0 = time.time()
    time.sleep(float(sys.argv[3]))
    print(t0, time.time())
"""


def _phase(kind: str, delay: float, hold: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _PHASE, kind, str(delay), str(hold)],
                            stdout=subprocess.PIPE, text=True)


def _window(p: subprocess.Popen) -> tuple[float, float]:
    out, _ = p.communicate(timeout=60)
    a, b = map(float, out.split())
    return a, b


@pytest.mark.solo  # timings, or phase windows of processes started together
def test_no_two_processes_time_at_once_and_timing_waits_for_compute():
    # two timers: their windows never overlap
    a, b = _phase("timing", 0, 1.0), _phase("timing", 0, 1.0)
    (a0, a1), (b0, b1) = sorted([_window(a), _window(b)])
    assert b0 >= a1
    # a compute phase holds the machine; a timer arriving meanwhile waits for it, and a
    # compute phase arriving after the timer waits for the timer (no timer starves)
    c1, t, c2 = _phase("compute", 0, 2.0), _phase("timing", 0.7, 0.5), _phase("compute", 1.2, 0.1)
    (_, c1_1), (t0, t1), (c2_0, _) = _window(c1), _window(t), _window(c2)
    assert t0 >= c1_1 and c2_0 >= t1


@pytest.mark.solo  # timings, or phase windows of processes started together
def test_a_timer_that_waits_too_long_gives_up_and_a_timing_inside_compute_steps_aside():
    from convbench.measures.machine import MachineBusy, compute_phase, timing_phase

    c = _phase("compute", 0, 3.0)
    time.sleep(1.0)  # the other process computes
    t0 = time.time()
    with pytest.raises(MachineBusy):
        with timing_phase(timeout=0.5):
            pass
    assert 0.4 < time.time() - t0 < 2.0
    _window(c)
    # this process's own compute phase steps aside for its timing, and comes back
    with compute_phase():
        with timing_phase(timeout=5) as waited:
            with compute_phase():  # inside a timing: a no-op, not a self-deadlock
                pass
        assert waited < 1


@pytest.mark.solo  # timings, or phase windows of processes started together
def test_cost_measures_are_deferred_while_others_compute(pair):
    from convbench.measures.cost import DEFERRED

    c = _phase("compute", 0, 4.0)
    time.sleep(1.0)
    metrics, outcomes, _ = measure_cost(pair, CostOptions(LatencyOptions(batch_sizes=(1,)),
                                                          memory=False, wait=0.5))
    _window(c)
    assert metrics == [] and {(o.name, o.status.value, o.message) for o in outcomes} == {
        (m, "skipped", DEFERRED) for m in ("load_time", "memory", "latency")}


@pytest.mark.solo  # timings, or phase windows of processes started together
def test_compute_phases_run_alongside_each_other():
    a, b = _phase("compute", 0, 1.5), _phase("compute", 0, 1.5)
    (a0, a1), (b0, b1) = sorted([_window(a), _window(b)])
    assert b0 < a1  # overlapping
