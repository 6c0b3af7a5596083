"""A gate for CI pipelines: `assess --fail-if "label_flip_rate > 0.001 or abs_err_max > 1e-4"`.

A small expression language, parsed here (no `eval`): numbers, metric names, comparisons
(`< <= > >= == !=`), `and`, `or`, `not` and parentheses. A metric's name is its measure, then
its stat, role, attack, direction and batch size where it has them: `abs_err_max`,
`accuracy_converted`, `latency_median_converted_b32`, `misclassification_converted_fgsm_forward`.
Two derived names: `label_flip_rate` (flips per input) and `accuracy_change` (converted minus
original).
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"\s*(?:([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|"
                    r"([A-Za-z_][A-Za-z0-9_]*)|(<=|>=|==|!=|<|>)|([()]))")
_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
            "==": operator.eq, "!=": operator.ne}


class GateError(ValueError):
    """A condition that cannot be parsed or names a metric the cell does not have."""


@dataclass(frozen=True)
class Gate:
    """A parsed condition; `failed(values)` says which comparisons made it true."""

    text: str
    tree: Any

    def names(self) -> set[str]:
        return set(_names(self.tree))

    def holds(self, values: dict[str, float]) -> bool:
        unknown = sorted(self.names() - set(values))
        if unknown:
            raise GateError(f"--fail-if names {', '.join(unknown)}, which this cell does not "
                            f"have; it has: {', '.join(sorted(values))}")
        return bool(_eval(self.tree, values))

    def because(self, values: dict[str, float]) -> list[str]:
        """The comparisons that are true, with the cell's values: what to show the user."""
        return [f"{_show(t[1])} {t[0]} {_show(t[2])} ({_value(t[1], values):.6g} {t[0]} "
                f"{_value(t[2], values):.6g})" for t in _comparisons(self.tree)
                if _eval(t, values)]


def parse(text: str) -> Gate:
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if not m:
            raise GateError(f"--fail-if {text!r}: cannot read it from {text[pos:]!r}; write "
                            f"comparisons such as 'abs_err_max > 1e-4', joined by and/or")
        number, name, op, paren = m.groups()
        tokens.append(("num", float(number)) if number else ("name", name) if name else
                      ("op", op) if op else ("paren", paren))
        pos = m.end()
    parser = _Parser(tokens, text)
    tree = parser.expr()
    if parser.i != len(tokens):
        raise GateError(f"--fail-if {text!r}: unexpected {tokens[parser.i][1]!r}")
    return Gate(text, tree)


class _Parser:
    def __init__(self, tokens, text):
        self.t, self.i, self.text = tokens, 0, text

    def _peek(self):
        return self.t[self.i] if self.i < len(self.t) else (None, None)

    def _next(self):
        tok = self._peek()
        if tok[0] is None:
            raise GateError(f"--fail-if {self.text!r}: ends too early")
        self.i += 1
        return tok

    def expr(self):
        return self._joined("or", self.term)

    def term(self):
        return self._joined("and", self.factor)

    def _joined(self, word: str, operand):
        """`operand (word operand)*`, grouped from the left."""
        node = operand()
        while self._peek() == ("name", word):
            self._next()
            node = (word, node, operand())
        return node

    def factor(self):
        if self._peek() == ("name", "not"):
            self._next()
            return ("not", self.factor())
        if self._peek() == ("paren", "("):
            self._next()
            node = self.expr()
            if self._next() != ("paren", ")"):
                raise GateError(f"--fail-if {self.text!r}: a '(' is not closed")
            return node
        left = self.operand()
        kind, op = self._next()
        if kind != "op":
            raise GateError(f"--fail-if {self.text!r}: expected a comparison after "
                            f"{_show(left)}, found {op!r}")
        return (op, left, self.operand())

    def operand(self):
        kind, value = self._next()
        if kind == "num" or (kind == "name" and value not in ("and", "or", "not")):
            return (kind, value)
        raise GateError(f"--fail-if {self.text!r}: expected a metric name or a number, found "
                        f"{value!r}")


def _names(node):
    if node[0] == "name":
        yield node[1]
    elif node[0] != "num":
        for child in node[1:]:
            yield from _names(child)


def _comparisons(node):
    if node[0] in _COMPARE:
        yield node
    elif node[0] in ("and", "or", "not"):
        for child in node[1:]:
            yield from _comparisons(child)


def _value(node, values):
    return node[1] if node[0] == "num" else values[node[1]]


def _show(node) -> str:
    return f"{node[1]:g}" if node[0] == "num" else node[1]


def _eval(node, values) -> bool:
    kind = node[0]
    if kind == "or":
        return _eval(node[1], values) or _eval(node[2], values)
    if kind == "and":
        return _eval(node[1], values) and _eval(node[2], values)
    if kind == "not":
        return not _eval(node[1], values)
    left, right = _value(node[1], values), _value(node[2], values)
    if math.isnan(left) or math.isnan(right):
        return True  # a number that could not be measured does not pass a gate
    return _COMPARE[kind](left, right)


def metric_values(metrics) -> dict[str, float]:
    """A cell's metrics by gate name (sweep points left out), and the derived names."""
    out: dict[str, float] = {}
    for m in metrics:
        if m.sweep:
            continue
        parts = [m.measure, m.stat, m.role, m.attack, m.direction,
                 f"b{m.batch_size}" if m.batch_size is not None else ""]
        out["_".join(p for p in parts if p)] = float(m.value)
    for flips in ("label_flips", "decided_flips", "tie_flips"):
        if flips in out and out.get("inputs"):
            out[flips.replace("flips", "flip_rate")] = out[flips] / out["inputs"]
    if "accuracy_converted" in out and "accuracy_original" in out:
        out["accuracy_change"] = out["accuracy_converted"] - out["accuracy_original"]
    return out
