"""Stored cells as a terminal table (numbers stored raw, formatted only here; every value found
by its fields, never by parsing a name)."""

from __future__ import annotations

from convbench.formatting import format_value
from convbench.records import Status, StoredCell
from convbench.results import attack_names, headline_batch, on_interpreter

NOISY = "*"

# (header, metric fields, format)
COLUMNS = [
    ("acc orig", {"measure": "accuracy", "role": "original"}, "{:.4f}"),
    ("acc conv", {"measure": "accuracy", "role": "converted"}, "{:.4f}"),
    ("flips", {"measure": "label_flips"}, "{:.0f}"),
    ("ties", {"measure": "tie_flips"}, "{:.0f}"),
    ("abs err max", {"measure": "abs_err", "stat": "max"}, "{:.2e}"),
    ("bit-diff", {"measure": "bitwise_mismatch"}, "{:.1%}"),
    ("McNemar p", {"measure": "mcnemar"}, "{:.3f}"),
    ("size orig", {"measure": "size", "role": "original"}, "bytes"),
    ("size conv", {"measure": "size", "role": "converted"}, "bytes"),
    ("ms/b{B} orig", {"measure": "latency", "stat": "median", "role": "original"}, "ms"),
    ("ms/b{B} conv", {"measure": "latency", "stat": "median", "role": "converted"}, "ms"),
    ("RSS orig", {"measure": "memory", "stat": "peak", "role": "original"}, "bytes"),
    ("RSS conv", {"measure": "memory", "stat": "peak", "role": "converted"}, "bytes"),
    ("convert s", {"measure": "convert_time"}, "{:.2f}"),
]


def _value(c: StoredCell, fields: dict, fmt: str, batch: int | None) -> str:
    if fields["measure"] == "latency":
        if batch is None:
            return "-"
        fields = {**fields, "batch_size": batch}
    m = c.metrics.one(**fields)
    if m is None:
        return "-"
    return format_value(m.value, fmt) + (NOISY if m.noisy else "")


def _attacks(c: StoredCell) -> str:
    """Per attack: misclassification original -> converted (divergent labels), or how it
    ended when it did not run."""
    parts = []
    for name in attack_names(c):
        o = c.outcome("attack", name)
        if o is not None and o.status is not Status.OK:
            parts.append(f"{name} {o.status.value}")
            continue
        where = {"attack": name, "direction": "forward"}
        orig = c.metrics.get("misclassification", role="original", **where)
        conv = c.metrics.get("misclassification", role="converted", **where)
        div = c.metrics.get("divergence", **where)
        same = c.metrics.get("unperturbed", **where)
        if orig is not None and conv is not None:
            parts.append(f"{name} {orig:.0%}->{conv:.0%} ({div or 0:.0f}"
                         + (f"; {same:.0f} unperturbed" if same else "") + ")")
    return ", ".join(parts) or "-"


def table(cells: list[StoredCell]) -> str:
    if not cells:
        return "no results in this store yet"
    batch = headline_batch(cells)
    head = ["cell", "status"] + [h.replace("{B}", str(batch or "")) for h, _, _ in COLUMNS] \
        + ["attacks: miss orig->conv (div)"]
    rows = []
    for c in cells:
        status = c.status.value if c.status is Status.OK else \
            f"{c.status.value}: {c.category.value}"
        rows.append([c.name, status, *[_value(c, f, fmt, batch) for _, f, fmt in COLUMNS],
                     _attacks(c)])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    lines += _notes(cells)
    return "\n".join(lines)


def _notes(cells: list[StoredCell]) -> list[str]:
    out = []
    noisy = [m for c in cells for m in c.metrics.find(measure="latency", stat="median")
             if m.noisy]
    if noisy:
        where = ", ".join(sorted({f"b{m.batch_size}" for m in noisy}, key=lambda b: int(b[1:])))
        out.append(f"{NOISY} noisy: {len(noisy)} latency figure(s) (at {where}) timed while other "
                   f"work competed for the CPUs or with a wide interval; `convbench report` "
                   f"says why; `convbench run SPEC --retry-noisy` times a study's noisy cells "
                   f"again (an assessment: run it again)")
    if any(on_interpreter(c) for c in cells):
        out.append("Core ML latency and memory here are convbench's interpreter's, not Apple's "
                   "runtime's")
    out += unperturbed_notes(cells)
    for c in cells:
        if c.message:
            out.append(f"{c.name}: {c.status.value} ({c.category.value}): {c.message[:300]}")
        for o in c.outcomes:
            if o.status is Status.FAILED:
                out.append(f"{c.name}: {o.kind} {o.name} failed: {o.message[:300]}")
    return out


def unperturbed_notes(cells: list[StoredCell]) -> list[str]:
    """Why an attack left inputs as they were, per cell and attack where it did: such inputs
    count as the attack's failures, which can make a model look robust when the attack never
    started."""
    from convbench.attacks import ATTACKS

    out = []
    for c in cells:
        for name in attack_names(c):
            same = c.metrics.get("unperturbed", attack=name, direction="forward")
            n = c.metrics.get("inputs", attack=name, direction="forward")
            if same and n:
                why = ATTACKS.get(name).unperturbed_why if name in ATTACKS else ""
                out.append(f"{c.name}: {name} left {same:.0f} of {n:.0f} input(s) unperturbed"
                           + (f" ({why})" if why else "")
                           + "; they count as the attack's failures")
    return out
