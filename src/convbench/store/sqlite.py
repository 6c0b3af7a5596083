"""SQLite store of cell results.

Tables: `meta` (schema version), `environments` (by content hash), `cells` (one row per cell
key, its status, category, message, info JSON), `metrics` (cell, name, value), `artifacts` (by
sha256) and `cell_artifacts` (which artifact played which role in a cell). A cell is written in
one transaction, so an interrupted study never leaves half a cell behind.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any, Iterator

from convbench.records import CellResult
from convbench.store.env import environment

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS environments (id TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    id TEXT PRIMARY KEY, study TEXT, framework TEXT NOT NULL, model TEXT NOT NULL,
    dataset TEXT NOT NULL, format TEXT NOT NULL, runtime TEXT NOT NULL, run INTEGER NOT NULL,
    config_hash TEXT NOT NULL, status TEXT NOT NULL, category TEXT NOT NULL, message TEXT,
    info TEXT NOT NULL, env_id TEXT REFERENCES environments(id), started REAL, finished REAL);
CREATE TABLE IF NOT EXISTS metrics (
    cell_id TEXT NOT NULL REFERENCES cells(id) ON DELETE CASCADE, name TEXT NOT NULL,
    value REAL, PRIMARY KEY (cell_id, name));
CREATE TABLE IF NOT EXISTS artifacts (
    sha256 TEXT PRIMARY KEY, format TEXT NOT NULL, path TEXT NOT NULL, size_bytes INTEGER,
    meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cell_artifacts (
    cell_id TEXT NOT NULL REFERENCES cells(id) ON DELETE CASCADE, role TEXT NOT NULL,
    sha256 TEXT NOT NULL REFERENCES artifacts(sha256), PRIMARY KEY (cell_id, role));
"""


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
                self.conn.executescript(_SCHEMA)
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                                  (str(SCHEMA_VERSION),))
        elif version != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {version}, this convbench writes "
                             f"{SCHEMA_VERSION}; use another --store file")

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

    def put(self, result: CellResult, study: str = "") -> None:
        """Write one cell (replacing an earlier result of the same key) in one transaction."""
        env = environment()
        env_json = json.dumps(env, sort_keys=True)
        env_id = hashlib.sha256(env_json.encode()).hexdigest()[:16]
        k = result.key
        with self.conn:
            self.conn.execute("INSERT OR IGNORE INTO environments VALUES (?, ?)",
                              (env_id, env_json))
            self.conn.execute("DELETE FROM cells WHERE id = ?", (k.id,))
            self.conn.execute(
                "INSERT INTO cells VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (k.id, study, k.framework, k.model, k.dataset, k.format, k.runtime, k.run,
                 k.config_hash, result.status.value, result.category.value, result.message,
                 json.dumps(result.info, default=str), env_id, result.started, result.finished))
            self.conn.executemany("INSERT INTO metrics VALUES (?, ?, ?)",
                                  [(k.id, n, v) for n, v in result.metrics.items()])
            for role, a in result.artifacts.items():
                self.conn.execute("INSERT OR REPLACE INTO artifacts VALUES (?,?,?,?,?)",
                                  (a.sha256, a.format, a.path, a.size_bytes,
                                   json.dumps(a.meta, default=str)))
                self.conn.execute("INSERT INTO cell_artifacts VALUES (?,?,?)",
                                  (k.id, role, a.sha256))

    def cells(self, ids: set[str] | None = None) -> Iterator[dict[str, Any]]:
        """Stored cells (all, or those in `ids`) as dicts with metrics by name, info, artifacts."""
        cur = self.conn.execute("SELECT * FROM cells ORDER BY started, rowid")
        cols = [c[0] for c in cur.description]
        for row in cur.fetchall():
            cell = dict(zip(cols, row))
            if ids is not None and cell["id"] not in ids:
                continue
            cell["info"] = json.loads(cell["info"])
            cell["metrics"] = dict(self.conn.execute(
                "SELECT name, value FROM metrics WHERE cell_id = ? ORDER BY name", (cell["id"],)))
            cell["artifacts"] = {role: {"sha256": sha, "format": fmt, "size_bytes": size,
                                        "path": path, "meta": json.loads(meta)}
                                 for role, sha, fmt, path, size, meta in self.conn.execute(
                "SELECT ca.role, a.sha256, a.format, a.path, a.size_bytes, a.meta "
                "FROM cell_artifacts ca JOIN artifacts a ON a.sha256 = ca.sha256 "
                "WHERE ca.cell_id = ?", (cell["id"],))}
            yield cell

    def environment_of(self, env_id: str) -> dict:
        row = self.conn.execute("SELECT json FROM environments WHERE id = ?", (env_id,)).fetchone()
        return json.loads(row[0]) if row else {}
