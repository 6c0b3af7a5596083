"""The shape results leave convbench in (`convbench results --format json|csv`), and the
questions the console, the report and the findings ask of a stored cell, answered by fields.

JSON (`schema` "convbench.results", `version` 2):

    {"schema": "convbench.results", "version": 2, "convbench": "0.1.0",
     "cells": [{"id", "study", "framework", "model", "dataset", "format", "runtime", "run",
                "status", "category", "message", "attempts", "started", "finished",
                "metrics": [{"measure", "stat", "role", "batch_size", "attack", "direction",
                             "sweep", "sweep_value", "value", "unit", "noisy"}, ...],
                "outcomes": [{"kind", "name", "status", "message", "params"}, ...],
                "step_seconds": {step: seconds},
                "explanation": {"verdict", "ops", "parameters", "graph", "input_contract",
                                "output", "samples", ...}  (explained cells only)}, ...]}

Version 1 (before typed results) was a list of cells with `metrics` as {name: value}. CSV is
one row per metric: the cell's fields, then the metric's.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from typing import Any

from convbench.records import METRIC_FIELDS, Metric, StoredCell

SCHEMA, VERSION = "convbench.results", 2

CELL_FIELDS = ("id", "study", "framework", "model", "dataset", "format", "runtime", "run",
               "status", "category", "message", "attempts", "started", "finished")


def _cell_fields(c: StoredCell) -> dict[str, Any]:
    k = c.key
    return {"id": c.id, "study": c.study, "framework": k.framework, "model": k.model,
            "dataset": k.dataset, "format": k.format, "runtime": k.runtime, "run": k.run,
            "status": c.status.value, "category": c.category.value, "message": c.message,
            "attempts": c.attempts, "started": c.started, "finished": c.finished}


def _metric(m: Metric) -> dict[str, Any]:
    """The metric's fields; NaN as null (JSON has no NaN; inf stays out of reach too)."""
    out = asdict(m)
    if not math.isfinite(out["value"]):
        out["value"] = None if math.isnan(out["value"]) else str(out["value"])
    return out


def to_json(cells: list[StoredCell]) -> str:
    from importlib import metadata

    try:
        version = metadata.version("convbench")
    except metadata.PackageNotFoundError:
        version = None
    return json.dumps({
        "schema": SCHEMA, "version": VERSION, "convbench": version,
        "cells": [{**_cell_fields(c), "metrics": [_metric(m) for m in c.metrics],
                   "outcomes": [{"kind": o.kind, "name": o.name, "status": o.status.value,
                                 "message": o.message, "params": o.params}
                                for o in c.outcomes],
                   "step_seconds": c.info.get("step_seconds", {}),
                   **({"explanation": c.info["explanation"]} if "explanation" in c.info
                      else {})} for c in cells]}, indent=1)


def to_csv(cells: list[StoredCell]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    metric_cols = list(METRIC_FIELDS) + ["value", "unit", "noisy"]
    w.writerow(list(CELL_FIELDS[:10]) + metric_cols)
    for c in cells:
        fixed = [_cell_fields(c)[f] for f in CELL_FIELDS[:10]]
        for m in c.metrics:
            row = _metric(m)
            w.writerow(fixed + ["" if row[f] is None else row[f] for f in metric_cols])
    return buf.getvalue()


def engine(c: StoredCell, role: str = "converted") -> str | None:
    """The engine that ran a model of the cell ("native", "interpreter", "compiled"; None if
    not Core ML)."""
    for where in (c.info.get("cost", {}), c.info):
        runner = where.get(f"runner_{role}") or {}
        if runner.get("engine"):
            return runner["engine"]
    return None


def on_interpreter(c: StoredCell) -> bool:
    """Whether the converted model ran on convbench's Core ML interpreter: then its latency
    and memory are the interpreter's, not Apple's runtime's."""
    return c.key.runtime == "coreml" and engine(c) != "native"


def latency_batches(c: StoredCell) -> list[int]:
    return sorted({m.batch_size for m in c.metrics.find(measure="latency", stat="median")
                   if m.batch_size is not None})


def headline_batch(cells: list[StoredCell], prefer: int = 32) -> int | None:
    """The batch size a one-number latency column shows: `prefer` if every cell has it, else
    the largest all timed."""
    common = None
    for c in cells:
        b = set(latency_batches(c))
        if b:
            common = b if common is None else common & b
    if not common:
        return None
    return prefer if prefer in common else max(common)


def attack_names(c: StoredCell) -> list[str]:
    """Attacks the cell ran or tried, in the spec's order."""
    seen = [o.name for o in c.outcomes if o.kind == "attack"]
    for m in c.metrics:
        if m.attack and m.attack not in seen:
            seen.append(m.attack)
    return seen
