"""Migrations of older stores to the current schema, each in one transaction.

Schema 1 (convbench before typed results) kept each number under a composed name
(`latency_median_s_bs32_converted`, `fgsm_eps0.1_misclass_original`) and attack outcomes in
the cell's info JSON. Schema 2 keeps each number as a typed row (`Metric`'s fields as columns)
and outcomes in a table of their own. A name schema 1 never wrote is kept as a measure of that
name, so nothing stored is lost.
"""

from __future__ import annotations

import json
import re
import sqlite3

from convbench.records import Metric

_ROLE = r"(?P<role>original|converted)"

# (pattern over a schema-1 name, measure, stat, unit); named groups fill role and batch size
_CELL_NAMES = [
    (r"n", "inputs", "", "count"),
    (rf"accuracy_{_ROLE}", "accuracy", "", "ratio"),
    (r"label_flips", "label_flips", "", "count"),
    (r"abs_err_(?P<stat>mean|max|p99)", "abs_err", None, "output"),
    (r"rel_err_(?P<stat>mean|max|p99)", "rel_err", None, "ratio"),
    (r"bitwise_mismatch_rate", "bitwise_mismatch", "", "ratio"),
    (rf"nonfinite_outputs_{_ROLE}", "nonfinite_outputs", "", "count"),
    (r"mcnemar_p", "mcnemar", "", "p"),
    (r"shape_mismatch", "shape_mismatch", "", "count"),
    (r"convert_s", "convert_time", "", "s"),
    (r"train_s", "train_time", "", "s"),
    (rf"size_bytes_{_ROLE}", "size", "", "bytes"),
    (rf"load_s_{_ROLE}", "load_time", "", "s"),
    (rf"latency_(?P<stat>median|p95)_s_bs(?P<bs>\d+)_{_ROLE}", "latency", None, "s"),
    (rf"(?P<stat>peak|import|model)_rss_bytes_{_ROLE}", "memory", None, "bytes"),
]
# derivable from the numbers above: schema 2 does not store them
_DROPPED = {"accuracy_delta", "label_flip_rate"}

_ATTACK_NAMES = [
    (r"n", "inputs", "", "count"),
    (rf"misclass_{_ROLE}", "misclassification", "", "ratio"),
    (r"divergence", "divergence", "", "count"),
    (r"abs_out_diff_mean", "output_diff", "mean", "output"),
    (r"mcnemar_p", "mcnemar", "", "p"),
    (r"perturbation_(?P<stat>l2|linf)_mean", "perturbation", None, "input"),
    (r"substitution_rate_mean", "substitution", "mean", "ratio"),
]
_ATTACK_DROPPED = {"divergence_rate"}


def _match(rules, text: str, value: float, **fields) -> Metric | None:
    for pattern, measure, stat, unit in rules:
        m = re.fullmatch(pattern, text)
        if not m:
            continue
        g = m.groupdict()
        if stat is None:
            stat = g["stat"] + ("_mean" if measure == "perturbation" else "")
        role = g.get("role") or ("original" if measure == "train_time" else "")
        bs = int(g["bs"]) if g.get("bs") else None
        return Metric(measure, value, unit, stat=stat, role=role, batch_size=bs, **fields)
    return None


def metric_from_v1(name: str, value: float | None, attacks: set[str]) -> Metric | None:
    """The typed metric a schema-1 name stood for; None for derivable numbers not kept."""
    value = float("nan") if value is None else value
    if name in _DROPPED:
        return None
    got = _match(_CELL_NAMES, name, value)
    if got:
        return got
    for attack in sorted(attacks, key=len, reverse=True):
        if not name.startswith(attack + "_"):
            continue
        rest, direction = name[len(attack) + 1:], "forward"
        if rest.startswith("reverse_"):
            rest, direction = rest[len("reverse_"):], "reverse"
        fields = {"attack": attack, "direction": direction}
        sweep = re.match(r"eps(?P<v>[0-9.e+-]+?)_(?P<rest>.+)$", rest)
        if sweep and direction == "forward":
            rest = sweep["rest"]
            fields.update(sweep="eps", sweep_value=float(sweep["v"]))
        if rest in _ATTACK_DROPPED:
            return None
        got = _match(_ATTACK_NAMES, rest, value, **fields)
        if got:
            return got
    return Metric(name, value)  # unknown: kept under its own name


def v1_to_v2(conn: sqlite3.Connection, create_v2) -> None:
    """Rewrite a schema-1 store in place (inside the caller's transaction)."""
    from convbench.attacks import ATTACKS

    known = set(ATTACKS.names())
    conn.execute("ALTER TABLE metrics RENAME TO metrics_v1")
    create_v2(conn)
    conn.execute("ALTER TABLE cells ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1")
    rows = conn.execute("SELECT cell_id, name, value FROM metrics_v1").fetchall()
    # attack names: the registry's and any the store's outcomes name
    for (info,) in conn.execute("SELECT info FROM cells"):
        known |= set(json.loads(info).get("attacks", {}))
    for cell_id, name, value in rows:
        m = metric_from_v1(name, value, known)
        if m is not None:
            insert_metric(conn, cell_id, m)
    conn.execute("DROP TABLE metrics_v1")
    for cell_id, info in conn.execute("SELECT id, info FROM cells").fetchall():
        data = json.loads(info)
        for attack, st in data.pop("attacks", {}).items():
            conn.execute("INSERT INTO outcomes VALUES (?,?,?,?,?,?)",
                         (cell_id, "attack", attack, st.get("status", "ok"),
                          st.get("message", st.get("reason", "")),
                          json.dumps(st.get("params", {}))))
            if st.get("examples"):
                data.setdefault("attack_examples", {})[attack] = st["examples"]
        conn.execute("UPDATE cells SET info = ? WHERE id = ?", (json.dumps(data), cell_id))


def insert_metric(conn: sqlite3.Connection, cell_id: str, m: Metric) -> None:
    conn.execute("INSERT INTO metrics VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                 (cell_id, m.measure, m.stat, m.role, m.batch_size, m.attack, m.direction,
                  m.sweep, m.sweep_value, m.value, m.unit, int(m.noisy)))
