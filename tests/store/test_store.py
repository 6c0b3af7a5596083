import shutil
import sqlite3
from pathlib import Path

import pytest

from convbench.records import (Artifact, Category, CellKey, CellResult, Metric, Metrics, Outcome,
                               Status)
from convbench.store import SCHEMA_VERSION, Store, StoreError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
METRICS = [Metric("accuracy", 0.9, "ratio", role="original"),
           Metric("label_flips", 2, "count"),
           Metric("latency", 1e-3, "s", stat="median", role="converted", batch_size=32,
                  noisy=True),
           Metric("misclassification", 0.4, "ratio", role="converted", attack="fgsm",
                  direction="forward", sweep="eps", sweep_value=0.1)]


def _result(tmp_path, run=0, **kw):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"model bytes")
    return CellResult(CellKey("torch", "lenet5", "digits", "onnx", "onnxruntime", run, "h"),
                      metrics=Metrics(METRICS), info={"note": "x"},
                      artifacts={"converted": Artifact.from_path("onnx", f)},
                      outcomes=[Outcome("attack", "boundary", Status.FAILED, "boom", {"x": 1})],
                      started=1.0, finished=2.0, **kw)


def test_round_trip_with_environment_and_artifacts(tmp_path):
    with Store(tmp_path / "s.db") as s:
        r = _result(tmp_path)
        s.put(r, "study-a")
        assert s.has(r.key.id)
        [cell] = list(s.cells())
        assert list(cell.metrics) == METRICS  # every field, the noise mark included
        assert cell.outcomes == r.outcomes
        assert cell.study == "study-a" and cell.status is Status.OK and cell.attempts == 1
        assert cell.artifacts["converted"].sha256 == r.artifacts["converted"].sha256
        env = s.environment_of(cell.env_id)
        assert "numpy" in env["packages"] and env["python"].startswith("3.")


def test_nan_and_infinite_numbers_survive_the_store_and_json(tmp_path):
    import json
    import math

    from convbench.results import to_json

    r = _result(tmp_path)
    r.metrics = Metrics([Metric("latency", float("nan"), "ratio", stat="cv", role="original",
                                batch_size=1),
                         Metric("rel_err", float("inf"), "ratio", stat="max")])
    with Store(tmp_path / "s.db") as s:
        s.put(r)
        [cell] = list(s.cells())
    assert math.isnan(cell.metrics.get("latency", stat="cv", role="original", batch_size=1))
    assert cell.metrics.get("rel_err", stat="max") == math.inf
    out = json.loads(to_json([cell]))  # strict JSON: no bare NaN
    assert [m["value"] for m in out["cells"][0]["metrics"]] == [None, "inf"]


def test_a_metric_recorded_twice_is_refused():
    m = Metrics(METRICS)
    with pytest.raises(ValueError, match=r"latency.median\[converted, bs32\] recorded twice"):
        m.add("latency", 2e-3, "s", stat="median", role="converted", batch_size=32)


def test_attempts_count_the_starts_of_a_cell(tmp_path):
    with Store(tmp_path / "s.db") as s:
        r = _result(tmp_path)
        s.begin(r.key.id)
        s.begin(r.key.id)  # a first start that never finished (the study was killed)
        s.put(r)
        [cell] = list(s.cells())
    assert cell.attempts == 2


def test_replacing_one_measure_keeps_the_rest_of_the_cell(tmp_path):
    with Store(tmp_path / "s.db") as s:
        r = _result(tmp_path)
        s.put(r)
        new = Metric("latency", 5e-4, "s", stat="median", role="converted", batch_size=32)
        s.replace_measures(r.key.id, ("latency", "memory"), [new], info={"cost": {"x": 1}})
        [cell] = list(s.cells())
        assert cell.metrics.find(measure="latency") == [new]
        assert len(cell.metrics) == len(METRICS) and cell.outcomes == r.outcomes
        assert cell.info == {"note": "x", "cost": {"x": 1}}
        with pytest.raises(ValueError, match="not a metric of latency"):
            s.replace_measures(r.key.id, ("latency",), [METRICS[0]])
        assert list(s.cells())[0].metrics.find(measure="latency") == [new]  # rolled back


def test_rewriting_a_cell_replaces_it(tmp_path):
    with Store(tmp_path / "s.db") as s:
        s.put(_result(tmp_path))
        s.put(_result(tmp_path, status=Status.FAILED, category=Category.RUNTIME_ERROR,
                      message="boom"))
        cells = list(s.cells())
    assert len(cells) == 1 and cells[0].category is Category.RUNTIME_ERROR


def test_a_failed_write_leaves_nothing_half_written(tmp_path):
    with Store(tmp_path / "s.db") as s:
        bad = _result(tmp_path)
        bad.metrics.append(Metric("size", 1.0, object()))  # sqlite cannot bind the unit
        with pytest.raises(sqlite3.Error):
            s.put(bad)
        assert not s.has(bad.key.id)
        assert s.conn.execute("SELECT count(*) FROM metrics").fetchone()[0] == 0


def test_foreign_or_corrupt_files_are_refused_untouched(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a convbench store"):
        Store(junk)
    assert junk.read_bytes() == b"this is not sqlite" * 100
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (a)")
    with pytest.raises(StoreError, match="other tables"):
        Store(other)


def test_newer_schema_is_refused(tmp_path):
    p = tmp_path / "s.db"
    Store(p).close()
    c = sqlite3.connect(p)
    c.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    c.commit()
    with pytest.raises(StoreError, match="schema version"):
        Store(p)


def test_a_store_written_before_typed_results_opens_reports_and_resumes(tmp_path):
    """tests/fixtures/store_v1.db was written by convbench at commit 8c45ea2 (schema 1) from
    tests/fixtures/spec_v1.yaml, with one of its four cells removed (an interrupted study)."""
    import yaml

    from convbench.report import build_report
    from convbench.study import parse_spec, plan, run_study

    db = tmp_path / "old.db"
    shutil.copy(FIXTURES / "store_v1.db", db)
    with Store(db) as s:
        cells = list(s.cells())
    assert (tmp_path / "old.db.v1-backup").exists()  # the schema-1 file, kept
    assert len(cells) == 3 and {c.key.format for c in cells} == {"onnx", "coreml"}
    onnx = next(c for c in cells if (c.key.framework, c.key.format) == ("torch", "onnx"))
    m = onnx.metrics
    assert m.get("accuracy", role="original") == pytest.approx(0.5583, abs=1e-4)
    assert m.get("latency", stat="median", role="converted", batch_size=32) > 0
    assert m.get("memory", stat="peak", role="original") > 0
    assert m.get("misclassification", role="original", attack="fgsm", direction="forward",
                 sweep="eps", sweep_value=0.1) == 0.75
    assert m.get("inputs", attack="boundary", direction="reverse") == 12
    assert not m.find(measure="accuracy_delta")  # derivable: not carried over
    assert {(o.kind, o.name, o.status) for o in onnx.outcomes} == {
        ("attack", "fgsm", Status.OK), ("attack", "boundary", Status.OK)}
    assert onnx.outcome("attack", "fgsm").params["sweep"] == [0.1, 0.2]
    md, _ = build_report(db, tmp_path / "report")
    text = md.read_text()
    assert "torch lenet5 digits -> coreml (interpreter)" in text
    assert "Robustness curve: fgsm misclassification over eps" in text
    # resuming: the three stored cells are found by their keys, the fourth runs
    todo = plan(parse_spec(yaml.safe_load((FIXTURES / "spec_v1.yaml").read_text())))
    with Store(db) as s:
        assert sum(s.has(c.key.id) for c in todo) == 3
        started = {c.id: c.started for c in s.cells()}
        [new] = run_study(todo, s, "legacy")
        after = {c.id: c for c in s.cells()}
    assert (new.key.framework, new.key.format, new.status) == ("keras", "coreml", Status.OK)
    assert len(after) == 4
    assert all(after[i].started == t and after[i].attempts == 1 for i, t in started.items())


def test_a_schema_1_store_that_cannot_be_migrated_is_left_as_it_was(tmp_path):
    db = tmp_path / "old.db"
    shutil.copy(FIXTURES / "store_v1.db", db)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE outcomes (x)")  # a name the migration needs is taken
    conn.commit()
    conn.close()
    before = sqlite3.connect(db).execute("SELECT count(*) FROM metrics").fetchone()
    with pytest.raises(StoreError, match="could not migrate"):
        Store(db)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("1",)
    assert conn.execute("SELECT count(*) FROM metrics").fetchone() == before
