"""Mapping the original's layers onto the converted graph's ops.

Two kinds of evidence: weights (a converted op's parameter is a source layer's, equal,
transposed, rounded to fp16, quantised, folded with a batch norm, or altered) and values (an
op's output equals a layer's output, in some layout, on the same samples). An order-keeping
alignment combines them with names and shapes; every match says how it was made.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import numpy as np

from convbench.explain.compare import Error, error, layouts
from convbench.explain.trace import Node, Trace


# -- weights ----------------------------------------------------------------------------------
@dataclass
class Relation:
    """How a converted weight relates to a source weight."""

    kind: str  # equal | transposed | fp16 | quantized | folded | altered
    perm: tuple[int, ...]
    rel: float  # relative difference after the permutation (and the fold's scale)
    scale: np.ndarray | None = None  # folded: the per-channel factor
    axis: int | None = None  # folded: the converted weight's channel axis

    def to_dict(self) -> dict:
        return {"kind": self.kind, "layout": list(self.perm), "rel": self.rel,
                **({"axis": self.axis} if self.axis is not None else {})}


RANK = {"equal": 0, "transposed": 1, "fp16": 2, "quantized": 3, "folded": 4, "altered": 5}


def _candidates(conv: np.ndarray, orig: np.ndarray):
    if conv.size != orig.size:
        return
    if conv.ndim == orig.ndim and conv.ndim <= 5:
        for p in itertools.permutations(range(orig.ndim)):
            if tuple(orig.shape[i] for i in p) == conv.shape:
                yield p, orig.transpose(p)
    elif conv.size == orig.size:
        yield tuple(range(orig.ndim)), orig.reshape(conv.shape)


def relate(conv: np.ndarray, orig: np.ndarray, stored: str | None = None) -> Relation | None:
    """The closest relation between a converted weight and a source weight, if any;
    `stored` "quantized": the converted op keeps its weights in 8 bits or fewer."""
    best = None
    for perm, a in _candidates(conv, orig):
        rel = _rel(conv, a)
        ident = perm == tuple(range(len(perm)))
        if rel <= 1e-6:
            r = Relation("equal" if ident else "transposed", perm, rel)
        elif np.allclose(conv, a.astype(np.float16).astype(np.float32), rtol=0, atol=0) or \
                rel <= 6e-4 and _fp16_exact(conv):
            r = Relation("fp16", perm, rel)
        else:
            r = _folded(conv, a, perm) or _quantized(conv, a, perm, rel) or \
                (Relation("quantized", perm, rel) if stored == "quantized" and rel < 0.1
                 else None) or \
                (Relation("altered", perm, rel) if _cos(conv, a) > 0.5 and conv.ndim > 1
                 else None)  # a vector (a bias) may be derived many ways: not "altered"
        if r and (best is None or (RANK[r.kind], r.rel) < (RANK[best.kind], best.rel)):
            best = r
    return best


def _rel(c: np.ndarray, a: np.ndarray) -> float:
    n = float(np.linalg.norm(a))
    d = float(np.linalg.norm(c.astype(np.float64) - a))
    return d / n if n else (0.0 if d == 0 else float("inf"))


def _cos(c: np.ndarray, a: np.ndarray) -> float:
    n = float(np.linalg.norm(a) * np.linalg.norm(c))
    return float(np.sum(c.astype(np.float64) * a) / n) if n else 0.0


def _folded(c: np.ndarray, a: np.ndarray, perm) -> Relation | None:
    """`c` is `a` scaled channel by channel (a batch norm folded into the op)."""
    for axis in range(c.ndim):
        if c.shape[axis] < 2 or c.size // c.shape[axis] < 2:  # a vector scales trivially
            continue
        others = tuple(i for i in range(c.ndim) if i != axis)
        den = np.sum(a.astype(np.float64) ** 2, axis=others, keepdims=True)
        scale = np.sum(c * a.astype(np.float64), axis=others, keepdims=True) / \
            np.where(den > 0, den, 1)
        rel = _rel(c, a * scale)
        if (rel <= 1e-5 or rel <= 1e-3 and _fp16_exact(c)) and \
                not np.allclose(scale, 1, rtol=1e-6):
            return Relation("folded", perm, rel, scale.reshape(-1), axis)
    return None


def _fp16_exact(c: np.ndarray) -> bool:
    return bool(np.array_equal(c, c.astype(np.float16).astype(np.float32)))


def _quantized(c: np.ndarray, a: np.ndarray, perm, rel: float) -> Relation | None:
    """`c` takes few distinct values per channel and follows `a` (int8, palettised)."""
    rows = c.reshape(c.shape[0], -1) if c.ndim > 1 else c.reshape(1, -1)
    if rows.shape[1] > 16 and max(len(np.unique(r)) for r in rows) <= 256 and rel < 0.1:
        return Relation("quantized", perm, rel)
    return None


def main_weight(node: Node) -> np.ndarray | None:
    """A node's largest parameter (a conv's kernel, a dense layer's matrix)."""
    return max(node.weights.values(), key=lambda w: w.size) if node.weights else None


def anchor(conv: list[Node], orig: list[Node]) -> dict[int, tuple[int, Relation]]:
    """For converted nodes with weights: the source layer one of whose weights their main
    weight relates to best (a kernel to a kernel, a bias kept apart to a bias)."""
    out = {}
    sources = [(i, w) for i, n in enumerate(orig) for w in n.weights.values()]
    for j, node in enumerate(conv):
        w = main_weight(node)
        if w is None or w.size < 4:
            continue
        best = None
        for i, ow in sources:
            if ow.size != w.size:
                continue
            r = relate(w, ow, node.weights_dtype)
            if r and (best is None or (RANK[r.kind], r.rel) < (RANK[best[1].kind], best[1].rel)):
                best = (i, r)
        if best:
            out[j] = best
    return out


# -- alignment --------------------------------------------------------------------------------
@dataclass
class Match:
    """A converted op and the original layer whose output it should reproduce."""

    op: int  # index into the converted trace's nodes
    layer: int | None  # index into the original's nodes (None: unmatched)
    how: list[str] = field(default_factory=list)  # evidence: weights, value, name, shape
    confidence: float = 0.0
    error: Error | None = None


def _tokens(name: str) -> set[str]:
    return {t for t in re.split(r"[^a-z0-9]+", re.sub(r"_\d+$", "", name.lower())) if
            len(t) > 1 and not t.isdigit()} | set(re.findall(r"[a-z]+_?\d+", name.lower()))


def _absorbs(orig: list[Node], i: int, k: int) -> bool:
    """Whether layer `k` follows layer `i` through batch norms and activations only (what a
    converter folds into the op that implements `i`)."""
    return i < k and all(_kind_family(orig[m].kind) in ("batchnorm", "activation")
                         for m in range(i + 1, k + 1)) and k - i <= 3


def _kind_family(kind: str) -> str:
    k = kind.lower()
    if "batchnorm" in k or k in ("batch_norm", "batchnormalization"):
        return "batchnorm"
    if k in ACTIVATIONS or "activation" in k or k.startswith("relu"):
        return "activation"
    return k


ACTIVATIONS = {"relu", "relu6", "sigmoid", "tanh", "gelu", "elu", "selu", "silu", "hardswish",
               "hard_swish", "hardsigmoid", "leakyrelu", "leaky_relu", "prelu", "softplus",
               "softsign", "swish", "mish", "activation", "linear", "clip", "hardtanh"}


def align(orig: Trace, conv: Trace, anchors: dict[int, tuple[int, Relation]]) -> list[Match]:
    """An order-keeping match of converted ops to original layers maximising the evidence."""
    O = [n for n in orig.nodes]
    C = [n for n in conv.nodes]
    otok = [_tokens(n.name) for n in O]
    errors: dict[tuple[int, int], Error] = {}

    def score(i: int, j: int) -> tuple[float, list[str]]:
        o, c = O[i], C[j]
        if o.value is None or c.value is None:
            return 0.0, []
        how, s = [], 0.0
        a = anchors.get(j)
        if a and (a[0] == i or _absorbs(O, a[0], i)):
            # a folded weight implements the layer and the norm after it: the norm's output
            # is the op's; otherwise the layer's own
            own = a[0] == i if a[1].kind != "folded" else \
                (a[0] != i and _kind_family(O[i].kind) == "batchnorm")
            s += 3 if own else 2.5
            how.append(f"weights {a[1].kind}" + (f" (+{O[i].kind})" if a[0] != i else ""))
        compatible = bool(layouts(o.shape, c.shape))
        if not compatible and not how:
            return 0.0, []
        if compatible:
            e = errors.get((i, j))
            if e is None:
                e = errors[(i, j)] = error(o.value, c.value)
            if e.rel <= 1e-4:  # the value outweighs the rest: an op that computes the layer
                s, how = s + 8, how + ["value"]
            elif e.rel <= 1e-2:
                s, how = s + 3, how + ["value"]
            elif e.rel <= 0.3:
                s += 1
            else:
                s += 0.2
            how.append("shape")
        if otok[i] and otok[i] & _tokens(c.name):
            s, how = s + 1.5, how + ["name"]
        return s, how

    n, m = len(O), len(C)
    best = np.zeros((n + 1, m + 1))
    move = np.zeros((n + 1, m + 1), dtype=np.int8)  # 0 diag, 1 skip layer, 2 skip op
    cache: dict[tuple[int, int], tuple[float, list[str]]] = {}
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            sc = cache[(i - 1, j - 1)] = score(i - 1, j - 1)
            options = (best[i - 1, j - 1] + sc[0] if sc[0] > 0 else -1, best[i - 1, j],
                       best[i, j - 1])
            move[i, j] = int(np.argmax(options))
            best[i, j] = options[move[i, j]]
    pairs = {}
    i, j = n, m
    while i > 0 and j > 0:
        if move[i, j] == 0:
            pairs[j - 1] = i - 1
            i, j = i - 1, j - 1
        elif move[i, j] == 1:
            i -= 1
        else:
            j -= 1
    out = []
    for j in range(m):
        i = pairs.get(j)
        if i is None:
            out.append(Match(j, None))
            continue
        s, how = cache[(i, j)]
        e = errors.get((i, j))
        if e is None and C[j].value is not None and O[i].value is not None:
            e = error(O[i].value, C[j].value)
        out.append(Match(j, i, how, min(1.0, s / 12), e))
    return out
