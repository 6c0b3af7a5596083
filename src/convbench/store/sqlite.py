"""SQLite store of cell results.

Tables: `meta` (schema version), `environments` (by content hash), `cells` (one row per cell
key: its status, category, message, info JSON, how many times it was started), `metrics` (one
typed row per number: `Metric`'s fields as columns), `outcomes` (how each measure and attack of
a cell went), `artifacts` (by sha256), `cell_artifacts` (which artifact played which role in a
cell) and `attempts` (each start of a cell). A cell is written in one transaction, so an
interrupted study never leaves half a cell behind. Older stores are migrated on opening, after
a copy of the file is kept beside it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Iterator

from convbench.records import (Artifact, Category, CellKey, CellResult, Metric, Metrics, Outcome,
                               Status, StoredCell)
from convbench.store.env import environment
from convbench.store.migrate import insert_metric, v1_to_v2

SCHEMA_VERSION = 2

_BASE = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS environments (id TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    id TEXT PRIMARY KEY, study TEXT, framework TEXT NOT NULL, model TEXT NOT NULL,
    dataset TEXT NOT NULL, format TEXT NOT NULL, runtime TEXT NOT NULL, run INTEGER NOT NULL,
    config_hash TEXT NOT NULL, status TEXT NOT NULL, category TEXT NOT NULL, message TEXT,
    info TEXT NOT NULL, env_id TEXT REFERENCES environments(id), started REAL, finished REAL,
    attempts INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS artifacts (
    sha256 TEXT PRIMARY KEY, format TEXT NOT NULL, path TEXT NOT NULL, size_bytes INTEGER,
    meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cell_artifacts (
    cell_id TEXT NOT NULL REFERENCES cells(id) ON DELETE CASCADE, role TEXT NOT NULL,
    sha256 TEXT NOT NULL REFERENCES artifacts(sha256), PRIMARY KEY (cell_id, role));
"""

# added by schema 2 (a schema-1 store gets these, then its rows are moved over)
_V2 = """
CREATE TABLE IF NOT EXISTS metrics (
    cell_id TEXT NOT NULL REFERENCES cells(id) ON DELETE CASCADE, measure TEXT NOT NULL,
    stat TEXT NOT NULL, role TEXT NOT NULL, batch_size INTEGER, attack TEXT NOT NULL,
    direction TEXT NOT NULL, sweep TEXT NOT NULL, sweep_value REAL, value REAL,
    unit TEXT NOT NULL, noisy INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS metrics_cell ON metrics (cell_id);
CREATE TABLE IF NOT EXISTS outcomes (
    cell_id TEXT NOT NULL REFERENCES cells(id) ON DELETE CASCADE, kind TEXT NOT NULL,
    name TEXT NOT NULL, status TEXT NOT NULL, message TEXT NOT NULL, params TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (cell_id TEXT NOT NULL, started REAL NOT NULL);
"""


def _create_v2(conn: sqlite3.Connection) -> None:
    """Schema 2's new tables, statement by statement (`executescript` would commit first)."""
    for statement in filter(str.strip, _V2.split(";")):
        conn.execute(statement)


class StoreError(RuntimeError):
    """The store file cannot be used; the message says what to do."""


class Store:
    """Results of studies in one SQLite file (default `convbench.db`)."""

    def __init__(self, path: str | Path = "convbench.db") -> None:
        self.path = Path(path)
        try:
            self.conn = sqlite3.connect(self.path, timeout=60)
            self.conn.execute("PRAGMA foreign_keys = ON")
            self.conn.execute("PRAGMA journal_mode = WAL")
            version = self._schema_version()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: not a convbench store ({e}); pass --store with a "
                             f"new file name (the file was left untouched)") from e
        if version is None:
            with self.conn:
                self.conn.executescript(_BASE + _V2)
                self._set_version()
        elif version == 1:
            self._migrate_from_v1()
        elif version != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {version}, this convbench writes "
                             f"{SCHEMA_VERSION}; use another --store file or a newer convbench")

    def _set_version(self) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                          (str(SCHEMA_VERSION),))

    def _migrate_from_v1(self) -> None:
        """Schema 1 -> 2 in one transaction, after copying the file to `<name>.v1-backup`."""
        backup = self.path.with_name(self.path.name + ".v1-backup")
        if not backup.exists():
            with sqlite3.connect(backup) as dst:
                self.conn.backup(dst)
        try:
            self.conn.execute("BEGIN IMMEDIATE")  # one migrating process; others wait for it
            if self._schema_version() == 1:  # not migrated meanwhile by another process
                v1_to_v2(self.conn, _create_v2)
                self._set_version()
            self.conn.execute("COMMIT")
        except Exception as e:
            self.conn.execute("ROLLBACK")
            raise StoreError(f"{self.path}: could not migrate this schema-1 store ({e}); it "
                             f"is unchanged, and a copy is in {backup}") from e

    def _schema_version(self) -> int | None:
        has_meta = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta:
            tables = self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise sqlite3.DatabaseError("it holds other tables")
            return None
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def has(self, cell_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM cells WHERE id = ?", (cell_id,)).fetchone() \
            is not None

    def begin(self, cell_id: str) -> None:
        """Record that a cell starts (its attempts are counted when it is written)."""
        with self.conn:
            self.conn.execute("INSERT INTO attempts VALUES (?, ?)", (cell_id, time.time()))

    def put(self, result: CellResult, study: str = "") -> None:
        """Write one cell (replacing an earlier result of the same key) in one transaction."""
        env = environment()
        env_json = json.dumps(env, sort_keys=True)
        env_id = hashlib.sha256(env_json.encode()).hexdigest()[:16]
        k = result.key
        with self.conn:
            self.conn.execute("INSERT OR IGNORE INTO environments VALUES (?, ?)",
                              (env_id, env_json))
            attempts = self.conn.execute("SELECT count(*) FROM attempts WHERE cell_id = ?",
                                         (k.id,)).fetchone()[0]
            self.conn.execute("DELETE FROM cells WHERE id = ?", (k.id,))
            self.conn.execute(
                "INSERT INTO cells VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (k.id, study, k.framework, k.model, k.dataset, k.format, k.runtime, k.run,
                 k.config_hash, result.status.value, result.category.value, result.message,
                 json.dumps(result.info, default=str), env_id, result.started, result.finished,
                 max(1, attempts)))
            for m in result.metrics:
                insert_metric(self.conn, k.id, m)
            self.conn.executemany("INSERT INTO outcomes VALUES (?,?,?,?,?,?)",
                                  [(k.id, o.kind, o.name, o.status.value, o.message,
                                    json.dumps(o.params, default=str))
                                   for o in result.outcomes])
            for role, a in result.artifacts.items():
                size = a.size_bytes if Path(a.path).exists() else None  # a file since removed
                self.conn.execute("INSERT OR REPLACE INTO artifacts VALUES (?,?,?,?,?)",
                                  (a.sha256, a.format, a.path, size,
                                   json.dumps(a.meta, default=str)))
                self.conn.execute("INSERT INTO cell_artifacts VALUES (?,?,?)",
                                  (k.id, role, a.sha256))

    def replace_measures(self, cell_id: str, measures: tuple[str, ...], metrics: list[Metric],
                         outcomes: list[Outcome] = (), info: dict | None = None) -> None:
        """Replace some measures' numbers and outcomes (and merge `info` into the cell's) of a
        stored cell, in one transaction: a re-measurement that leaves the rest as it was."""
        marks = ",".join("?" * len(measures))
        with self.conn:
            self.conn.execute(f"DELETE FROM metrics WHERE cell_id = ? AND measure IN ({marks})",
                              (cell_id, *measures))
            self.conn.execute(f"DELETE FROM outcomes WHERE cell_id = ? AND kind = 'measure' "
                              f"AND name IN ({marks})", (cell_id, *measures))
            for m in metrics:
                if m.measure not in measures:
                    raise ValueError(f"{m.label} is not a metric of {', '.join(measures)}")
                insert_metric(self.conn, cell_id, m)
            self.conn.executemany("INSERT INTO outcomes VALUES (?,?,?,?,?,?)",
                                  [(cell_id, o.kind, o.name, o.status.value, o.message,
                                    json.dumps(o.params, default=str)) for o in outcomes])
            if info:
                row = self.conn.execute("SELECT info FROM cells WHERE id = ?",
                                        (cell_id,)).fetchone()
                merged = {**json.loads(row[0]), **info}
                self.conn.execute("UPDATE cells SET info = ? WHERE id = ?",
                                  (json.dumps(merged, default=str), cell_id))

    def cells(self, ids: set[str] | None = None) -> Iterator[StoredCell]:
        """Stored cells (all, or those in `ids`), in the order they started."""
        cur = self.conn.execute("SELECT * FROM cells ORDER BY started, rowid")
        cols = [c[0] for c in cur.description]
        for row in cur.fetchall():
            c = dict(zip(cols, row))
            if ids is not None and c["id"] not in ids:
                continue
            key = CellKey(c["framework"], c["model"], c["dataset"], c["format"], c["runtime"],
                          c["run"], c["config_hash"])
            metrics = Metrics(Metric(measure, value, unit, stat, role, bs, attack, direction,
                                     sweep, sweep_value, bool(noisy))
                              for measure, stat, role, bs, attack, direction, sweep,
                              sweep_value, value, unit, noisy in self.conn.execute(
                "SELECT measure, stat, role, batch_size, attack, direction, sweep, "
                "sweep_value, value, unit, noisy FROM metrics WHERE cell_id = ? "
                "ORDER BY rowid", (c["id"],)))
            outcomes = [Outcome(kind, name, Status(status), message, json.loads(params))
                        for kind, name, status, message, params in self.conn.execute(
                "SELECT kind, name, status, message, params FROM outcomes WHERE cell_id = ? "
                "ORDER BY rowid", (c["id"],))]
            artifacts = {role: Artifact(fmt, path, sha, json.loads(meta))
                         for role, sha, fmt, path, meta in self.conn.execute(
                "SELECT ca.role, a.sha256, a.format, a.path, a.meta "
                "FROM cell_artifacts ca JOIN artifacts a ON a.sha256 = ca.sha256 "
                "WHERE ca.cell_id = ?", (c["id"],))}
            yield StoredCell(key, Status(c["status"]), Category(c["category"]),
                             c["message"] or "", metrics, json.loads(c["info"]), artifacts,
                             c["started"] or 0.0, c["finished"] or 0.0, outcomes,
                             study=c["study"] or "", env_id=c["env_id"],
                             attempts=c["attempts"])

    def environment_of(self, env_id: str) -> dict:
        row = self.conn.execute("SELECT json FROM environments WHERE id = ?", (env_id,)).fetchone()
        return json.loads(row[0]) if row else {}
