"""From two traces to an explanation: the per-op table, the first divergent op and a verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from convbench.explain.compare import Error, error, layouts, precision_of, same_values, \
    tolerance
from convbench.explain.diff import LAYOUT_FAMILIES, family, geometry, hyperparameters
from convbench.explain.match import RANK, Relation, align, anchor, relate
from convbench.explain.trace import Node, Trace

FAULTS = ("input", "weights", "hyperparameter", "graph", "precision")
COARSER = ["float64", "float32", "bfloat16", "float16", "quantized"]


@dataclass
class OpRow:
    """One converted op: what it matched in the original, how well, and what differs."""

    op: str
    op_type: str
    layer: str | None
    layer_type: str | None
    how: list[str]
    confidence: float
    status: str  # ok | diverged | rejoins (departs, a later op agrees again) | unmatched |
    # no-value
    precision: str
    tolerance: float | None
    error: dict[str, Any] | None
    weights: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    """Where and why the converted model departs (fault None: it does not, beyond rounding)."""

    fault: str | None
    op: str | None = None
    op_type: str | None = None
    layer: str | None = None
    layer_type: str | None = None
    detail: str = ""
    first_divergent: str | None = None  # the first op whose output exceeds its tolerance


@dataclass
class Restore:
    """A weight `--repair weights` puts back: the source's, in the converted op's layout."""

    op: str
    role: str  # the op's input or field holding it
    source: str | None  # the constant (initializer, MIL const) that holds it in the file
    value: np.ndarray


@dataclass
class Explanation:
    verdict: Verdict
    ops: list[OpRow]
    parameters: list[dict[str, Any]]
    graph: dict[str, Any]
    input_contract: dict[str, Any]
    output: dict[str, Any]
    samples: list[int] = field(default_factory=list)
    stopped: str | None = None
    repair: dict[str, Any] | None = None  # `--repair weights`: what was put back, re-measured
    notes: list[str] = field(default_factory=list)  # what was left out, and why
    restore: list[Restore] = field(default_factory=list, repr=False)  # not stored

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: numpy numbers as numbers, a non-finite number as null (an exact op's
        SNR, a shape that differs: its flag says which)."""
        return _json_safe({k: v for k, v in asdict(replace(self, restore=[])).items()
                           if k != "restore"})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Explanation":
        """An explanation as stored with its cell (`to_dict` through JSON)."""
        return cls(Verdict(**d["verdict"]), [OpRow(**r) for r in d["ops"]], d["parameters"],
                   d["graph"], d["input_contract"], d["output"], d.get("samples", []),
                   d.get("stopped"), d.get("repair"), d.get("notes", []))  # no restore

    def depth_profile(self) -> list[tuple[int, str, float, float]]:
        """(position, op, relative error, tolerance) of every compared op: the error through
        depth."""
        return [(i, r.op, r.error["rel"], r.tolerance) for i, r in enumerate(self.ops)
                if r.error and r.tolerance is not None and r.error["rel"] is not None
                and np.isfinite(r.error["rel"])]


def _json_safe(v):
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, np.ndarray):
        return _json_safe(v.tolist())
    return v


def _input_node(trace: Trace) -> Node:
    x = np.asarray(trace.input)
    value = x.astype(np.float32) if np.issubdtype(x.dtype, np.floating) else None
    return Node("input", "input", [], trace.input_name, value)


def _spatial(node: Node, values: dict[str, np.ndarray], layout: str) -> list[int] | None:
    for name in node.inputs:
        v = values.get(name)
        if v is not None and v.ndim >= 3:
            return list(v.shape[1:-1]) if layout == "nhwc" else list(v.shape[2:])
    return None


def _coarser(a: str, b: str) -> str:
    return max(a, b, key=lambda p: COARSER.index(p) if p in COARSER else 1)


def explain_traces(orig: Trace, conv: Trace) -> Explanation:
    """Compare a converted model's trace with its original's on the same samples."""
    O = [_input_node(orig)] + orig.nodes
    C = [_input_node(conv)] + conv.nodes
    anchors = anchor(C, O)
    matches = align(Trace(O, orig.input_name, orig.input, orig.layout),
                    Trace(C, conv.input_name, conv.input, conv.layout), anchors)
    ovalues = {n.output: n.value for n in O}
    cvalues = {n.output: n.value for n in C}
    producer = {n.output: j for j, n in enumerate(C)}
    ref: dict[int, int] = {}
    status, errs, tols, precs = {}, {}, {}, {}
    depth = 0
    for j, (node, m) in enumerate(zip(C, matches)):
        reads = [producer[i] for i in node.inputs if i in producer]
        prec = precision_of(node.dtype, node.weights_dtype)
        for p in reads:
            prec = _coarser(prec, precs.get(p, "float32"))
        precs[j] = prec
        if node.value is None:
            status[j] = "no-value"
            continue
        depth += 1
        tols[j] = tol = tolerance(prec, depth)
        if j == 0:
            status[j], errs[j], ref[j] = "ok", error(O[0].value, node.value) \
                if O[0].value is not None else None, 0
            continue
        if m.layer is not None and m.error is not None:
            ref[j], errs[j] = m.layer, m.error
            bad = m.error.shape_differs or not m.error.rel <= tol
            status[j] = "diverged" if bad else "ok"
            continue
        if m.layer is not None:  # matched by weights only, no comparable value
            ref[j], status[j] = m.layer, "unmatched"
            continue
        floats = [p for p in reads if C[p].value is not None]
        if len(floats) == 1 and floats[0] in ref and O[ref[floats[0]]].value is not None \
                and layouts(O[ref[floats[0]]].shape, node.shape):
            r = ref[floats[0]]
            e = error(O[r].value, node.value)
            if e.rel <= tol:  # a layout or identity op that keeps the values: passes through
                ref[j], errs[j], status[j] = r, e, "ok"
                matches[j].how = ["pass-through"]
                continue
            if family(node) in LAYOUT_FAMILIES:
                ref[j], errs[j], status[j] = r, e, "diverged"
                matches[j].how = ["pass-through"]
                continue
        status[j] = "unmatched"

    # a departure that a later op on its path undoes (a converter moved part of a layer into
    # a neighbour: hard-sigmoid's +3 into a conv's bias, a batch norm into a conv) or a match
    # made by shape alone (an initial state) is no divergence: the op "rejoins"
    consumers: dict[int, list[int]] = {}
    for k, node in enumerate(C):
        for name in node.inputs:
            if name in producer:
                consumers.setdefault(producer[name], []).append(k)
    hypers = {}
    for j, node in enumerate(C):
        src = O[anchors[j][0]] if j in anchors else O[ref[j]] if j in ref else None
        if j and src is not None:
            hypers[j] = {k: [a, b] for k, (a, b) in hyperparameters(
                node, _spatial(node, cvalues, "nchw"), src,  # converted ops: channels first
                _spatial(src, ovalues, orig.layout),
                None if _reads_pad(node, C, producer) else _padded_by(src, O)).items()}
    for j in sorted(status):  # (not when it or an op feeding it has a cause of its own)
        if status[j] == "diverged" and not any(
                hypers.get(k) or _weights_fault(k, anchors, O)
                for k in _ancestors(j, C, producer, status)) \
                and _rejoins(j, consumers, status, matches):
            status[j] = "rejoins"

    rows = []
    for j, (node, m) in enumerate(zip(C, matches)):
        if j == 0:
            continue
        layer = O[ref[j]] if j in ref else None
        w = {}
        if j in anchors:
            i, rel = anchors[j]
            w = {"layer": O[i].name, **rel.to_dict()}
        hyper = hypers.get(j, {})
        rows.append(OpRow(node.name, node.kind, layer.name if layer else None,
                          layer.kind if layer else None, m.how, round(m.confidence, 3),
                          status[j], precs[j], tols.get(j),
                          errs[j].to_dict() if errs.get(j) is not None else None, w, hyper))

    restore = [Restore(node.name, role, node.sources.get(role),
                       _restorable(O[i], rel, node, role))
               for j, node in enumerate(C) if j in anchors
               for i, rel in [anchors[j]] if rel.kind == "altered" or rel.kind == "folded"
               and not _has_bn(O, i)
               for role in [_role(node)]]
    verdict = _verdict(O, C, matches, anchors, status, ref, errs, tols, precs, producer, rows,
                       conv.stopped)
    ex = Explanation(verdict, rows, _parameters(O, C, anchors),
                     _graph(O, C, ref, status, anchors),
                     _contract(orig, conv, O, C, anchors, producer), _output(O, C),
                     stopped=conv.stopped)
    ex.restore = [r for r in restore if r.value is not None]  # for `--repair weights`
    ex.notes += [f"{r.op}: its {r.role} cannot be put back in the source's layout"
                 for r in restore if r.value is None]
    return ex


def _has_bn(O: list[Node], i: int) -> bool:
    return any(family(O[k]) == "batchnorm" for k in range(i + 1, min(i + 3, len(O))))


def _restorable(layer: Node, rel: Relation, node: Node, role: str) -> np.ndarray | None:
    """The source layer's weight as the converted op holds it (its layout and shape)."""
    from convbench.explain.match import main_weight

    w = main_weight(layer)
    target = node.weights[role]
    try:
        return np.ascontiguousarray(w.transpose(rel.perm)).reshape(target.shape)
    except ValueError:
        return None


def _weights_fault(j: int, anchors: dict, O: list[Node]) -> bool:
    if j not in anchors:
        return False
    i, rel = anchors[j]
    return rel.kind == "altered" or rel.kind == "folded" and _fold_check(O, i, rel) is not None


def _rejoins(j: int, consumers: dict, status: dict, matches, hops: int = 8) -> bool:
    """Whether an op within `hops` downstream of `j` agrees with the original again, by value."""
    seen, frontier = {j}, [j]
    for _ in range(hops):
        frontier = [k for f in frontier for k in consumers.get(f, []) if k not in seen]
        seen.update(frontier)
        if any(status.get(k) == "ok" and ("value" in matches[k].how or
                                          "pass-through" in matches[k].how) for k in frontier):
            return True
        if not frontier:
            return False
    return False


def _padded_by(layer: Node, O: list[Node]) -> Node | None:
    """The explicit padding layer feeding `layer`, which converters fold into its pads."""
    for k, n in enumerate(O):
        if n.output in layer.inputs and family(n) == "pad":
            return n
    return None


def _reads_pad(node: Node, C: list[Node], producer: dict) -> bool:
    return any(family(C[producer[n]]) == "pad" for n in node.inputs if n in producer)


def _ancestors(j: int, C: list[Node], producer: dict, status: dict) -> list[int]:
    """`j` and the ops leading to it whose outputs have no counterpart (where a divergence
    first seen at `j` may have begun)."""
    seen, todo = {j}, [j]
    while todo:
        k = todo.pop()
        for name in C[k].inputs:
            p = producer.get(name)
            if p is not None and p not in seen and p != 0 and \
                    status.get(p) in ("unmatched", "no-value"):
                seen.add(p)
                todo.append(p)
    return sorted(seen)


def _fold_check(O: list[Node], i: int, rel: Relation) -> tuple[str, str] | None:
    """A folded weight whose per-channel factor is not the following batch norm's: the norm's
    epsilon (one value explains every channel) or its weights changed; with no batch norm to
    fold, the weight was scaled."""
    bn = next((O[k] for k in range(i + 1, min(i + 3, len(O)))
               if family(O[k]) == "batchnorm"), None)
    if rel.scale is None:
        return None
    if bn is None:
        return ("weights", f"its weight is {O[i].name}'s scaled channel by channel (factors "
                f"{float(rel.scale.min()):.3g} to {float(rel.scale.max()):.3g}) with no batch "
                f"norm after that layer to fold in")
    gamma = bn.weights.get("weight", bn.weights.get("gamma"))
    var = bn.weights.get("running_var", bn.weights.get("moving_variance"))
    eps = geometry(bn, None).get("epsilon", 1e-5 if gamma is not None else 1e-3)
    if gamma is None or var is None or gamma.size != rel.scale.size:
        return None
    expected = gamma / np.sqrt(var + eps)
    off = np.abs(rel.scale - expected) / np.maximum(np.abs(expected), 1e-12)
    if off.max() <= max(1e-4, 4 * rel.rel):  # within the fold's own rounding
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        implied = (gamma / rel.scale) ** 2 - var
    good = np.isfinite(implied) & (np.abs(gamma) > 1e-6)
    if good.any() and np.std(implied[good]) <= 0.05 * max(abs(np.median(implied[good])), 1e-6):
        return ("hyperparameter", f"{bn.name}'s epsilon is {eps:g} but the fold into this op "
                f"used {float(np.median(implied[good])):.3g}")
    return ("weights", f"the per-channel factor folded in from {bn.name} is not "
            f"gamma/sqrt(var+eps) (off by up to {off.max():.2g})")


def _verdict(O, C, matches, anchors, status, ref, errs, tols, precs, producer, rows,
             stopped) -> Verdict:
    first = next((j for j in range(1, len(C)) if status.get(j) == "diverged"), None)
    if first is None and stopped:  # the graph breaks where nothing had diverged yet
        compared = sum(1 for j in range(1, len(C)) if status.get(j) == "ok")
        return Verdict("graph", detail=f"{stopped} ({compared} op(s) before it agree with the "
                       f"original)")
    if first is None:
        return _no_fault(O, C, errs, tols)
    row = {r.op: r for r in rows}

    def verdict(j, fault, detail):
        layer = O[anchors[j][0]] if j in anchors else O[ref[j]] if j in ref else None
        return Verdict(fault, C[j].name, C[j].kind, layer.name if layer else None,
                       layer.kind if layer else None, detail, C[first].name)

    suspects = _ancestors(first, C, producer, status)
    for j in suspects:  # a weight that is not the source's
        if j in anchors:
            i, rel = anchors[j]
            if rel.kind == "altered":
                return verdict(j, "weights", f"its {_role(C[j])} is {O[i].name}'s altered "
                               f"(relative difference {rel.rel:.2g})")
            if rel.kind == "folded":
                why = _fold_check(O, i, rel)
                if why:
                    return verdict(j, *why)
    for j in suspects:  # a hyperparameter that is not the source's
        hyper = row[C[j].name].hyperparameters if C[j].name in row else {}
        if hyper:
            said = "; ".join(f"{k} {a} in the original, {b} here" for k, (a, b) in hyper.items())
            return verdict(j, "hyperparameter", said)
    last = max((k for k in status if C[k].value is not None), default=0)
    if status.get(last) == "ok" and not stopped and precs[first] not in ("float32", "float64"):
        # fp16 or quantised values depart on the way and the outputs agree again: what the
        # precision does to this model, not a fault (in fp32, a departure is one)
        e = errs.get(first)
        return Verdict(None, detail=(
            f"the outputs agree within what precision explains; ops depart on the way and "
            f"agree again before them (first: {C[first].kind} {C[first].name!r}, relative "
            f"error {e.rel if e else float('nan'):.2g}, stored in {precs[first]}), with no "
            f"weight or hyperparameter that differs: a converter's fusion, or rounding the "
            f"model absorbs"),
            first_divergent=C[first].name)
    for j in suspects:  # a layout or scaling op the original does not have
        if family(C[j]) in LAYOUT_FAMILIES and C[j].value is not None:
            at_input = all(producer.get(n, 0) == 0 or producer.get(n) in suspects and
                           family(C[producer[n]]) in LAYOUT_FAMILIES for n in C[j].inputs)
            kind = "input" if at_input and _before_weights(j, C, anchors) else "graph"
            return verdict(j, kind, f"{C[j].kind} {_attrs_said(C[j])} changes the values it "
                           f"passes on" + (" from the model's input: the input contract (layout "
                                            "or scaling) differs" if kind == "input" else ""))
    j = first
    e = errs.get(j)
    if family(C[j]) == "reshape" and j in ref and O[ref[j]].value is not None and \
            C[j].value is not None and same_values(O[ref[j]].value, C[j].value, tols[j]):
        return verdict(j, "graph", "it holds the original's values in another order: a layout "
                       "transpose before it is missing or extra")
    if j in ref and family(C[j]) != family(O[ref[j]]) and family(C[j]) not in LAYOUT_FAMILIES \
            and not (j in anchors):
        return verdict(j, "graph", f"a {C[j].kind} where the original has "
                       f"{O[ref[j]].kind} {O[ref[j]].name}")
    if e is not None and not e.shape_differs and precs[j] not in ("float32", "float64") \
            and e.rel <= 10 * tols[j]:
        return verdict(j, "precision", f"relative error {e.rel:.2g}, near what {precs[j]} "
                       f"storage explains ({tols[j]:.2g})")
    said = f"relative error {e.rel:.2g} > {tols[j]:.2g}" if e and not e.shape_differs else \
        "its output's shape is not the original's"
    return verdict(j, "graph", f"{said}, with the same weights and hyperparameters: the op "
                   f"computes something else")


def _role(node: Node) -> str:
    return max(node.weights, key=lambda k: node.weights[k].size) if node.weights else "weight"


def _attrs_said(node: Node) -> str:
    keep = {k: v for k, v in node.attrs.items() if k not in ("name",) and len(str(v)) < 40}
    return "(" + ", ".join(f"{k}={v}" for k, v in list(keep.items())[:3]) + ")" if keep else ""


def _before_weights(j: int, C: list[Node], anchors) -> bool:
    return not any(k in anchors or C[k].weights for k in range(1, j))


def _no_fault(O, C, errs, tols) -> Verdict:
    out = _output(O, C)
    if out.get("flips"):
        return Verdict("precision", detail=(
            f"every op within what its precision explains, yet {out['flips']} of "
            f"{out['samples']} labels flip: their top two scores were closer than the "
            f"rounding ({out['flip_margin']:.2g} at most)"))
    return Verdict(None, detail="every compared op is within what its precision explains")


def _output(O: list[Node], C: list[Node]) -> dict[str, Any]:
    a = next((n.value for n in reversed(O) if n.value is not None), None)
    b = next((n.value for n in reversed(C) if n.value is not None), None)
    if a is None or b is None or a.shape != b.shape or a.ndim != 2:
        return {}
    flips = np.argmax(a, 1) != np.argmax(b, 1)
    top = np.sort(a, 1)
    margin = top[:, -1] - top[:, -2] if a.shape[1] > 1 else np.zeros(len(a))
    e = error(a, b)
    return {"samples": int(len(a)), "flips": int(flips.sum()), "rel": e.rel,
            "max_abs": e.max_abs,
            "flip_margin": float(margin[flips].max()) if flips.any() else 0.0}


def _parameters(O, C, anchors) -> list[dict[str, Any]]:
    out, used = [], set()
    for j, node in enumerate(C):
        if not node.weights:
            continue
        if j in anchors:
            i, rel = anchors[j]
            used.add(i)
            row = {"op": node.name, "layer": O[i].name, **rel.to_dict()}
            for role, w in node.weights.items():  # the other weights (biases) of the pair
                if w is max(node.weights.values(), key=lambda v: v.size):
                    continue
                best = min((r for ow in O[i].weights.values() if ow.size == w.size
                            for r in [relate(w, ow, node.weights_dtype)] if r), default=None,
                           key=lambda r: (RANK[r.kind], r.rel))
                row.setdefault("others", {})[role] = best.kind if best else "derived"
            out.append(row)
        elif max(w.size for w in node.weights.values()) >= 4:
            out.append({"op": node.name, "layer": None, "kind": "no source"})
    for i, node in enumerate(O):
        if node.weights and i not in used and max(w.size for w in node.weights.values()) >= 4 \
                and family(node) != "batchnorm":
            out.append({"op": None, "layer": node.name, "kind": "not found"})
    return out


def _graph(O, C, ref, status, anchors) -> dict[str, Any]:
    referenced = set(ref.values()) | {i for i, _ in anchors.values()}
    return {
        "added": [f"{C[j].kind} {C[j].name}" for j in range(1, len(C))
                  if status.get(j) == "unmatched"],
        "removed": [f"{O[i].kind} {O[i].name}" for i in range(1, len(O))
                    if i not in referenced and O[i].value is not None],
        "transposes": [f"{C[j].name} {C[j].attrs.get('perm', C[j].attrs.get('axes', ''))}"
                       for j in range(1, len(C)) if family(C[j]) == "transpose"],
    }


def _contract(orig, conv, O, C, anchors, producer) -> dict[str, Any]:
    first_weighted = next((j for j in range(1, len(C)) if j in anchors or C[j].weights),
                          len(C))
    pre = [f"{C[j].kind} {_attrs_said(C[j])}".strip() for j in range(1, first_weighted)
           if C[j].value is not None]

    def side(t: Trace):
        x = np.asarray(t.input)
        return {"shape": list(x.shape[1:]), "dtype": str(x.dtype), "layout": t.layout}

    return {"original": side(orig), "converted": side(conv), "before_first_layer": pre}
