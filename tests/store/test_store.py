import sqlite3

import pytest

from convbench.records import Artifact, Category, CellKey, CellResult, Status
from convbench.store import SCHEMA_VERSION, Store, StoreError


def _result(tmp_path, run=0, **kw):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"model bytes")
    return CellResult(CellKey("torch", "lenet5", "digits", "onnx", "onnxruntime", run, "h"),
                      metrics={"accuracy_original": 0.9, "label_flips": 2.0},
                      info={"note": "x"}, artifacts={"converted": Artifact.from_path("onnx", f)},
                      started=1.0, finished=2.0, **kw)


def test_round_trip_with_environment_and_artifacts(tmp_path):
    with Store(tmp_path / "s.db") as s:
        r = _result(tmp_path)
        s.put(r, "study-a")
        assert s.has(r.key.id)
        [cell] = list(s.cells())
        assert cell["metrics"] == {"accuracy_original": 0.9, "label_flips": 2.0}
        assert cell["study"] == "study-a" and cell["status"] == "ok"
        assert cell["artifacts"]["converted"]["size_bytes"] == len(b"model bytes")
        env = s.environment_of(cell["env_id"])
        assert "numpy" in env["packages"] and env["python"].startswith("3.")


def test_rewriting_a_cell_replaces_it(tmp_path):
    with Store(tmp_path / "s.db") as s:
        s.put(_result(tmp_path))
        s.put(_result(tmp_path, status=Status.FAILED, category=Category.RUNTIME_ERROR,
                      message="boom"))
        cells = list(s.cells())
    assert len(cells) == 1 and cells[0]["category"] == "runtime_error"


def test_a_failed_write_leaves_nothing_half_written(tmp_path):
    with Store(tmp_path / "s.db") as s:
        bad = _result(tmp_path)
        bad.metrics["accuracy_original"] = object()  # sqlite cannot bind it
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
