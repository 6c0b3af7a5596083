"""Stored cells as a terminal table, CSV or JSON (numbers stored raw, formatted only here)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from convbench.formatting import format_value

# (header, metric, format)
COLUMNS = [
    ("acc orig", "accuracy_original", "{:.4f}"),
    ("acc conv", "accuracy_converted", "{:.4f}"),
    ("flips", "label_flips", "{:.0f}"),
    ("abs err max", "abs_err_max", "{:.2e}"),
    ("bit-diff", "bitwise_mismatch_rate", "{:.1%}"),
    ("McNemar p", "mcnemar_p", "{:.3f}"),
    ("size orig", "size_bytes_original", "bytes"),
    ("size conv", "size_bytes_converted", "bytes"),
    ("ms/b32 orig", "latency_median_s_bs32_original", "ms"),
    ("ms/b32 conv", "latency_median_s_bs32_converted", "ms"),
    ("RSS orig", "peak_rss_bytes_original", "bytes"),
    ("RSS conv", "peak_rss_bytes_converted", "bytes"),
    ("convert s", "convert_s", "{:.2f}"),
]


def _rq3(metrics: dict[str, float]) -> str:
    """Per attack: misclassification original -> converted (divergent labels)."""
    parts = []
    for key in sorted(metrics):
        if key.endswith("_misclass_original") and "_reverse_" not in key \
                and "_eps" not in key:
            name = key[: -len("_misclass_original")]
            conv = metrics.get(f"{name}_misclass_converted", 0)
            div = metrics.get(f"{name}_divergence", 0)
            parts.append(f"{name} {metrics[key]:.0%}->{conv:.0%} ({div:.0f})")
    return ", ".join(parts) or "-"


def _name(cell: dict[str, Any]) -> str:
    c = cell
    return f"{c['framework']} {c['model']} {c['dataset']} -> {c['format']} r{c['run']}"


def table(cells: list[dict[str, Any]]) -> str:
    if not cells:
        return "no results in this store yet"
    head = ["cell", "status"] + [c[0] for c in COLUMNS] + ["attacks: miss orig->conv (div)"]
    rows = []
    for c in cells:
        status = c["status"] if c["status"] == "ok" else f"{c['status']}: {c['category']}"
        values = [format_value(c["metrics"].get(m), f) for _, m, f in COLUMNS]
        rows.append([_name(c), status, *values, _rq3(c["metrics"])])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    failed = [c for c in cells if c["message"]]
    for c in failed:
        lines.append(f"{_name(c)}: {c['status']} ({c['category']}): {c['message'][:300]}")
    return "\n".join(lines)


def as_json(cells: list[dict[str, Any]]) -> str:
    keep = ("id", "study", "framework", "model", "dataset", "format", "runtime", "run", "status",
            "category", "message", "metrics")
    return json.dumps([{k: c[k] for k in keep} for c in cells], indent=1)


def as_csv(cells: list[dict[str, Any]]) -> str:
    names = sorted({m for c in cells for m in c["metrics"]})
    fixed = ["id", "framework", "model", "dataset", "format", "runtime", "run", "status",
             "category"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(fixed + names)
    for c in cells:
        w.writerow([c[k] for k in fixed] + [c["metrics"].get(n, "") for n in names])
    return buf.getvalue()
