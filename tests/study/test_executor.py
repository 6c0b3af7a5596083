"""Cells in processes of their own: results, time and memory limits, crashes, resumption after
the study is killed, determinism."""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import psutil
import pytest
import yaml

from convbench.records import Category, Metrics
from convbench.store import Store
from convbench.study import parse_spec, plan, run_study
from convbench.study.executor import Limits

SPEC = {"name": "x", "preset": "smoke", "frameworks": ["torch"],
        "models": [{"model": "lenet5", "dataset": "digits"}], "formats": ["onnx"], "n_test": 80,
        "train": {"epochs": 1, "n_train": 200},
        "measures": {"latency_batch_sizes": [1], "latency_repeats": 2, "memory": False}}


def _cells(**over):
    return plan(parse_spec({**SPEC, **over}))


def test_local_executor_isolates_cells_and_keeps_logs(tmp_path):
    cells = _cells(frameworks=["torch", "keras"])
    with Store(tmp_path / "s.db") as store:
        results = run_study(cells, store, executor="local", workers=2)
        stored = list(store.cells())
    assert sorted(r.status.value for r in results) == ["ok", "ok"]
    assert {c.key.framework for c in stored} == {"torch", "keras"}
    for c in stored:
        assert os.path.exists(c.info["log"]) and c.metrics.get("inputs") == 80
    # the two cells ran at once, but never timed at once (the machine's timing lock)
    (a0, a1), (b0, b1) = sorted((c.info["cost"]["timed_from"], c.info["cost"]["timed_to"])
                                for c in stored)
    assert b0 >= a1


@pytest.mark.solo  # its fast cell must time within 20 s beside the slow one's training
def test_a_cell_past_its_time_limit_is_stopped_and_the_study_goes_on(tmp_path):
    slow = _cells(train={"epochs": 400, "n_train": 1000})  # minutes of training
    # the fast cell waits 2 s for the machine before its timing is put off: a 2-core machine
    # training the slow cell on both cores makes it slow to reach its timing
    fast = _cells(formats=["coreml"], measures={**SPEC["measures"], "latency_wait": 2})
    with Store(tmp_path / "s.db") as store:
        results = run_study(slow + fast, store, executor="local", workers=2,
                            limits=Limits(seconds=20))
        stored = {c.key.format: c for c in store.cells()}
    by_format = {r.key.format: r for r in results}
    assert by_format["onnx"].category is Category.TIMEOUT
    assert "time limit of 20 s" in by_format["onnx"].message
    assert 20 <= by_format["onnx"].finished - by_format["onnx"].started < 40  # "in 20 s"
    assert by_format["coreml"].status.value == "ok"
    # the slow cell kept the machine busy training: the fast one's timing was put off, not
    # waited for (its own time limit counts), and done at the end of the study, alone
    [deferred] = {o.message for o in by_format["coreml"].outcomes}
    assert deferred.startswith("deferred")
    fast = stored["coreml"]
    assert fast.metrics.get("latency", stat="median", role="converted", batch_size=1) > 0
    assert not fast.outcomes and fast.info["cost"]["lock_wait_s"] < 5


def test_a_cell_over_its_memory_limit_is_recorded(tmp_path):
    # a conversion of its own (no earlier test's cached file): torch.export needs > 512 MiB
    cells = _cells(convert={"onnx": {"opset": 17}})
    with Store(tmp_path / "s.db") as store:
        [result] = run_study(cells, store, executor="local",
                             limits=Limits(memory_bytes=512 * 2 ** 20))
    assert result.category is Category.OUT_OF_MEMORY
    assert "memory cap of 512 MiB" in result.message and "--memory-limit" in result.message, \
        result.message


@pytest.mark.parametrize("said", [
    "SystemError: <built-in method x> returned NULL without setting an exception",
    "TorchExportError: Failed to export ... <class 'SystemError'>: error return without "
    "exception set"])
def test_a_c_failure_without_exception_under_a_cap_is_out_of_memory(said):
    from convbench.records import CellResult, Status
    from convbench.study.cell import contained

    [cell] = _cells()
    capped = contained(CellResult(cell.key, Status.FAILED, Category.CONVERTER_CRASH, said),
                       512 * 2 ** 20)
    assert capped.category is Category.OUT_OF_MEMORY and "512 MiB" in capped.message
    # with no cap, nothing says memory ran out: the converter's category stands
    free = contained(CellResult(cell.key, Status.FAILED, Category.CONVERTER_CRASH, said), None)
    assert free.category is Category.CONVERTER_CRASH and free.message == said


def test_a_cell_whose_process_dies_is_recorded_as_a_crash(tmp_path):
    me = psutil.Process()

    def kill_first_child():
        deadline = time.time() + 120
        while time.time() < deadline:
            kids = [p for p in me.children() if "spawn_main" in " ".join(p.cmdline())]
            if kids:
                time.sleep(1)
                kids[0].send_signal(signal.SIGSEGV)
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_first_child)
    killer.start()
    with Store(tmp_path / "s.db") as store:
        results = run_study(_cells() + _cells(formats=["onnx-fp16"]), store, executor="local")
    killer.join()
    crashed = [r for r in results if r.category is Category.CRASH]
    assert len(crashed) == 1 and "signal 11" in crashed[0].message
    assert [r.status.value for r in results].count("ok") == 1


def test_rerunning_a_cell_with_its_seed_gives_the_same_metrics(tmp_path, monkeypatch):
    timing = ("latency", "load_time", "convert_time", "train_time")
    runs = []
    for i in range(2):
        monkeypatch.setenv("CONVBENCH_CACHE", str(tmp_path / f"cache{i}"))  # retrain afresh
        with Store(tmp_path / f"s{i}.db") as store:
            [r] = run_study(_cells(), store)
        runs.append([m for m in r.metrics if m.measure not in timing])
    assert runs[0] == runs[1] and Metrics(runs[0]).get("accuracy", role="original") > 0


def test_killing_the_study_never_loses_or_reruns_a_finished_cell(tmp_path):
    """SIGKILL the study process at random moments while it runs; each rerun resumes. A cell
    finished before a kill keeps its start time and attempt count through every later run;
    cells killed half-way are started again."""
    import random

    # (no timing: a cell's own child processes are not what resumption is about)
    spec = {**SPEC, "models": [{"model": "lenet5", "dataset": "digits", "options": {"width": w}}
                               for w in (0.5, 0.75, 1.0)], "frameworks": ["torch"],
            "formats": ["onnx", "coreml"],
            "measures": {"latency_batch_sizes": [], "memory": False}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    db = tmp_path / "s.db"
    cmd = [sys.executable, "-m", "convbench", "run", str(path), "--store", str(db)]
    env = {**os.environ, "CONVBENCH_CACHE": str(tmp_path / "cache")}
    rng = random.Random(0)
    finished: dict[str, tuple[float, int]] = {}
    kills = interrupted = 0
    while kills < 8:  # each restart pays its imports again: eight kills prove the point
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(1.0, 6.0))
        if proc.poll() is not None:
            break  # the study finished before this kill
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        finished, unfinished = _check(db, finished)
        if len(finished) == 6:
            break  # killed after its last cell (printing its table): not mid-study
        interrupted += unfinished > 0
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    finished, unfinished = _check(db, finished)
    assert len(finished) == 6 and unfinished == 0
    # the kills landed mid-study, several of them in the middle of a cell, whose rerun then
    # counts a second attempt
    assert kills >= 5 and interrupted >= 3, (kills, interrupted)
    assert any(attempts > 1 for _, attempts in finished.values())


def _check(db, before: dict[str, tuple[float, int]]) -> tuple[dict, int]:
    """Finished cells {id: (started, attempts)}, checked against those finished `before`, and
    how many cells were started but not finished."""
    if not db.exists():
        return before, 0
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    now = {i: (t, a) for i, t, a in conn.execute("SELECT id, started, attempts FROM cells")}
    orphans = conn.execute("SELECT count(*) FROM metrics WHERE cell_id NOT IN "
                           "(SELECT id FROM cells)").fetchone()[0]
    unfinished = conn.execute("SELECT count(DISTINCT cell_id) FROM attempts WHERE cell_id NOT "
                              "IN (SELECT id FROM cells)").fetchone()[0]
    conn.close()
    assert orphans == 0
    for cell_id, seen in before.items():
        assert cell_id in now, "a finished cell was lost"
        assert now[cell_id] == seen, "a finished cell was run again"
    return now, unfinished


def test_ray_executor_runs_cells_as_tasks_on_a_local_ray(tmp_path):
    pytest.importorskip("ray")
    cells = _cells(frameworks=["torch", "keras"])
    with Store(tmp_path / "s.db") as store:
        results = run_study(cells, store, executor="ray", workers=2,
                            limits=Limits(seconds=600))
        stored = list(store.cells())
    assert sorted(r.status.value for r in results) == ["ok", "ok"]
    assert len(stored) == 2 and all(os.path.exists(c.info["log"]) for c in stored)


def test_parallel_cells_share_one_training_of_their_original(tmp_path, monkeypatch):
    cells = _cells(formats=["onnx", "onnx-fp16"])  # the same original, two targets
    monkeypatch.setenv("CONVBENCH_CACHE", str(tmp_path / "cache"))
    with Store(tmp_path / "s.db") as store:
        results = run_study(cells, store, executor="local", workers=2)
        stored = list(store.cells())
    assert [r.status.value for r in results] == ["ok", "ok"]
    shas = {c.artifacts["original"].sha256 for c in stored}
    assert len(shas) == 1
    assert sum(1 for r in results if not r.info["train"].get("cached")) == 1


def test_a_worker_does_not_start_a_cell_waiting_on_another_cells_training(tmp_path,
                                                                           monkeypatch):
    """Two cells of one untrained original would queue on its training lock with a core idle:
    the second worker starts a cell of another model; once an original is stored, its cells
    run side by side again."""
    from convbench.study.executor import _next

    monkeypatch.setenv("CONVBENCH_CACHE", str(tmp_path))
    cells = _cells(models=[{"model": "lenet5", "dataset": "digits"},
                           {"model": "resnet18", "dataset": "cifar10"}], formats=["onnx", "coreml"])
    order = [(c.train.model, c.key.format) for c in cells]
    assert order[:2] == [("lenet5", "onnx"), ("lenet5", "coreml")]
    pending = list(cells)
    first = _next(pending, [])
    second = _next(pending, [first])
    assert (first.train.model, second.train.model) == ("lenet5", "resnet18")
    (tmp_path / "models").mkdir()
    from convbench.study.cell import _record
    _record(first.train).write_text("{}")  # lenet5 is trained now: its Core ML cell may go
    third = _next(pending, [first, second])
    assert (third.train.model, third.key.format) == ("lenet5", "coreml")
