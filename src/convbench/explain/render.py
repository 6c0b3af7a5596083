"""An explanation as the console shows it: the verdict, then the per-op table."""

from __future__ import annotations

import math

from convbench.explain.core import Explanation


def _num(v, fmt: str = ".2g") -> str:
    if v is None or isinstance(v, str):
        return v or "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return format(v, fmt)


def verdict_text(ex: Explanation) -> str:
    v = ex.verdict
    if v.fault is None and not v.op:
        return f"no fault: {v.detail}"
    where = f" at {v.op_type} {v.op!r}" if v.op else ""
    layer = f" (original: {v.layer_type} {v.layer!r})" if v.layer else ""
    first = (f"\nfirst divergent op: {v.first_divergent}"
             if v.first_divergent and v.first_divergent != v.op else "")
    return f"fault: {v.fault}{where}{layer}\n  {v.detail}{first}"


def table(ex: Explanation, all_ops: bool = False) -> str:
    """The verdict, the output's departure and the per-op table (every op with `all_ops`,
    else those that hold values)."""
    lines = [verdict_text(ex)]
    out = ex.output
    if out.get("rows_run"):
        lines.append(f"{out['rows_flipped']} of the {out['rows_run']} row(s) run flip their "
                     f"label")
    if out.get("samples"):
        lines.append(f"outputs on {out['samples']} traced sample(s) (rows {ex.samples}): "
                     f"{out['flips']} label flip(s), relative error {_num(out['rel'])}")
    if ex.stopped:
        lines.append(f"stopped: {ex.stopped}")
    lines += [f"note: {n}" for n in ex.notes]
    head = ("op", "type", "original layer", "matched by", "status", "rel err", "explained",
            "SNR dB", "cosine")
    rows = []
    for r in ex.ops:
        if r.status == "no-value" and not all_ops:
            continue
        e = r.error or {}
        rows.append((r.op[:34], r.op_type[:14], (r.layer or "-")[:26],
                     ",".join(r.how)[:30] or "-", r.status,
                     "shape" if e.get("shape_differs") else _num(e.get("rel")),
                     _num(r.tolerance), _num(e.get("snr_db"), ".1f"),
                     _num(e.get("cosine"), ".6f")))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines.append("")
    lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in rows]
    changed = [p for p in ex.parameters if p.get("kind") not in ("equal", "transposed")]
    if changed:
        lines.append("\nparameters not carried over as they were:")
        lines += [f"  {p.get('op') or '-'} <- {p.get('layer') or '-'}: {p['kind']}"
                  for p in changed[:20]]
        if len(changed) > 20:
            lines.append(f"  ... and {len(changed) - 20} more")
    hyper = [(r.op, r.hyperparameters) for r in ex.ops if r.hyperparameters]
    if hyper:
        lines.append("\nhyperparameters that differ (original, converted):")
        lines += [f"  {op}: {h}" for op, h in hyper[:20]]
    g = ex.graph
    if g.get("added") or g.get("removed"):
        lines.append(f"\ngraph: {len(g['added'])} op(s) with no counterpart, "
                     f"{len(g['removed'])} layer(s) not found, {len(g['transposes'])} "
                     f"transpose(s)")
    c = ex.input_contract
    if c:
        lines.append(f"input: original {c['original']['layout']} {c['original']['shape']} "
                     f"{c['original']['dtype']}; converted {c['converted']['layout']} "
                     f"{c['converted']['shape']} {c['converted']['dtype']}"
                     + (f"; before the first layer: {', '.join(c['before_first_layer'])}"
                        if c.get("before_first_layer") else ""))
    return "\n".join(lines)
